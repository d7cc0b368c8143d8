"""Painted strokes and uploaded masks become exactly the PNG fal expects."""

from __future__ import annotations

import base64
import io
import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend.errors import InvalidInput
from backend.masks import (
    Mask,
    _may_pass_limit,
    mask_from_editor,
    mask_from_layers,
    mask_from_upload,
    mask_preview,
)

W, H = 1536, 1024
EDIT = (255, 255, 255, 0)
KEEP = (0, 0, 0, 255)


def layer(width: int = W, height: int = H) -> np.ndarray:
    """A fully transparent RGBA layer, as the editor gives for an unpainted canvas."""
    return np.zeros((height, width, 4), dtype=np.uint8)


def paint(target: np.ndarray, x0: int, y0: int, x1: int, y1: int, alpha: int = 255) -> None:
    target[y0:y1, x0:x1] = (200, 30, 30, alpha)


def decoded(mask: Mask) -> np.ndarray:
    """The mask's PNG, reopened from its bytes, as an HxWx4 RGBA array (checks format and
    mode: RGBA, as fal and OpenAI show a mask)."""
    with Image.open(io.BytesIO(mask.png)) as image:
        assert image.format == "PNG"
        assert image.mode == "RGBA"
        assert image.size == (mask.width, mask.height)
        return np.asarray(image.convert("RGBA")).copy()


def assert_mask_is(mask: Mask | None, expected_edit: np.ndarray) -> None:
    """Exactly `expected_edit` is white with alpha 0; everything else opaque black."""
    assert mask is not None
    pixels = decoded(mask)
    assert pixels.shape[:2] == expected_edit.shape
    assert (pixels[expected_edit] == EDIT).all()
    assert (pixels[~expected_edit] == KEEP).all()
    assert np.array_equal(pixels[..., 3] == 0, expected_edit)
    assert mask.edit_fraction == pytest.approx(expected_edit.mean())
    assert np.array_equal(mask.edit_area(), expected_edit)


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def one_sentence(message: str) -> bool:
    return message.endswith(".") and ". " not in message and "\n" not in message


# ---- painted layers -------------------------------------------------------------------------


def test_union_of_two_layers_is_exactly_the_edit_area():
    first, second = layer(), layer()
    paint(first, 100, 50, 400, 300, alpha=255)
    paint(second, 350, 250, 900, 700, alpha=10)  # faint paint still counts
    mask = mask_from_layers([first, second], (W, H))

    expected = np.zeros((H, W), dtype=bool)
    expected[50:300, 100:400] = True
    expected[250:700, 350:900] = True
    assert_mask_is(mask, expected)
    assert mask is not None
    assert (mask.width, mask.height) == (W, H)


def test_invert_edits_everything_but_the_strokes():
    strokes = layer()
    paint(strokes, 10, 20, 30, 40)
    mask = mask_from_layers([strokes], (W, H), invert=True)

    expected = np.ones((H, W), dtype=bool)
    expected[20:40, 10:30] = False
    assert_mask_is(mask, expected)


def test_nothing_painted_gives_no_mask():
    assert mask_from_layers([], (W, H)) is None
    assert mask_from_layers([layer()], (W, H)) is None
    assert mask_from_layers([None], (W, H)) is None
    assert mask_from_layers([layer(), layer(), layer()], (W, H)) is None
    # Inverting nothing would edit everything: that is just "no mask".
    assert mask_from_layers([layer()], (W, H), invert=True) is None


def test_painting_everything_is_a_full_edit_but_inverted_it_is_nothing():
    full = layer(64, 32)
    full[..., 3] = 1
    mask = mask_from_layers([full], (64, 32))
    assert_mask_is(mask, np.ones((32, 64), dtype=bool))
    assert mask is not None
    assert mask.edit_fraction == 1.0
    assert mask_from_layers([full], (64, 32), invert=True) is None


def test_three_layers_with_a_gap_and_a_none():
    layers = [layer(80, 60), None, layer(80, 60), layer(80, 60)]
    assert layers[0] is not None and layers[3] is not None
    paint(layers[0], 0, 0, 10, 10)
    paint(layers[3], 70, 50, 80, 60, alpha=3)
    mask = mask_from_layers(layers, (80, 60))

    expected = np.zeros((60, 80), dtype=bool)
    expected[0:10, 0:10] = True
    expected[50:60, 70:80] = True
    assert_mask_is(mask, expected)


def test_editor_values_of_every_shape():
    painted = layer(40, 30)
    paint(painted, 5, 5, 15, 25)
    expected = np.zeros((30, 40), dtype=bool)
    expected[5:25, 5:15] = True

    assert mask_from_editor(None, (40, 30)) is None
    assert mask_from_editor({}, (40, 30)) is None
    assert mask_from_editor({"layers": None}, (40, 30)) is None
    assert mask_from_editor({"background": None, "layers": [], "composite": None}, (40, 30)) is None
    background = np.full((30, 40, 4), 255, dtype=np.uint8)
    untouched = {"background": background, "layers": [layer(40, 30)], "composite": background}
    assert mask_from_editor(untouched, (40, 30)) is None

    value = {"background": background, "layers": [None, painted], "composite": background}
    assert_mask_is(mask_from_editor(value, (40, 30)), expected)
    assert_mask_is(mask_from_editor({"layers": [painted]}, (40, 30), invert=True), ~expected)


def test_a_layer_of_the_scaled_canvas_is_scaled_up_nearest_neighbour():
    small = layer(768, 512)
    paint(small, 50, 100, 150, 200)  # x 50..150, y 100..200 at half size
    small[300, 400, 3] = 255  # one pixel becomes a 2x2 block
    mask = mask_from_layers([small], (W, H))

    expected = np.zeros((H, W), dtype=bool)
    expected[200:400, 100:300] = True
    expected[600:602, 800:802] = True
    assert_mask_is(mask, expected)


def test_layers_of_different_sizes_are_each_scaled_to_the_target():
    full, half = layer(200, 100), layer(100, 50)
    paint(full, 0, 0, 1, 1)
    paint(half, 99, 49, 100, 50)
    mask = mask_from_layers([full, half], (200, 100))

    expected = np.zeros((100, 200), dtype=bool)
    expected[0, 0] = True
    expected[98:100, 198:200] = True
    assert_mask_is(mask, expected)


def test_layers_without_alpha_count_non_black_as_painted():
    rgb = np.zeros((20, 30, 3), dtype=np.uint8)
    rgb[2:4, 3:6] = (0, 0, 9)  # any colour but black is paint
    gray = np.zeros((20, 30), dtype=np.uint8)
    gray[10, 10] = 1
    single = np.zeros((20, 30, 1), dtype=np.uint8)
    single[19, 29, 0] = 255
    la = np.zeros((20, 30, 2), dtype=np.uint8)
    la[0, 29] = (0, 7)  # black but with alpha: paint
    la[5, 5] = (255, 0)  # white but transparent: not paint
    pil_layer = Image.new("RGBA", (30, 20), (0, 0, 0, 0))
    pil_layer.putpixel((15, 15), (0, 0, 0, 255))

    mask = mask_from_layers([rgb, gray, single, la, pil_layer], (30, 20))
    expected = np.zeros((20, 30), dtype=bool)
    expected[2:4, 3:6] = True
    expected[10, 10] = True
    expected[19, 29] = True
    expected[0, 29] = True
    expected[15, 15] = True
    assert_mask_is(mask, expected)


def test_nonsense_shapes_and_sizes_are_programming_errors():
    with pytest.raises(ValueError):
        mask_from_layers([np.zeros((4, 4, 5), dtype=np.uint8)], (4, 4))
    with pytest.raises(ValueError):
        mask_from_layers([np.zeros((2, 2, 2, 2), dtype=np.uint8)], (2, 2))
    with pytest.raises(ValueError):
        mask_from_layers([layer(4, 4)], (0, 4))


def test_random_rectangles_match_a_plain_reference():
    rng = np.random.default_rng(20240611)
    for _ in range(40):
        width, height = int(rng.integers(1, 120)), int(rng.integers(1, 90))
        factor = int(rng.choice([1, 1, 2, 3]))
        expected = np.zeros((height * factor, width * factor), dtype=bool)
        layers: list[np.ndarray | None] = []
        for _ in range(int(rng.integers(0, 4))):
            if rng.random() < 0.15:
                layers.append(None)
                continue
            drawn = layer(width, height)
            for _ in range(int(rng.integers(0, 4))):
                x0, x1 = sorted(int(v) for v in rng.integers(0, width + 1, 2))
                y0, y1 = sorted(int(v) for v in rng.integers(0, height + 1, 2))
                paint(drawn, x0, y0, x1, y1, alpha=int(rng.integers(1, 256)))
                expected[y0 * factor : y1 * factor, x0 * factor : x1 * factor] = True
            layers.append(drawn)
        invert = bool(rng.random() < 0.3)
        target = (width * factor, height * factor)
        mask = mask_from_layers(layers, target, invert=invert)
        wanted = ~expected if invert else expected
        if not expected.any() or not wanted.any():
            assert mask is None
        else:
            assert_mask_is(mask, wanted)


def test_scaling_agrees_with_pillow_nearest_for_whole_factors():
    rng = np.random.default_rng(7)
    small = rng.random((37, 53)) < 0.4
    strokes = np.zeros((37, 53, 4), dtype=np.uint8)
    strokes[small, 3] = 255
    reference = Image.fromarray(small.astype(np.uint8) * 255).resize(
        (159, 111), Image.Resampling.NEAREST
    )
    assert_mask_is(mask_from_layers([strokes], (159, 111)), np.asarray(reference) > 0)


def test_a_big_canvas_of_three_layers_is_one_small_mask():
    # How long this takes is benchmark 3 (python -m benchmarks.edit_prep), not a test.
    layers = [layer() for _ in range(3)]
    expected = np.zeros((H, W), dtype=bool)
    for index, drawn in enumerate(layers):
        box = (100 * index, 80 * index, 600 + 100 * index, 500 + 80 * index)
        paint(drawn, *box)
        expected[box[1] : box[3], box[0] : box[2]] = True
    mask = mask_from_layers(layers, (W, H))
    assert_mask_is(mask, expected)
    assert mask is not None and len(mask.png) < 100_000


def test_the_mask_travels_as_a_png_data_uri():
    strokes = layer(8, 8)
    paint(strokes, 0, 0, 4, 4)
    mask = mask_from_layers([strokes], (8, 8))
    assert mask is not None
    prefix = "data:image/png;base64,"
    uri = mask.to_data_uri()
    assert uri.startswith(prefix)
    assert base64.b64decode(uri[len(prefix) :]) == mask.png
    assert mask.to_pil().mode == "RGBA"


def test_the_mask_png_has_a_real_alpha_channel_not_a_colour_key():
    """fal and OpenAI read alpha 0 as "edit": the PNG itself must carry an alpha channel
    (colour type 4 gray+alpha or 6 RGBA, 8 bits), not a palette or a tRNS colour key."""
    strokes = layer()
    paint(strokes, 10, 5, 40, 25)
    mask = mask_from_layers([strokes], (W, H))
    assert mask is not None
    data = mask.png
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    bit_depth, colour_type = data[24], data[25]
    assert (bit_depth, colour_type) in ((8, 4), (8, 6))
    assert b"tRNS" not in data and b"PLTE" not in data


# ---- uploaded masks ----------------------------------------------------------------------------


def test_upload_with_alpha_edits_where_fully_transparent():
    image = Image.new("RGBA", (60, 40), (10, 20, 30, 255))
    image.paste((0, 0, 0, 0), (5, 5, 25, 15))
    image.paste((255, 255, 255, 128), (30, 20, 50, 30))  # half transparent: kept
    expected = np.zeros((40, 60), dtype=bool)
    expected[5:15, 5:25] = True
    assert_mask_is(mask_from_upload(png(image), (60, 40)), expected)


def test_upload_la_and_palette_with_transparency():
    la = Image.new("LA", (20, 10), (0, 255))
    la.paste((255, 0), (0, 0, 5, 10))
    expected = np.zeros((10, 20), dtype=bool)
    expected[:, 0:5] = True
    assert_mask_is(mask_from_upload(png(la), (20, 10)), expected)

    palette = Image.new("P", (20, 10), 0)
    palette.putpalette([0, 0, 0, 255, 255, 255] + [0, 0, 0] * 254)
    palette.paste(1, (0, 0, 5, 10))
    palette.info["transparency"] = 1
    assert_mask_is(mask_from_upload(png(palette), (20, 10)), expected)


def test_upload_without_alpha_reads_white_as_edit():
    gray = np.zeros((10, 20), dtype=np.uint8)
    gray[:, 0:5] = 128  # the threshold itself counts as white
    gray[:, 5:10] = 127
    gray[:, 15:20] = 255
    expected = np.zeros((10, 20), dtype=bool)
    expected[:, 0:5] = True
    expected[:, 15:20] = True
    assert_mask_is(mask_from_upload(png(Image.fromarray(gray)), (20, 10)), expected)

    bilevel = Image.fromarray(gray >= 128)
    assert bilevel.mode == "1"
    assert_mask_is(mask_from_upload(png(bilevel), (20, 10)), expected)


def test_upload_jpeg_black_and_white():
    image = Image.new("RGB", (64, 48), (0, 0, 0))
    image.paste((255, 255, 255), (16, 8, 48, 40))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    mask = mask_from_upload(buffer.getvalue(), (64, 48))
    edit = mask.edit_area()
    assert edit[12:36, 20:44].all()  # well inside the white block
    assert not edit[:4].any() and not edit[44:].any()
    assert not edit[:, :12].any() and not edit[:, 52:].any()


def test_upload_of_another_size_but_the_same_shape_is_scaled():
    small = Image.new("L", (768, 512), 0)
    small.paste(255, (50, 100, 150, 200))
    expected = np.zeros((H, W), dtype=bool)
    expected[200:400, 100:300] = True
    assert_mask_is(mask_from_upload(png(small), (W, H)), expected)

    # Within 1% of the aspect ratio (1000x667 is 1.4993 : 1) is close enough.
    near = Image.new("L", (1000, 667), 255)
    mask = mask_from_upload(png(near), (W, H))
    assert (mask.width, mask.height) == (W, H)
    assert mask.edit_fraction == 1.0


def test_upload_of_another_shape_is_refused_naming_both_sizes():
    with pytest.raises(InvalidInput) as caught:
        mask_from_upload(png(Image.new("L", (1024, 1024), 255)), (W, H))
    assert "1024x1024" in caught.value.message
    assert "1536x1024" in caught.value.message
    assert one_sentence(caught.value.message)


def test_upload_that_edits_nothing_is_refused():
    for image in (Image.new("RGBA", (20, 10), (255, 255, 255, 255)), Image.new("L", (20, 10), 0)):
        with pytest.raises(InvalidInput) as caught:
            mask_from_upload(png(image), (20, 10))
        assert "no transparent area" in caught.value.message
        assert one_sentence(caught.value.message)


@pytest.mark.parametrize(
    "data",
    [b"", b"this is not a picture", png(Image.effect_noise((200, 200), 64))[:3000]],
    ids=["zero bytes", "text", "truncated"],
)
def test_upload_that_is_no_image_is_refused(data: bytes):
    with pytest.raises(InvalidInput) as caught:
        mask_from_upload(data, (200, 200))
    assert caught.value.message.startswith("The mask")
    assert one_sentence(caught.value.message)


def test_upload_claiming_huge_dimensions_is_refused_from_its_header():
    header = struct.pack(">IIBBBBB", 40000, 40000, 1, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = zlib.crc32(kind + body)
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)

    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(InvalidInput):
        mask_from_upload(bomb, (40000, 40000))


def test_normalised_upload_is_small():
    rng = np.random.default_rng(3)
    noise = Image.fromarray((rng.random((512, 768)) < 0.5).astype(np.uint8) * 255)
    mask = mask_from_upload(png(noise), (768, 512))
    assert len(mask.png) < 4_000_000


# ---- preview -----------------------------------------------------------------------------------


def test_preview_tints_the_edit_area_and_dims_the_rest():
    photo = Image.new("RGB", (40, 30), (100, 150, 200))
    strokes = layer(40, 30)
    paint(strokes, 0, 0, 20, 30)
    mask = mask_from_layers([strokes], (40, 30))
    assert mask is not None
    preview = mask_preview(photo, mask)
    assert preview.mode == "RGB"
    assert preview.size == (40, 30)
    red, green, blue = preview.getpixel((5, 5))  # type: ignore[misc]
    assert red > 100 and green < 150 and blue > 150  # pulled towards magenta
    kept = preview.getpixel((35, 5))
    assert kept == tuple(int(c * 150) >> 8 for c in (100, 150, 200))  # dimmed, same hue


def test_preview_of_a_transparent_image_of_another_size():
    photo = Image.new("RGBA", (80, 60), (0, 0, 0, 0))
    strokes = layer(40, 30)
    paint(strokes, 0, 0, 20, 30)
    mask = mask_from_layers([strokes], (40, 30))
    assert mask is not None
    preview = mask_preview(photo, mask)
    assert preview.mode == "RGB"
    assert preview.size == (80, 60)
    dimmed_white = (255 * 150) >> 8
    assert preview.getpixel((70, 30)) == (dimmed_white,) * 3  # white under the dimming
    assert preview.getpixel((10, 30)) != preview.getpixel((70, 30))


def test_a_mask_is_encoded_when_asked_unless_it_could_pass_the_4_mb_limit(monkeypatch):
    """Encoding waits for `png` (send_inputs does it while references upload), except for a
    mask big enough to pass 4 MB, encoded at once so that it is refused before anything is sent."""
    # The encoder is zlib's (the standard library's), watched as it is asked for.
    encoded: list[tuple[int, int]] = []
    original = zlib.compressobj

    def compressobj(*args: Any, **kwargs: Any) -> Any:
        encoded.append(size)
        return original(*args, **kwargs)

    monkeypatch.setattr(zlib, "compressobj", compressobj)
    for size, at_once in (((1536, 1024), False), ((2048, 2048), True)):
        strokes = layer(*size)
        paint(strokes, 10, 10, 200, 100)
        mask = mask_from_layers([strokes], size)
        assert mask is not None
        assert encoded == ([size] if at_once else [])
        assert mask.png[:8] == b"\x89PNG\r\n\x1a\n"
        assert encoded == [size]
        encoded.clear()


def test_the_largest_mask_encoded_late_stays_under_4_mb_even_as_noise():
    """The bound behind late encoding: a mask just under the eager size, of independent
    random pixels (the most a two-colour image can hold), still encodes under 4 MB."""
    width, height = 2000, 1990
    assert not _may_pass_limit(width, height)
    rng = np.random.default_rng(5)
    strokes = layer(width, height)
    strokes[..., 3] = (rng.random((height, width)) < 0.5) * 255
    mask = mask_from_layers([strokes], (width, height))
    assert mask is not None
    assert len(mask.png) < 4_000_000
