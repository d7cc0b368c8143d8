"""Saved outputs carry their prompt and parameters, and give them back."""

from __future__ import annotations

import io
import json
import re
import struct
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, PngImagePlugin

from backend.errors import InvalidInput
from backend.metadata import (
    APP_NAME,
    APP_TAG,
    build_metadata,
    embed_png_text,
    parameters_for_ui,
    planned_outputs,
    read_metadata,
    write_outputs,
)
from backend.schema import (
    EDIT_ENDPOINT,
    MIME_TYPES,
    TEXT_TO_IMAGE_ENDPOINT,
    GenerationResult,
    ResultImage,
    Timings,
)
from tests.test_keys_and_hosting import fragments

NOW = datetime(2026, 11, 21, 13, 45, 1, tzinfo=UTC)
GENERATE_ARGUMENTS = {
    "prompt": "a red fox in snow, watercolor",
    "image_size": "1536x1024",
    "background": "auto",
    "quality": "medium",
    "num_images": 2,
    "output_format": "png",
    "sync_mode": False,
}
EDIT_ARGUMENTS = {
    "prompt": "put a red kite in the sky",
    "image_urls": ["data:image/png;base64,iVBORw0KGgo=", "https://v3b.fal.media/files/b/x.png"],
    "mask_image_url": "data:image/png;base64,iVBORw0KGgo=",
    "image_size": "auto",
    "background": "opaque",
    "quality": "low",
    "input_fidelity": "low",
    "num_images": 1,
    "output_format": "webp",
    "sync_mode": True,
}
UNICODE_PROMPT = "Ein Fuchs im Schnee 🦊 — 雪の中の狐, שועל בשלג, e\u0301te\u0301"


# --- helpers ----------------------------------------------------------------------


def png_text(image: Image.Image) -> dict[str, str]:
    assert isinstance(image, PngImagePlugin.PngImageFile)
    return dict(image.text)


def png_chunks(png: bytes) -> list[tuple[bytes, bytes]]:
    """(type, data) of every chunk, checking each CRC: an independent reader."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    position, chunks = 8, []
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position : position + 8])
        data = png[position + 8 : position + 8 + length]
        (crc,) = struct.unpack(">I", png[position + 8 + length : position + 12 + length])
        assert crc == zlib.crc32(kind + data), f"bad CRC in {kind!r}"
        chunks.append((kind, data))
        position += 12 + length
    return chunks


def noisy_image(mode: str = "RGBA", size: tuple[int, int] = (300, 200)) -> Image.Image:
    # Noise does not compress, so the PNG spans several IDAT chunks.
    rng = np.random.default_rng(7)
    channels = len(mode)
    pixels = rng.integers(0, 256, (size[1], size[0], channels), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


def encode(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.convert("RGB").save(buffer, "JPEG", quality=90)
    elif output_format == "webp":
        image.save(buffer, "WEBP", quality=80)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def make_result(
    tmp_path: Path,
    *,
    arguments: dict[str, Any] | None = None,
    endpoint: str = TEXT_TO_IMAGE_ENDPOINT,
    request_id: str = "0a1b2c3d-4e5f",
    key_source: str = "your key",
) -> GenerationResult:
    arguments = dict(arguments or GENERATE_ARGUMENTS)
    output_format = arguments["output_format"]
    images = []
    for index in range(arguments["num_images"]):
        data = encode(noisy_image(), output_format)
        path = tmp_path / "results" / f"image-{index + 1}.{output_format}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        images.append(ResultImage(str(path), MIME_TYPES[output_format], 300, 200, len(data), None))
    return GenerationResult(
        endpoint=endpoint,
        request_id=request_id,
        arguments=arguments,
        images=images,
        timings=Timings(1.0, 2.0, 0.5, 3.5),
        key_source=key_source,
    )


def expected_ui(arguments: dict[str, Any], *, edit: bool = False) -> dict[str, Any]:
    names = ["prompt", "image_size", "background", "quality", "num_images"]
    names += ["output_format", "sync_mode"] + (["input_fidelity"] if edit else [])
    return {name: arguments[name] for name in names}


# --- build_metadata ----------------------------------------------------------------


def test_metadata_of_a_generation():
    metadata = build_metadata(_bare(), now=NOW)
    assert metadata["tag"] == APP_TAG
    assert metadata["app"] == APP_NAME
    assert metadata["endpoint"] == TEXT_TO_IMAGE_ENDPOINT
    assert metadata["request_id"] == "0a1b2c3d-4e5f"
    assert metadata["created"] == "2026-11-21T13:45:01+00:00"
    assert metadata["parameters"] == GENERATE_ARGUMENTS
    assert metadata["demo"] is False
    json.dumps(metadata)  # serialisable as is


def _bare(**changes) -> GenerationResult:
    values = {
        "endpoint": TEXT_TO_IMAGE_ENDPOINT,
        "request_id": "0a1b2c3d-4e5f",
        "arguments": dict(GENERATE_ARGUMENTS),
        "images": [],
        "key_source": "the host's key",
        **changes,
    }
    return GenerationResult(**values)


def test_created_is_utc_now_by_default():
    before = datetime.now(UTC)
    created = datetime.fromisoformat(build_metadata(_bare())["created"])
    assert created.utcoffset() == timedelta(0)
    assert abs((created - before).total_seconds()) < 5


def test_an_edit_records_how_many_images_and_whether_a_mask_not_the_urls():
    metadata = build_metadata(_bare(endpoint=EDIT_ENDPOINT, arguments=dict(EDIT_ARGUMENTS)))
    parameters = metadata["parameters"]
    assert "image_urls" not in parameters
    assert "mask_image_url" not in parameters
    assert parameters["reference_images"] == 2
    assert parameters["mask"] is True
    assert parameters["input_fidelity"] == "low"
    text = json.dumps(metadata)
    assert "data:" not in text and "fal.media" not in text

    without_mask = {k: v for k, v in EDIT_ARGUMENTS.items() if k != "mask_image_url"}
    metadata = build_metadata(_bare(endpoint=EDIT_ENDPOINT, arguments=without_mask))
    assert metadata["parameters"]["mask"] is False


@pytest.mark.parametrize(
    "changes",
    [{"request_id": "demo-0123abcd"}, {"key_source": "demo"}, {"metrics": {"demo": True}}],
)
def test_demo_runs_are_marked(changes):
    assert build_metadata(_bare(**changes))["demo"] is True


# --- embed_png_text ----------------------------------------------------------------


def test_embedding_text_leaves_the_pixel_data_byte_identical():
    original = encode(noisy_image(size=(400, 300)), "png")
    embedded = embed_png_text(original, APP_TAG, '{"hello": "wörld 🦊"}')

    before, after = png_chunks(original), png_chunks(embedded)
    idat_before = [data for kind, data in before if kind == b"IDAT"]
    assert len(idat_before) > 1, "the test image should span several IDAT chunks"
    assert [data for kind, data in after if kind == b"IDAT"] == idat_before
    # The new chunk sits right after IHDR; everything else is as it was.
    assert after[0] == before[0] and after[0][0] == b"IHDR"
    assert after[1][0] == b"iTXt"
    assert [after[0], *after[2:]] == before

    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(embedded)) as b:
        assert np.array_equal(np.asarray(a), np.asarray(b))
        assert png_text(b)[APP_TAG] == '{"hello": "wörld 🦊"}'


def test_embedding_again_replaces_the_old_text():
    png = encode(noisy_image(), "png")
    twice = embed_png_text(embed_png_text(png, APP_TAG, "first"), APP_TAG, "second")
    texts = [data for kind, data in png_chunks(twice) if kind == b"iTXt"]
    assert len(texts) == 1
    with Image.open(io.BytesIO(twice)) as image:
        assert png_text(image)[APP_TAG] == "second"


def test_other_text_chunks_are_kept():
    info = PngImagePlugin.PngInfo()
    info.add_text("Software", "somebody else")
    buffer = io.BytesIO()
    noisy_image().save(buffer, "PNG", pnginfo=info)
    embedded = embed_png_text(buffer.getvalue(), APP_TAG, "{}")
    with Image.open(io.BytesIO(embedded)) as image:
        assert png_text(image) == {APP_TAG: "{}", "Software": "somebody else"}


@pytest.mark.parametrize(
    "data",
    [b"", b"GIF89a....", encode(noisy_image(), "jpeg"), encode(noisy_image(), "png")[:-30]],
    ids=["empty", "gif", "jpeg", "truncated"],
)
def test_only_whole_pngs_take_text(data):
    with pytest.raises(InvalidInput) as info:
        embed_png_text(data, APP_TAG, "{}")
    assert "PNG" in info.value.message


# --- kept outputs and read_metadata round trips ------------------------------------


def save_outputs(result, folder: Path, *, now=None, tag: str = "0a1b2c3d") -> list[Path]:
    """Where a run's images go (named before any file exists), then the files."""
    paths = planned_outputs(result, folder, tag, now=now)
    write_outputs(result, paths)
    return paths


@pytest.mark.parametrize("output_format", ["png", "jpeg", "webp"])
def test_saved_outputs_give_their_parameters_back(tmp_path, output_format):
    arguments = {**GENERATE_ARGUMENTS, "output_format": output_format}
    result = make_result(tmp_path, arguments=arguments)
    paths = save_outputs(result, tmp_path / "outputs", now=NOW)

    assert len(paths) == 2
    for number, (path, image) in enumerate(zip(paths, result.images, strict=True), start=1):
        assert path.parent == tmp_path / "outputs"
        assert re.fullmatch(
            rf"\d{{4}}-\d\d-\d\d_\d{{6}}_a-red-fox-in-snow-watercolor_0a1b2c3d_{number}\.\w+",
            path.name,
        )
        sidecar = path.with_name(path.name + ".json")
        if output_format == "png":
            assert not sidecar.exists()
            metadata = read_metadata(path.read_bytes())
        else:
            # Byte for byte as fal made it; the record lives beside it.
            assert path.read_bytes() == Path(image.path).read_bytes()
            metadata = read_metadata(path.read_bytes(), sidecar=sidecar.read_bytes())
            assert read_metadata(sidecar.read_bytes()) == metadata  # the .json alone works too
        assert metadata["request_id"] == result.request_id
        assert metadata["image_number"] == number
        assert parameters_for_ui(metadata) == ("generate", expected_ui(arguments))


def test_a_saved_png_keeps_its_pixels(tmp_path):
    result = make_result(tmp_path)
    (path, *_) = save_outputs(result, tmp_path / "outputs")
    original = Path(result.images[0].path).read_bytes()
    saved = path.read_bytes()
    idat = [[d for k, d in png_chunks(png) if k == b"IDAT"] for png in (original, saved)]
    assert idat[0] == idat[1]
    with Image.open(io.BytesIO(original)) as a, Image.open(io.BytesIO(saved)) as b:
        assert a.mode == b.mode == "RGBA"
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("output_format", ["png", "jpeg"])
def test_a_unicode_prompt_round_trips(tmp_path, output_format):
    arguments = {**GENERATE_ARGUMENTS, "prompt": UNICODE_PROMPT, "output_format": output_format}
    (path, *_) = save_outputs(make_result(tmp_path, arguments=arguments), tmp_path / "out")
    sidecar = path.with_name(path.name + ".json")
    metadata = read_metadata(
        path.read_bytes(), sidecar=sidecar.read_bytes() if sidecar.exists() else None
    )
    tab, values = parameters_for_ui(metadata)
    assert tab == "generate"
    assert values["prompt"] == UNICODE_PROMPT
    assert path.name.split("_")[2].startswith("ein-fuchs-im-schnee")


def test_an_edit_round_trips_to_the_edit_tab(tmp_path):
    result = make_result(tmp_path, arguments=EDIT_ARGUMENTS, endpoint=EDIT_ENDPOINT)
    (path, *_) = save_outputs(result, tmp_path / "out")
    metadata = read_metadata(path.read_bytes(), sidecar=Path(f"{path}.json").read_bytes())
    assert parameters_for_ui(metadata) == ("edit", expected_ui(EDIT_ARGUMENTS, edit=True))


def test_names_are_unique_and_the_folder_is_made(tmp_path):
    result = make_result(tmp_path)
    outputs = tmp_path / "new" / "folder"
    # Two runs at the same second with the same prompt: their ids tell them apart.
    first = save_outputs(result, outputs, now=NOW, tag="run1")
    second = save_outputs(result, outputs, now=NOW, tag="run2")
    assert len(set(first + second)) == 4
    assert all(path.exists() for path in first + second)


def test_a_prompt_without_words_still_makes_a_name(tmp_path):
    arguments = {**GENERATE_ARGUMENTS, "prompt": "🦊🦊 !!!", "num_images": 1}
    (path,) = save_outputs(make_result(tmp_path, arguments=arguments), tmp_path / "out")
    assert path.name.endswith("_image_0a1b2c3d_1.png")


def test_nothing_saved_holds_a_key(tmp_path, monkeypatch):
    key = "1b2c3d4e-0000-4000-8000-000000000000:0123456789abcdef0123456789abcdef"
    monkeypatch.setenv("FAL_KEY", key)
    # The key goes in with the result, in the one field that names a key (where it
    # came from), so that a save writing that field would be caught.
    for output_format in ("png", "webp"):
        arguments = {**GENERATE_ARGUMENTS, "output_format": output_format}
        made = make_result(tmp_path, arguments=arguments, key_source=key)
        save_outputs(made, tmp_path / "out", tag=f"run-{output_format}")
    source = "your key"
    save_outputs(make_result(tmp_path, key_source=source), tmp_path / "out", tag="run-3")
    files = list((tmp_path / "out").iterdir())
    assert len(files) == 8  # four PNGs, two WebPs and their two sidecars
    for path in files:
        data = path.read_bytes().decode("latin-1")
        leaked = [part for part in fragments(key) if part in data]
        assert leaked == [], f"{path.name} holds part of the key"
        assert source not in data  # not even where the key came from
        assert "FAL_KEY" not in data


# --- what has no parameters ----------------------------------------------------------


def test_a_png_without_metadata_is_refused(tmp_path):
    with pytest.raises(InvalidInput) as info:
        read_metadata(encode(noisy_image(), "png"))
    assert info.value.message.startswith("This image holds no GPT Image Studio parameters")


def test_a_jpeg_without_its_sidecar_is_refused():
    with pytest.raises(InvalidInput, match="holds no GPT Image Studio parameters"):
        read_metadata(encode(noisy_image(), "jpeg"))


@pytest.mark.parametrize(
    "text",
    ["not json", "[1, 2]", '{"parameters": {}}', '{"tag": "gpt-image-studio", "parameters": 3}'],
)
def test_garbled_records_are_refused(text):
    png = embed_png_text(encode(noisy_image(), "png"), APP_TAG, text)
    with pytest.raises(InvalidInput, match="holds no GPT Image Studio parameters"):
        read_metadata(png)
    with pytest.raises(InvalidInput, match="holds no GPT Image Studio parameters"):
        read_metadata(b"", sidecar=text.encode())


def test_a_damaged_png_is_refused():
    png = embed_png_text(encode(noisy_image(), "png"), APP_TAG, "{}")
    with pytest.raises(InvalidInput):
        read_metadata(png[:40])


def test_text_after_the_pixels_is_found_too():
    # Some tools write their text chunks after IDAT; Pillow's `text` finds those.
    record = json.dumps(build_metadata(_bare()))
    png = embed_png_text(encode(noisy_image(), "png"), APP_TAG, record)
    chunks = png_chunks(png)
    moved = [chunks[0], *chunks[2:-1], chunks[1], chunks[-1]]
    rebuilt = b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(d)) + k + d + struct.pack(">I", zlib.crc32(k + d)) for k, d in moved
    )
    assert read_metadata(rebuilt)["request_id"] == "0a1b2c3d-4e5f"


# --- parameters_for_ui -------------------------------------------------------------


def test_unknown_keys_are_dropped_and_missing_ones_take_defaults():
    metadata = {
        "endpoint": TEXT_TO_IMAGE_ENDPOINT,
        "parameters": {"prompt": "a cat", "quality": "low", "seed": 42, "future_option": "x"},
    }
    tab, values = parameters_for_ui(metadata)
    assert tab == "generate"
    assert values == {
        "prompt": "a cat",
        "image_size": "1024x1024",
        "background": "auto",
        "quality": "low",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
    }


def test_edit_parameters_include_input_fidelity():
    metadata = {"endpoint": EDIT_ENDPOINT, "parameters": {"prompt": "a hat", "mask": True}}
    tab, values = parameters_for_ui(metadata)
    assert tab == "edit"
    assert values["input_fidelity"] == "high"
    assert values["image_size"] == "auto"
    assert "mask" not in values and "image_urls" not in values


@pytest.mark.parametrize(
    ("parameters", "phrase"),
    [
        ({"prompt": "a cat", "quality": "ultra"}, "quality must be one of"),
        ({"prompt": "a cat", "num_images": 9}, "num_images must be a whole number"),
        ({"prompt": "a cat", "image_size": "auto"}, "image_size must be one of"),
        ({"prompt": "   "}, "The prompt is empty"),
        ({"quality": "low"}, "The prompt is required"),
    ],
)
def test_invalid_saved_values_are_refused(parameters, phrase):
    metadata = {"endpoint": TEXT_TO_IMAGE_ENDPOINT, "parameters": parameters}
    with pytest.raises(InvalidInput) as info:
        parameters_for_ui(metadata)
    assert info.value.message.startswith("The saved parameters cannot be used:")
    assert phrase in info.value.message


def test_an_unknown_endpoint_is_refused():
    with pytest.raises(InvalidInput, match="endpoint"):
        parameters_for_ui({"endpoint": "fal-ai/flux", "parameters": {"prompt": "a cat"}})
