"""`/edit` through the real server and gradio_client: what fal receives is decoded and checked."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

EDIT = "fal-ai/gpt-image-1.5/edit"


def save_png(path: Path, size, colour, mode="RGB") -> str:
    Image.new(mode, size, colour).save(path, "PNG")
    return str(path)


def mask_file(path: Path, size, box) -> str:
    """fal/OpenAI convention: opaque everywhere but the transparent `box` to edit."""
    pixels = np.zeros((size[1], size[0], 4), np.uint8)
    pixels[..., 3] = 255
    left, top, right, bottom = box
    pixels[top:bottom, left:right] = (255, 255, 255, 0)
    Image.fromarray(pixels, "RGBA").save(path, "PNG")
    return str(path)


def edit(api, images, mask=None, **overrides):
    values = {
        "prompt": "make the sky stormy",
        "images": [handle_file(p) for p in images],
        "mask": handle_file(mask) if mask else None,
        "image_size": "auto",
        "background": "auto",
        "quality": "high",
        "input_fidelity": "high",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
        "fal_key": "",
    }
    values.update(overrides)
    return api.predict(**values, api_name="/edit")


def test_images_in_order_and_the_mask_reach_fal_with_every_parameter(api, fake, tmp_path):
    main = save_png(tmp_path / "main.png", (1536, 1024), (40, 120, 200))
    second = save_png(tmp_path / "second.png", (512, 512), (200, 40, 40))
    third = save_png(tmp_path / "third.png", (800, 600), (40, 200, 40))
    box = (100, 200, 300, 400)
    mask = mask_file(tmp_path / "mask.png", (1536, 1024), box)

    gallery, record, status = edit(
        api,
        [main, second, third],
        mask,
        image_size="1536x1024",
        background="opaque",
        quality="medium",
        input_fidelity="low",
        num_images=2,
        output_format="webp",
    )

    [sub] = fake.submissions
    assert sub.endpoint == EDIT
    assert sub.schema_errors == []
    sent = {k: v for k, v in sub.arguments.items() if k not in ("image_urls", "mask_image_url")}
    assert sent == {
        "prompt": "make the sky stormy",
        "image_size": "1536x1024",
        "background": "opaque",
        "quality": "medium",
        "input_fidelity": "low",
        "num_images": 2,
        "output_format": "webp",
        "sync_mode": False,
    }
    images = [d for d in sub.decoded_inputs if d.role == "image"]
    assert [(d.width, d.height) for d in images] == [(1536, 1024), (512, 512), (800, 600)]
    assert [d.to_pil().convert("RGB").getpixel((5, 5)) for d in images] == [
        (40, 120, 200),
        (200, 40, 40),
        (40, 200, 40),
    ]
    [received_mask] = [d for d in sub.decoded_inputs if d.role == "mask"]
    assert (received_mask.width, received_mask.height) == (1536, 1024)
    # RGBA as fal's and OpenAI's examples show it: the box white with alpha 0, the rest
    # opaque black.
    assert (received_mask.format, received_mask.mode) == ("PNG", "RGBA")
    pixels = np.asarray(received_mask.to_pil())
    expected = np.zeros((1024, 1536, 4), np.uint8)
    expected[..., 3] = 255
    expected[200:400, 100:300] = (255, 255, 255, 0)
    assert np.array_equal(pixels, expected)

    assert len(gallery) == 2
    assert all("1536×1024 WEBP" in item["caption"] for item in gallery)
    assert record["endpoint"] == EDIT
    assert "2 images" in status


def test_without_a_mask_no_mask_url_is_sent(api, fake, tmp_path):
    edit(api, [save_png(tmp_path / "a.png", (640, 480), (1, 2, 3))])
    [sub] = fake.submissions
    assert "mask_image_url" not in sub.arguments
    assert [d.role for d in sub.decoded_inputs] == ["image"]


def test_small_inputs_travel_inline_and_large_ones_are_uploaded(api, fake, tmp_path):
    rng = np.random.default_rng(1)
    noise = rng.integers(0, 256, size=(1024, 1536, 3), dtype=np.uint8)  # ~4.7 MB as PNG
    big = tmp_path / "big.png"
    Image.fromarray(noise).save(big, "PNG", compress_level=1)
    small = save_png(tmp_path / "small.png", (256, 256), (9, 9, 9))
    edit(api, [str(big), small])
    [sub] = fake.submissions
    first, second = sub.arguments["image_urls"]
    assert first.startswith(fake.cdn_url), "the large image was uploaded to fal's storage"
    assert second.startswith("data:image/png;base64,"), "the small one went inline"
    assert len(fake.uploads) == 1
    assert fake.uploads[0].data == big.read_bytes(), "sent byte for byte, not re-encoded"


# Keys no other test uses: their clients in the app have no CDN token cached yet.
UPLOADERS = {
    "ana": "aaaa5555-0000-4000-8000-00000000001a:a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5",
    "ben": "bbbb6666-0000-4000-8000-00000000001b:b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6b6",
}


def test_each_visitors_uploads_go_under_their_own_key(app_server, fake, tmp_path):
    # The fake accepts only the visitors' keys: a token or an upload under the host's
    # key (the app has one) would be refused too.
    fake.accepted_keys = set(UPLOADERS.values())
    photos = {}
    for seed, name in enumerate(UPLOADERS, start=11):
        noise = np.random.default_rng(seed).integers(0, 256, (1024, 1024, 3), dtype=np.uint8)
        photos[name] = tmp_path / f"{name}.png"
        Image.fromarray(noise).save(photos[name], "PNG", compress_level=1)
        assert photos[name].stat().st_size > 2_500_000, "over the inline limit: uploaded"
    clients = {
        name: Client(app_server.url, verbose=False, headers={"X-Forwarded-For": f"192.0.2.{n}"})
        for n, name in enumerate(UPLOADERS, start=1)
    }
    release = threading.Barrier(len(UPLOADERS))
    statuses: dict[str, str] = {}
    errors: list[BaseException] = []

    def visit(name: str) -> None:
        try:
            release.wait(timeout=30)
            _, _, statuses[name] = edit(
                clients[name], [str(photos[name])], prompt=f"{name}'s edit", fal_key=UPLOADERS[name]
            )
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=visit, args=(name,)) for name in UPLOADERS]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert errors == [] and all(status.startswith("✅") for status in statuses.values())

    uploads = {photo.read_bytes(): name for name, photo in photos.items()}
    assert sorted(uploads[upload.data] for upload in fake.uploads) == sorted(UPLOADERS)
    for upload in fake.uploads:
        owner = uploads[upload.data]
        assert upload.key == UPLOADERS[owner], f"{owner}'s image went up under another key"
    # Each visitor's client asked for its own storage token, with its own key only.
    tokens = [h for h in fake.http_log if h.path == "/storage/auth/token"]
    assert sorted(h.headers.get("authorization") for h in tokens) == sorted(
        f"Key {key}" for key in UPLOADERS.values()
    )
    assert all(h.status == 200 for h in tokens)
    for sub in fake.submissions:
        owner = sub.arguments["prompt"].removesuffix("'s edit")
        assert sub.authorization == f"Key {UPLOADERS[owner]}"
        [url] = sub.arguments["image_urls"]
        [upload] = [u for u in fake.uploads if u.url == url]
        assert uploads[upload.data] == owner, "the request names its own visitor's upload"
    assert len(fake.submissions) == len(UPLOADERS)


def test_an_exif_rotated_photo_reaches_fal_upright(api, fake, tmp_path):
    photo = Image.new("RGB", (600, 400), (250, 250, 250))
    photo.paste((255, 0, 0), (0, 0, 50, 50))  # a red corner, top-left as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = tmp_path / "phone.jpg"
    photo.save(path, "JPEG", exif=exif.tobytes(), quality=95)
    edit(api, [str(path)])
    [image] = [d for d in fake.submissions[0].decoded_inputs if d.role == "image"]
    assert (image.width, image.height) == (400, 600)
    red, green, _ = image.to_pil().convert("RGB").getpixel((375, 25))
    assert red > 200 and green < 60, "the stored top-left corner is now top-right"


@pytest.mark.parametrize(
    ("case", "phrase"),
    [
        ("no images", "Add at least one reference image"),
        ("seventeen images", "at most 16"),
        ("corrupt image", "'broken.png'"),
        ("mask of another shape", "mask"),
        ("mask with nothing to edit", "no transparent area"),
        ("empty prompt", "prompt is empty"),
    ],
)
def test_bad_edits_are_explained_and_nothing_reaches_fal(api, fake, tmp_path, case, phrase):
    main = save_png(tmp_path / "main.png", (300, 200), (5, 5, 5))
    images, mask, overrides = [main], None, {}
    if case == "no images":
        images = []
    elif case == "seventeen images":
        images = [main] * 17
    elif case == "corrupt image":
        broken = tmp_path / "broken.png"
        broken.write_bytes(Path(main).read_bytes()[:40])
        images = [str(broken)]
    elif case == "mask of another shape":
        mask = mask_file(tmp_path / "m.png", (200, 300), (0, 0, 10, 10))
    elif case == "mask with nothing to edit":
        mask = save_png(tmp_path / "m.png", (300, 200), (0, 0, 0, 255), mode="RGBA")
    elif case == "empty prompt":
        overrides["prompt"] = "  "
    with pytest.raises(Exception) as caught:
        edit(api, images, mask, **overrides)
    assert phrase in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert fake.submissions == []
    assert fake.uploads == []


def test_a_black_and_white_mask_without_alpha_is_read_as_white_means_edit(api, fake, tmp_path):
    main = save_png(tmp_path / "main.png", (300, 200), (5, 5, 5))
    bw = Image.new("L", (300, 200), 0)
    bw.paste(255, (10, 20, 110, 120))
    mask_path = tmp_path / "bw.png"
    bw.save(mask_path)
    edit(api, [main], str(mask_path))
    [mask] = [d for d in fake.submissions[0].decoded_inputs if d.role == "mask"]
    alpha = np.asarray(mask.to_pil().convert("RGBA"))[..., 3]
    assert (alpha == 0).sum() == 100 * 100
    assert alpha[20:120, 10:110].max() == 0


def test_the_api_names_its_parameters_like_the_endpoint(app_server):
    import json
    import urllib.request

    with urllib.request.urlopen(app_server.url + "gradio_api/info") as response:
        info = json.load(response)
    params = info["named_endpoints"]["/edit"]["parameters"]
    assert [p["parameter_name"] for p in params] == [
        "prompt",
        "images",
        "image_urls",
        "mask",
        "mask_image_url",
        "image_size",
        "background",
        "quality",
        "input_fidelity",
        "num_images",
        "output_format",
        "sync_mode",
        "fal_key",
    ]
    urls = next(p for p in params if p["parameter_name"] == "image_urls")
    assert urls["type"] == {"type": "array", "items": {"type": "string"}}
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in params}
    assert defaults["image_size"] == "auto"
    assert defaults["input_fidelity"] == "high"


def hosted_results(api, fake, count: int) -> list[str]:
    """fal URLs of `count` images generated at the fake (hosted, not sync_mode)."""
    _, record, _ = api.predict(
        prompt="a quiet harbour", num_images=count, sync_mode=False, api_name="/generate"
    )
    urls = [image["url"] for image in record["images"]]
    assert len(urls) == count and all(url.startswith(fake.cdn_url + "/files/") for url in urls)
    return urls


def input_fetches(fake, urls) -> int:
    """GETs of these files at fal's storage (the app's downloads, or anyone's)."""
    paths = {url.removeprefix(fake.cdn_url) for url in urls}
    return sum(1 for r in fake.http_log if r.role == "cdn" and r.path in paths)


def test_image_urls_reach_fal_unchanged_after_the_files_and_nothing_is_uploaded(
    api, fake, tmp_path
):
    first, second = hosted_results(api, fake, 2)
    fetched = input_fetches(fake, [first, second])
    small = save_png(tmp_path / "small.png", (256, 256), (9, 9, 9))

    edit(api, [small], image_urls=[second, first])

    sub = fake.submissions[-1]
    assert sub.endpoint == EDIT and sub.schema_errors == []
    sent = sub.arguments["image_urls"]
    assert sent[0].startswith("data:image/png;base64,"), "the uploaded file comes first"
    assert sent[1:] == [second, first], "the URLs follow, unchanged and in order"
    assert [d.role for d in sub.decoded_inputs] == ["image"] * 3
    assert fake.uploads == []
    assert input_fetches(fake, [first, second]) == fetched, "the app never fetched them"


def test_an_edit_of_urls_alone_uploads_nothing(api, fake):
    [url] = hosted_results(api, fake, 1)
    gallery, record, _ = edit(api, [], image_urls=[url])
    sub = fake.submissions[-1]
    assert sub.arguments["image_urls"] == [url]
    assert "mask_image_url" not in sub.arguments
    assert fake.uploads == []
    assert not [r for r in fake.http_log if r.path.startswith("/storage/") or r.method == "PUT"]
    assert len(gallery) == 1 and record["arguments"]["image_urls"] == [url]


def test_a_mask_image_url_reaches_fal_unchanged(api, fake, tmp_path):
    [url] = hosted_results(api, fake, 1)
    main = tmp_path / "main.png"
    main.write_bytes(fake.download(url))
    # The mask goes to fal's storage first, as a caller would put it there.
    mask_bytes = Path(mask_file(tmp_path / "m.png", (1024, 1024), (0, 0, 64, 64))).read_bytes()
    mask_url = edit_mask_upload(fake, mask_bytes)

    edit(api, [], image_urls=[url], mask_image_url=mask_url)

    sub = fake.submissions[-1]
    assert sub.arguments["image_urls"] == [url]
    assert sub.arguments["mask_image_url"] == mask_url
    [received] = [d for d in sub.decoded_inputs if d.role == "mask"]
    assert received.data == mask_bytes


def test_a_mask_url_of_another_size_on_fals_storage_is_refused(api, fake, tmp_path):
    [url] = hosted_results(api, fake, 1)
    mask_bytes = Path(mask_file(tmp_path / "m.png", (300, 200), (0, 0, 10, 10))).read_bytes()
    mask_url = edit_mask_upload(fake, mask_bytes)
    before = len(fake.submissions)
    with pytest.raises(Exception) as caught:
        edit(api, [], image_urls=[url], mask_image_url=mask_url)
    assert "The mask is 300x200 but the first image is 1024x1024" in str(caught.value)
    assert len(fake.submissions) == before


def edit_mask_upload(fake, data: bytes) -> str:
    """Put a file on the fake's storage as fal_client would (its CDN upload)."""
    import httpx

    verify = fake.ssl_context()
    token = httpx.post(
        f"{fake.rest_url}/storage/auth/token",
        headers={"Authorization": "Key someone:else"},
        json={},
        verify=verify,
    ).json()["token"]
    answer = httpx.post(
        f"{fake.cdn_url}/files/upload",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "image/png"},
        content=data,
        verify=verify,
    )
    return str(answer.json()["access_url"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("image_urls", ["file:///etc/passwd"]),
        ("image_urls", ["/home/user/photo.png"]),
        ("image_urls", ["a cat on a sofa"]),
        ("image_urls", ["ftp://example.com/photo.png"]),
        ("image_urls", ["data:image/png;base64,iVBORw0KGgo="]),
        ("image_urls", [42]),
        ("mask_image_url", "file:///tmp/mask.png"),
        ("mask_image_url", "gopher://example.com/mask"),
    ],
)
def test_anything_but_an_http_url_is_refused_in_a_sentence_with_nothing_sent(
    api, fake, tmp_path, field, value
):
    main = save_png(tmp_path / "main.png", (300, 200), (5, 5, 5))
    with pytest.raises(Exception) as caught:
        edit(api, [main], **{field: value})
    message = str(caught.value)
    assert f"{field}" in message and "is not an http(s) URL" in message
    assert "give an https:// address fal can fetch" in message
    assert "Traceback" not in message
    assert fake.submissions == []
    assert fake.uploads == []
    assert [r for r in fake.http_log if r.role == "cdn"] == []


def test_a_mask_file_for_an_image_given_by_fal_url_is_checked_against_its_size(api, fake, tmp_path):
    [url] = hosted_results(api, fake, 1)  # 1024x1024
    wrong = mask_file(tmp_path / "wrong.png", (300, 200), (0, 0, 10, 10))
    before = len(fake.submissions)
    with pytest.raises(Exception) as caught:
        edit(api, [], str(wrong), image_urls=[url])
    assert "the first image is 1024x1024" in str(caught.value)
    assert len(fake.submissions) == before
    right = mask_file(tmp_path / "right.png", (1024, 1024), (0, 0, 64, 64))
    edit(api, [], str(right), image_urls=[url])
    sub = fake.submissions[-1]
    assert sub.arguments["image_urls"] == [url]
    [received] = [d for d in sub.decoded_inputs if d.role == "mask"]
    assert (received.width, received.height) == (1024, 1024)


def test_a_mask_file_for_an_image_elsewhere_is_refused_without_fetching_it(api, fake, tmp_path):
    mask = mask_file(tmp_path / "m.png", (300, 200), (0, 0, 10, 10))
    with pytest.raises(Exception) as caught:
        edit(api, [], mask, image_urls=["https://example.com/photo.png"])
    assert "not on fal's storage" in str(caught.value)
    assert fake.submissions == [] and fake.uploads == []
