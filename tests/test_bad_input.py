"""Bad input, from an API caller who can send anything: refused in a sentence, or normalised.

Every case goes through the real app (`python app.py`, driven by gradio_client).
A refusal must name the problem in one sentence and send nothing to fal (no
model request, no upload). Input that is odd but usable (see ARCHITECTURE.md and the
README's "The mask and the images, exactly") is normalised, and the test checks
what the fake fal service received. The page uses the same checks: its handlers
call the same request models, image and mask code.
"""

from __future__ import annotations

import io
import json
import struct
import urllib.request
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.conftest import RunningApp
from tests.fakefal import DecodedImage, FakeFal

WHOLE_COUNT = "num_images must be a whole number from 1 to 4."
GRADIO_BARE_ERROR = "has raised an exception but has not enabled verbose error reporting"
UNUSUAL_PROMPT = (
    "👩🏽‍🚀 an astronaut 🇯🇵 with a 🏳️‍🌈 flag; שלום and مرحبا read right to left; "
    "e\u0301 (a combining accent), 東京の夜景, 𝐛𝐨𝐥𝐝 𝕗𝕣𝕒𝕜𝕥𝕦𝕣, a zero-width\u200bspace"
)


def refused(call: Callable[[], object]) -> str:
    """The sentence of the error `call` raises: one clean sentence, never Gradio's bare one."""
    with pytest.raises(Exception) as caught:
        call()
    message = str(caught.value)
    assert GRADIO_BARE_ERROR not in message, "a bare error: the user is told nothing"
    assert "Traceback" not in message
    assert "\n" not in message and 10 < len(message) < 300
    return message


def assert_nothing_sent(fake: FakeFal) -> None:
    assert fake.submissions == [], "a refused request must not reach fal"
    assert fake.uploads == [], "not even its images"


def generate(api: Client, **values: Any) -> Any:
    values.setdefault("prompt", "a lighthouse at dusk")
    return api.predict(**values, api_name="/generate")


# --- /generate: prompts and parameters ---------------------------------------------

GENERATE_REFUSED = [
    pytest.param({"prompt": ""}, "The prompt is empty: describe the image you want.", id="empty"),
    pytest.param({"prompt": " \n\t  "}, "The prompt is empty", id="whitespace-only"),
    pytest.param({"prompt": "\u200b\u200d\ufeff"}, "The prompt is empty", id="invisible-only"),
    pytest.param({"prompt": "\x00\x07\x1b"}, "The prompt is empty", id="control-chars-only"),
    pytest.param(
        {"prompt": "x" * 32_001},
        "The prompt has 32,001 characters; the model accepts at most 32,000.",
        id="over-32000-chars",
    ),
    pytest.param({"prompt": None}, "The prompt must be text.", id="prompt-null"),
    pytest.param({"num_images": 0}, WHOLE_COUNT, id="num-images-0"),
    pytest.param({"num_images": -3}, WHOLE_COUNT, id="num-images-negative"),
    pytest.param({"num_images": 5}, WHOLE_COUNT, id="num-images-5"),
    pytest.param({"num_images": 1e9}, WHOLE_COUNT, id="num-images-huge"),
    pytest.param({"num_images": 2.5}, WHOLE_COUNT, id="num-images-fraction"),
    pytest.param({"num_images": True}, WHOLE_COUNT, id="num-images-true"),
    pytest.param({"num_images": "2"}, WHOLE_COUNT, id="num-images-digit-text"),
    pytest.param(
        {"num_images": "two"},
        WHOLE_COUNT,
        id="num-images-text",
    ),
    pytest.param(
        {"num_images": None},
        WHOLE_COUNT,
        id="num-images-null",
    ),
    pytest.param(
        {"image_size": "2048x2048"}, "2048x2048 is not in the list of choices", id="size-unknown"
    ),
    pytest.param({"image_size": "auto"}, "auto is not in the list of choices", id="size-auto"),
    pytest.param({"background": "none"}, "none is not in the list of choices", id="background"),
    pytest.param({"quality": "ultra"}, "ultra is not in the list of choices", id="quality"),
    pytest.param({"output_format": "gif"}, "gif is not in the list of choices", id="format"),
    pytest.param({"sync_mode": "yes"}, "sync_mode must be true or false.", id="sync-mode-text"),
    pytest.param(
        {"background": "transparent", "output_format": "jpeg"},
        "transparent background needs png or webp output",
        id="transparent-jpeg",
    ),
    pytest.param(
        {"fal_key": "not a key"}, "That does not look like a fal API key.", id="fal-key-spaces"
    ),
]


@pytest.mark.parametrize(("values", "phrase"), GENERATE_REFUSED)
def test_generate_refuses_bad_input_in_a_sentence_and_sends_nothing(api, fake, values, phrase):
    message = refused(lambda: generate(api, **values))
    assert phrase in message
    assert_nothing_sent(fake)


@pytest.mark.parametrize(
    ("values", "sent"),
    [
        pytest.param(
            {"prompt": UNUSUAL_PROMPT}, {"prompt": UNUSUAL_PROMPT}, id="unusual-unicode-as-typed"
        ),
        pytest.param(
            {"prompt": "a cat\x00 on a\x1b[31m mat\x7f,\tcalm\r\nand still"},
            {"prompt": "a cat on a[31m mat,\tcalm\r\nand still"},
            id="control-chars-removed",
        ),
        pytest.param({"prompt": "y" * 32_000}, {"prompt": "y" * 32_000}, id="exactly-32000-chars"),
        pytest.param({"num_images": 2.0}, {"num_images": 2}, id="whole-float-count"),
    ],
)
def test_generate_normalises_odd_but_usable_input(api, fake, values, sent):
    gallery, _, status = generate(api, **values)
    assert status.startswith("✅")
    [sub] = fake.submissions
    assert sub.schema_errors == []
    for name, value in sent.items():
        assert sub.arguments[name] == value
    assert len(gallery) == sub.arguments["num_images"]


def test_a_prompt_with_half_an_emoji_is_refused(app_server, fake):
    # gradio_client cannot even encode a lone surrogate; a browser's JSON can
    # ("\ud83d" escaped), so send it the way a page would.
    values = ["a cat \ud83d on a mat", "1024x1024", "auto", "high", 1, "png", False, ""]
    body = json.dumps({"data": values})  # ensure_ascii keeps the surrogate escaped
    message = call_api_raw(app_server, "generate", body)
    assert message == (
        "The prompt contains a broken character (half of an emoji or symbol); "
        "type or paste it again."
    )
    assert_nothing_sent(fake)


def call_api_raw(app: RunningApp, api_name: str, body: str) -> str:
    """Call `/api_name` over Gradio's plain HTTP API; the error message it ends with."""
    post = urllib.request.Request(
        f"{app.url}gradio_api/call/{api_name}",
        data=body.encode("ascii"),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(post, timeout=30) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(
        f"{app.url}gradio_api/call/{api_name}/{event_id}", timeout=30
    ) as response:
        stream = response.read().decode()
    assert "event: error" in stream, stream
    data = stream.split("event: error", 1)[1].split("data:", 1)[1].strip().splitlines()[0]
    return str(json.loads(data)["error"])


# --- /edit: images and masks ----------------------------------------------------------


def save(image: Image.Image, path: Path, fmt: str | None = None, **options: Any) -> Path:
    image.save(path, fmt, **options)
    return path


def png_with_header(path: Path, width: int, height: int, *, rows: int | None = None) -> Path:
    """A grayscale PNG claiming `width` x `height`; with `rows` None every row is really
    there (zeros, so ~1 MB of file inflates to width * height bytes: a decompression
    bomb), otherwise only that many rows follow (a header-only bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    compressor = zlib.compressobj(1)
    block = b"\x00" * ((width + 1) * 100)
    count = (rows if rows is not None else height) // 100 or 1
    idat = b"".join(compressor.compress(block) for _ in range(count)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )
    return path


def rgba_mask(size: tuple[int, int], box: tuple[int, int, int, int] | None) -> Image.Image:
    """Opaque black, with `box` (if any) transparent white: the area to edit."""
    mask = Image.new("RGBA", size, (0, 0, 0, 255))
    if box is not None:
        mask.paste((255, 255, 255, 0), box)
    return mask


@dataclass
class EditCase:
    images: list[Path]
    mask: Path | None = None
    values: dict[str, Any] = field(default_factory=dict)


def edit(api: Client, case: EditCase) -> Any:
    values = {"prompt": "make the sky stormy", **case.values}
    return api.predict(
        images=[handle_file(str(p)) for p in case.images],
        mask=handle_file(str(case.mask)) if case.mask else None,
        **values,
        api_name="/edit",
    )


MAIN_SIZE = (300, 200)


def main_image(tmp: Path) -> Path:
    return save(Image.new("RGB", MAIN_SIZE, (10, 90, 200)), tmp / "main.png")


def _noise(size: tuple[int, int]) -> Image.Image:
    pixels = np.random.default_rng(5).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def _truncated_png(tmp: Path) -> Path:
    path = save(_noise(MAIN_SIZE), tmp / "cut.png")
    path.write_bytes(path.read_bytes()[:4000])
    return path


def _corrupt_jpeg(tmp: Path) -> Path:
    path = save(_noise(MAIN_SIZE), tmp / "scrambled.jpg", "JPEG")
    data = bytearray(path.read_bytes())
    data[600:] = np.random.default_rng(9).integers(0, 256, len(data) - 600, np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def _over_50_mb(tmp: Path) -> Path:
    path = tmp / "huge.png"
    with path.open("wb") as out:
        out.write(b"\x89PNG\r\n\x1a\n")
        out.truncate(50_000_001)  # sparse: costs no disk
    return path


EDIT_REFUSED: dict[str, tuple[Callable[[Path], EditCase], str]] = {
    "no-images": (lambda t: EditCase([]), "Add at least one reference image"),
    "17-images": (
        lambda t: EditCase([main_image(t)] * 17),
        "You added 17 reference images; the model takes at most 16.",
    ),
    "not-an-image": (
        lambda t: EditCase([_text_file(t / "notes.png")]),
        "The image 'notes.png' is not an image that can be read; use a PNG, JPEG or WebP file.",
    ),
    "zero-bytes": (
        lambda t: EditCase([_text_file(t / "empty.png", "")]),
        "The image 'empty.png' is empty (0 bytes)",
    ),
    "truncated": (
        lambda t: EditCase([_truncated_png(t)]),
        "The image 'cut.png' is damaged or incomplete",
    ),
    "corrupt-jpeg": (
        lambda t: EditCase([_corrupt_jpeg(t)]),
        "The image 'scrambled.jpg' is",
    ),
    "bomb-header-only": (
        lambda t: EditCase([png_with_header(t / "claims.png", 100_000, 100_000, rows=100)]),
        "The image 'claims.png' has too many pixels (more than 8192x8192); use a smaller image.",
    ),
    "over-the-pixel-limit": (
        lambda t: EditCase([png_with_header(t / "wide.png", 9000, 8000, rows=100)]),
        "The image 'wide.png' is 9000x8000 pixels, over the 8192x8192 limit; use a smaller image.",
    ),
    "over-50-mb": (lambda t: EditCase([_over_50_mb(t)]), "larger than 50 MB"),
    "svg": (
        lambda t: EditCase(
            [_text_file(t / "logo.svg", '<svg xmlns="http://www.w3.org/2000/svg"/>')]
        ),
        "The image 'logo.svg' is not an image that can be read",
    ),
    "mask-other-shape": (
        lambda t: EditCase(
            [main_image(t)], save(rgba_mask((200, 300), (0, 0, 50, 50)), t / "m.png")
        ),
        "The mask is 200x300 but the first image is 300x200; use a mask of the same size.",
    ),
    "mask-nothing-to-edit": (
        lambda t: EditCase([main_image(t)], save(rgba_mask(MAIN_SIZE, None), t / "m.png")),
        "The mask has no transparent area, so nothing would change",
    ),
    "mask-not-an-image": (
        lambda t: EditCase([main_image(t)], _text_file(t / "mask.png")),
        "The mask is not an image that can be read; use a PNG mask the size of the first image.",
    ),
    "mask-zero-bytes": (
        lambda t: EditCase([main_image(t)], _text_file(t / "mask.png", "")),
        "The mask is empty (0 bytes)",
    ),
    "mask-without-image": (
        lambda t: EditCase([], save(rgba_mask(MAIN_SIZE, (0, 0, 9, 9)), t / "m.png")),
        "Add at least one reference image",
    ),
    "empty-prompt": (
        lambda t: EditCase([main_image(t)], values={"prompt": "   "}),
        "The prompt is empty",
    ),
    "input-fidelity": (
        lambda t: EditCase([main_image(t)], values={"input_fidelity": "medium"}),
        "medium is not in the list of choices",
    ),
    "edit-size": (
        lambda t: EditCase([main_image(t)], values={"image_size": "2048x2048"}),
        "2048x2048 is not in the list of choices",
    ),
    "edit-num-images": (
        lambda t: EditCase([main_image(t)], values={"num_images": 7}),
        WHOLE_COUNT,
    ),
    "edit-num-images-text": (
        lambda t: EditCase([main_image(t)], values={"num_images": "three"}),
        WHOLE_COUNT,
    ),
    "edit-num-images-null": (
        lambda t: EditCase([main_image(t)], values={"num_images": None}),
        WHOLE_COUNT,
    ),
}


def _text_file(path: Path, text: str = "these are notes, not pixels") -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", list(EDIT_REFUSED))
def test_edit_refuses_bad_input_in_a_sentence_and_sends_nothing(api, fake, tmp_path, name):
    make, phrase = EDIT_REFUSED[name]
    message = refused(lambda: edit(api, make(tmp_path)))
    assert phrase in message
    assert_nothing_sent(fake)


def peak_rss_kb(pid: int) -> int:
    """The process's peak resident set size since it started or was last reset (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc: the peak cannot be read")


def reset_peak_rss(pid: int) -> int:
    """Set VmHWM back to the current RSS (Linux: "5" in clear_refs); returns it."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return peak_rss_kb(pid)


def test_a_decompression_bomb_is_refused_without_decoding_it(api, fake, app_server, tmp_path):
    # 12000x12000 pixels in a ~0.6 MB file: 144 MB once decoded.
    bomb = png_with_header(tmp_path / "bomb.png", 12_000, 12_000)
    assert bomb.stat().st_size < 1_000_000
    pid = app_server.process.pid
    # The peak, not the RSS after the refusal: a decoded buffer freed by then would
    # leave no trace in the RSS, but it raises the high-water mark.
    before = reset_peak_rss(pid)
    message = refused(lambda: edit(api, EditCase([bomb])))
    grown_mb = (peak_rss_kb(pid) - before) / 1024
    assert "The image 'bomb.png' has too many pixels (more than 8192x8192)" in message
    assert grown_mb < 64, f"the app's peak memory rose by {grown_mb:.0f} MB"
    assert_nothing_sent(fake)


# Odd but usable: (make the file, check what fal received).
Check = Callable[[list[DecodedImage]], None]


def pixel(image: Image.Image, xy: tuple[int, int]) -> tuple[int, ...]:
    value = image.getpixel(xy)
    return tuple(value) if isinstance(value, tuple) else (int(value or 0),)


def _only(received: list[DecodedImage], role: str = "image") -> DecodedImage:
    [item] = [d for d in received if d.role == role]
    return item


def _cmyk(t: Path) -> EditCase:
    return EditCase([save(Image.new("CMYK", MAIN_SIZE, (0, 255, 255, 0)), t / "print.jpg")])


def _check_cmyk(received: list[DecodedImage]) -> None:
    image = _only(received)
    assert (image.format, image.mode, image.width, image.height) == ("JPEG", "RGB", 300, 200)
    red, green, blue = pixel(image.to_pil(), (150, 100))
    assert red > 200 and green < 60 and blue < 60, "CMYK (0, 255, 255, 0) is red"


def _sixteen_bit(t: Path) -> EditCase:
    deep = Image.fromarray(np.full((200, 300), 40_000, np.uint16))
    return EditCase([save(deep, t / "deep.png")])


def _check_sixteen_bit(received: list[DecodedImage]) -> None:
    image = _only(received)
    assert (image.format, image.mode) == ("PNG", "L")
    assert pixel(image.to_pil(), (5, 5)) == (round(40_000 / 257),)


def _palette(t: Path) -> EditCase:
    image = Image.new("P", MAIN_SIZE, 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.paste(0, (0, 0, 100, 200))  # index 0 is transparent
    return EditCase([save(image, t / "sticker.png", transparency=0)])


def _check_palette(received: list[DecodedImage]) -> None:
    image = _only(received)
    assert (image.format, image.mode) == ("PNG", "RGBA")
    pixels = image.to_pil()
    assert pixel(pixels, (50, 50))[3] == 0
    assert pixel(pixels, (250, 50)) == (255, 0, 0, 255)


def _animated(t: Path, fmt: str, name: str) -> EditCase:
    frames = [Image.new("RGB", MAIN_SIZE, colour) for colour in ((0, 200, 0), (200, 0, 200))]
    path = t / name
    frames[0].save(path, fmt, save_all=True, append_images=frames[1:], duration=100, loop=0)
    # The input must really be an animation, or the test proves nothing: a Pillow that
    # cannot write one fails here, as in test_images.py, rather than passing or skipping.
    with Image.open(path) as written:
        assert getattr(written, "n_frames", 1) == 2, f"{name} is not an animation"
    return EditCase([path])


def _check_first_frame(received: list[DecodedImage]) -> None:
    image = _only(received)
    with Image.open(io.BytesIO(image.data)) as opened:
        assert getattr(opened, "n_frames", 1) == 1, "one frame: not an animation"
    red, green, blue = pixel(image.to_pil().convert("RGB"), (5, 5))
    assert green > 150 and red < 50 and blue < 50, "the first frame is the green one"


def _exif_rotated(t: Path) -> EditCase:
    photo = Image.new("RGB", (400, 300), (250, 250, 250))
    photo.paste((255, 0, 0), (0, 0, 40, 40))
    exif = Image.Exif()
    exif[0x0112] = 8  # stored rotated: display turns it 90° counter-clockwise
    return EditCase([save(photo, t / "phone.jpg", "JPEG", exif=exif.tobytes(), quality=95)])


def _check_exif_rotated(received: list[DecodedImage]) -> None:
    image = _only(received)
    assert (image.width, image.height) == (300, 400)
    red, green, _ = pixel(image.to_pil().convert("RGB"), (20, 380))
    assert red > 200 and green < 60, "the stored top-left corner is now bottom-left"


def _gray_alpha(t: Path) -> EditCase:
    return EditCase([save(Image.new("LA", MAIN_SIZE, (128, 0)), t / "ghost.png")])


def _check_gray_alpha(received: list[DecodedImage]) -> None:
    image = _only(received)
    assert (image.format, image.mode) == ("PNG", "RGBA")
    assert pixel(image.to_pil(), (1, 1))[3] == 0


def _tiff(t: Path) -> EditCase:
    return EditCase([save(Image.new("RGB", MAIN_SIZE, (1, 2, 3)), t / "scan.tiff")])


def _check_png(received: list[DecodedImage]) -> None:
    image = _only(received)
    assert (image.format, image.width, image.height) == ("PNG", 300, 200)


def _sixteen_images(t: Path) -> EditCase:
    paths = [
        save(Image.new("RGB", (64 + n, 64), (n * 15, 0, 0)), t / f"ref{n}.png") for n in range(16)
    ]
    return EditCase(paths)


def _check_sixteen(received: list[DecodedImage]) -> None:
    images = [d for d in received if d.role == "image"]
    assert [d.width for d in images] == [64 + n for n in range(16)], "all 16, in order"


def _mask_without_alpha(t: Path) -> EditCase:
    mask = Image.new("L", MAIN_SIZE, 0)
    mask.paste(255, (10, 20, 110, 120))  # white = edit, when there is no alpha
    return EditCase([main_image(t)], save(mask, t / "bw.png"))


def _check_mask_box(received: list[DecodedImage]) -> None:
    mask = _only(received, "mask")
    assert (mask.format, mask.width, mask.height) == ("PNG", 300, 200)
    alpha = np.asarray(mask.to_pil().convert("RGBA"))[..., 3]
    assert (alpha == 0).sum() == 100 * 100
    assert alpha[20:120, 10:110].max() == 0


def _mask_jpeg(t: Path) -> EditCase:
    mask = Image.new("L", MAIN_SIZE, 0)
    mask.paste(255, (10, 20, 110, 120))
    return EditCase([main_image(t)], save(mask, t / "mask.jpg", "JPEG", quality=100))


def _mask_half_size(t: Path) -> EditCase:
    mask = rgba_mask((150, 100), (5, 10, 55, 60))  # same shape, half the size
    return EditCase([main_image(t)], save(mask, t / "small-mask.png"))


EDIT_NORMALISED: dict[str, tuple[Callable[[Path], EditCase], Check]] = {
    "cmyk-jpeg": (_cmyk, _check_cmyk),
    "16-bit-grayscale": (_sixteen_bit, _check_sixteen_bit),
    "palette-with-transparency": (_palette, _check_palette),
    "animated-gif": (lambda t: _animated(t, "GIF", "anim.gif"), _check_first_frame),
    "animated-webp": (lambda t: _animated(t, "WEBP", "anim.webp"), _check_first_frame),
    "animated-png": (lambda t: _animated(t, "PNG", "anim.png"), _check_first_frame),
    "exif-rotated": (_exif_rotated, _check_exif_rotated),
    "gray-with-alpha": (_gray_alpha, _check_gray_alpha),
    "tiff": (_tiff, _check_png),
    "16-images": (_sixteen_images, _check_sixteen),
    "mask-without-alpha": (_mask_without_alpha, _check_mask_box),
    "mask-jpeg": (_mask_jpeg, _check_mask_box),
    "mask-half-size": (_mask_half_size, _check_mask_box),
}


@pytest.mark.parametrize("name", list(EDIT_NORMALISED))
def test_edit_normalises_odd_but_usable_input(api, fake, tmp_path, name):
    make, check = EDIT_NORMALISED[name]
    _, _, status = edit(api, make(tmp_path))
    assert status.startswith("✅")
    [sub] = fake.submissions
    assert sub.schema_errors == []
    check(sub.decoded_inputs)
