"""Reference images: checked, kept byte for byte when fine, converted when not."""

from __future__ import annotations

import base64
import io
import struct
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest
from PIL import Image, ImageFile

from backend import images
from backend.errors import InvalidInput
from backend.images import PreparedImage, image_size, prepare_image

ORIENTATION = 0x0112


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **params)
    return buffer.getvalue()


def reopen(prepared: PreparedImage) -> Image.Image:
    image = Image.open(io.BytesIO(prepared.data))
    image.load()
    assert (image.width, image.height) == (prepared.width, prepared.height)
    expected_format = {"image/png": "PNG", "image/jpeg": "JPEG", "image/webp": "WEBP"}
    assert image.format == expected_format[prepared.content_type]
    return image


def with_orientation(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[ORIENTATION] = orientation
    return exif.tobytes()


def png_header_only(width: int, height: int) -> bytes:
    """A tiny PNG whose header claims `width` x `height` (1-bit gray), with almost no data."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def one_sentence(message: str) -> bool:
    return message.endswith(".") and ". " not in message and "\n" not in message


def gradient(width: int = 64, height: int = 48) -> Image.Image:
    x = np.linspace(0, 255, width, dtype=np.uint8)[None, :].repeat(height, axis=0)
    y = np.linspace(0, 255, height, dtype=np.uint8)[:, None].repeat(width, axis=1)
    return Image.fromarray(np.dstack([x, y, 255 - x]))


# ---- files that are fine go out unchanged ----------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "fmt", "params", "content_type"),
    [
        ("RGB", "PNG", {}, "image/png"),
        ("RGBA", "PNG", {}, "image/png"),
        ("L", "PNG", {}, "image/png"),
        ("RGB", "JPEG", {"quality": 80}, "image/jpeg"),
        ("L", "JPEG", {}, "image/jpeg"),
        ("RGB", "JPEG", {"exif": with_orientation(1)}, "image/jpeg"),
        ("RGB", "WEBP", {"quality": 70}, "image/webp"),
        ("RGBA", "WEBP", {"lossless": True}, "image/webp"),
    ],
)
def test_a_fine_file_keeps_its_bytes(mode, fmt, params, content_type):
    data = encode(gradient().convert(mode), fmt, **params)
    prepared = prepare_image(data, name="holiday.photo")
    assert prepared.data == data  # identical bytes, no re-encode
    assert prepared.content_type == content_type
    assert (prepared.width, prepared.height) == (64, 48)
    extension = {"image/png": "png", "image/jpeg": "jpg", "image/webp": "webp"}[content_type]
    assert prepared.file_name == f"holiday.{extension}"


def test_data_uri_round_trip():
    data = encode(gradient(), "PNG")
    uri = prepare_image(data).to_data_uri()
    assert uri.startswith("data:image/png;base64,")
    assert base64.b64decode(uri.split(",", 1)[1]) == data


# ---- modes fal may not take are converted ------------------------------------------------------


def test_cmyk_jpeg_becomes_rgb_jpeg_without_its_cmyk_profile():
    source = Image.new("CMYK", (32, 16), (0, 255, 255, 0))  # red
    data = encode(source, "JPEG", quality=95, icc_profile=b"not a real cmyk profile")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    prepared = prepare_image(data, name="print.jpg")
    result = reopen(prepared)
    assert prepared.content_type == "image/jpeg"
    assert result.mode == "RGB"
    assert "icc_profile" not in result.info
    red, green, blue = result.getpixel((16, 8))  # type: ignore[misc]
    assert red > 240 and green < 15 and blue < 15


def test_16_bit_gray_is_scaled_not_clipped():
    values = np.linspace(0, 65535, 256).round().astype(np.uint16)
    source = Image.fromarray(np.tile(values, (4, 1)))
    data = encode(source, "PNG")
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    prepared = prepare_image(data, name="scan.png")
    result = reopen(prepared)
    assert prepared.content_type == "image/png"
    assert result.mode == "L"
    got = np.asarray(result)[0].astype(int)
    assert np.array_equal(got, np.rint(values / 257).astype(int))
    assert got[0] == 0 and got[-1] == 255 and got[128] == 128  # clipping would give 255


def test_float_gray_is_stretched_when_outside_unit_range():
    source = Image.fromarray(np.array([[-10.0, 0.0, 10.0]], dtype=np.float32))
    assert source.mode == "F"
    result = reopen(prepare_image(encode(source, "TIFF")))
    assert result.mode == "L"
    assert np.asarray(result).tolist() == [[0, 128, 255]]


def test_palette_with_transparency_becomes_rgba_png():
    source = Image.new("P", (20, 10), 0)
    source.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    source.paste(1, (10, 0, 20, 10))
    data = encode(source, "PNG", transparency=1)
    result = reopen(prepare_image(data))
    assert result.mode == "RGBA"
    assert result.getpixel((2, 2)) == (255, 0, 0, 255)
    assert result.getpixel((15, 5))[3] == 0  # type: ignore[index]


def test_palette_without_transparency_becomes_rgb():
    source = Image.new("P", (20, 10), 1)
    source.putpalette([255, 0, 0, 0, 0, 255] + [0, 0, 0] * 254)
    result = reopen(prepare_image(encode(source, "PNG")))
    assert result.mode == "RGB"
    assert result.getpixel((3, 3)) == (0, 0, 255)


def test_gray_with_alpha_becomes_rgba():
    source = Image.new("LA", (8, 8), (200, 100))
    prepared = prepare_image(encode(source, "PNG"))
    result = reopen(prepared)
    assert prepared.content_type == "image/png"
    assert result.mode == "RGBA"
    assert result.getpixel((4, 4)) == (200, 200, 200, 100)


def test_colour_key_transparency_becomes_alpha():
    source = Image.new("RGB", (8, 8), (0, 255, 0))
    source.paste((1, 2, 3), (0, 0, 4, 8))
    result = reopen(prepare_image(encode(source, "PNG", transparency=(1, 2, 3))))
    assert result.mode == "RGBA"
    assert result.getpixel((1, 1))[3] == 0  # type: ignore[index]
    assert result.getpixel((6, 1)) == (0, 255, 0, 255)


def test_bilevel_becomes_gray():
    source = Image.new("1", (16, 8), 0)
    source.paste(1, (0, 0, 8, 8))
    result = reopen(prepare_image(encode(source, "PNG")))
    assert result.mode == "L"
    assert result.getpixel((2, 2)) == 255 and result.getpixel((12, 2)) == 0


@pytest.mark.parametrize("fmt", ["TIFF", "BMP"])
def test_tiff_and_bmp_become_png_with_the_same_pixels(fmt):
    source = gradient()
    prepared = prepare_image(encode(source, fmt), name=f"scan.{fmt.lower()}")
    assert prepared.content_type == "image/png"
    assert prepared.file_name == "scan.png"
    assert np.array_equal(np.asarray(reopen(prepared)), np.asarray(source))


# ---- animation and orientation ------------------------------------------------------------------


def test_animated_gif_gives_its_first_frame():
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "lime", "blue")]
    data = encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100)
    assert Image.open(io.BytesIO(data)).n_frames == 3  # type: ignore[attr-defined]
    prepared = prepare_image(data, name="loop.gif")
    result = reopen(prepared)
    assert prepared.content_type == "image/png"
    assert prepared.file_name == "loop.png"
    assert getattr(result, "n_frames", 1) == 1
    assert result.convert("RGB").getpixel((8, 8)) == (255, 0, 0)


def test_animated_png_gives_its_first_frame():
    frames = [Image.new("RGBA", (16, 16), colour) for colour in ((0, 0, 255, 255), (9, 9, 9, 9))]
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:])
    assert Image.open(io.BytesIO(data)).n_frames == 2  # type: ignore[attr-defined]
    prepared = prepare_image(data)
    assert prepared.data != data
    result = reopen(prepared)
    assert getattr(result, "n_frames", 1) == 1
    assert result.getpixel((8, 8)) == (0, 0, 255, 255)


@pytest.mark.parametrize(("lossless", "content_type"), [(False, "image/jpeg"), (True, "image/png")])
def test_animated_webp_gives_its_first_frame(lossless, content_type):
    frames = [Image.new("RGB", (16, 16), colour) for colour in ("red", "blue")]
    data = encode(
        frames[0], "WEBP", save_all=True, append_images=frames[1:], lossless=lossless, quality=90
    )
    # The input must really be an animation, or the test proves nothing: a Pillow that
    # writes no animated WebP fails here, as in test_bad_input.py, rather than skipping.
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 2, "not an animation"
    prepared = prepare_image(data)
    assert prepared.content_type == content_type
    assert getattr(reopen(prepared), "n_frames", 1) == 1
    result = reopen(prepared).convert("RGB")
    red, green, blue = result.getpixel((8, 8))  # type: ignore[misc]
    assert red > 200 and green < 40 and blue < 40


def test_exif_rotated_jpeg_is_turned_upright():
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))  # red in the stored top-left corner
    data = encode(stored, "JPEG", quality=95, exif=with_orientation(6))
    assert image_size(data) == (20, 40)

    prepared = prepare_image(data, name="phone.jpg")
    assert prepared.data != data
    assert (prepared.width, prepared.height) == (20, 40)  # swapped
    assert prepared.content_type == "image/jpeg"
    result = reopen(prepared)
    assert result.getexif().get(ORIENTATION, 1) == 1
    # Orientation 6 = turn 90° clockwise to display: stored top-left lands top-right.
    red, green, blue = result.getpixel((16, 3))  # type: ignore[misc]
    assert red > 200 and green < 60 and blue < 60
    red, green, blue = result.getpixel((3, 3))  # type: ignore[misc]
    assert blue > 200 and red < 60 and green < 60


@pytest.mark.parametrize(("lossless", "content_type"), [(True, "image/png"), (False, "image/jpeg")])
def test_rotated_webp_is_reencoded_as_png_when_lossless_else_jpeg(lossless, content_type):
    data = encode(gradient(), "WEBP", lossless=lossless, exif=with_orientation(3))
    prepared = prepare_image(data)
    assert prepared.content_type == content_type
    result = reopen(prepared)
    assert (prepared.width, prepared.height) == (64, 48)
    if lossless:
        upright = gradient().transpose(Image.Transpose.ROTATE_180)
        assert np.array_equal(np.asarray(result), np.asarray(upright))


def test_colour_profile_survives_a_reencode():
    profile = b"pretend sRGB profile " * 8
    data = encode(gradient(), "JPEG", icc_profile=profile, exif=with_orientation(8))
    result = reopen(prepare_image(data))
    assert result.info.get("icc_profile") == profile


# ---- PNGs that are fine are verified, not decoded ------------------------------------------


def chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    """A PNG's chunks as (type, body), in file order."""
    position, found = 8, []
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        found.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return found


def png_of(parts: list[tuple[bytes, bytes]]) -> bytes:
    return b"\x89PNG\r\n\x1a\n" + b"".join(
        struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        for kind, body in parts
    )


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every pixel decode Pillow does from now on (its format), by watching Pillow's load()."""
    seen: list[str] = []
    original = ImageFile.ImageFile.load

    def load(self: ImageFile.ImageFile) -> object:
        if self.tile:  # not yet decoded
            seen.append(self.format or "?")
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", load)
    return seen


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_a_fine_png_goes_out_verified_but_never_decoded(mode, decodes):
    data = encode(gradient(640, 480).convert(mode), "PNG")
    prepared = prepare_image(data, name="photo.png")
    assert prepared.data == data
    assert (prepared.content_type, prepared.width, prepared.height) == ("image/png", 640, 480)
    assert decodes == []
    prepare_image(encode(gradient().convert("P"), "PNG"))  # needs converting: decoded
    assert decodes == ["PNG"]


def test_a_png_with_orientation_1_in_its_exif_is_kept_undecoded(decodes):
    data = encode(gradient(), "PNG", exif=with_orientation(1))
    assert prepare_image(data).data == data
    assert decodes == []


def test_a_png_with_a_flipped_byte_or_without_its_end_is_refused():
    data = encode(Image.effect_noise((128, 128), 50), "PNG")
    idat = data.index(b"IDAT")
    flipped = bytearray(data)
    flipped[idat + 100] ^= 0xFF
    for damaged in (bytes(flipped), data[:-12]):  # a bad checksum; the IEND chunk cut off
        with pytest.raises(InvalidInput) as caught:
            prepare_image(damaged, name="scan.png")
        assert "'scan.png' is damaged or incomplete" in caught.value.message
        assert one_sentence(caught.value.message)


@pytest.mark.parametrize("exif_after_pixels", [False, True], ids=["exif-first", "exif-last"])
def test_an_exif_rotated_png_is_turned_upright(exif_after_pixels):
    stored = Image.new("RGB", (40, 20), (0, 0, 255))
    stored.paste((255, 0, 0), (0, 0, 10, 10))
    data = encode(stored, "PNG", exif=with_orientation(6))
    if exif_after_pixels:  # where only a decode finds it
        parts = chunks(data)
        exif = [part for part in parts if part[0] == b"eXIf"]
        rest = [part for part in parts if part[0] != b"eXIf"]
        data = png_of([*rest[:-1], *exif, rest[-1]])
        assert data.index(b"eXIf") > data.index(b"IDAT")
    prepared = prepare_image(data, name="turned.png")
    assert (prepared.width, prepared.height, prepared.content_type) == (20, 40, "image/png")
    result = reopen(prepared)
    assert result.getpixel((16, 3)) == (255, 0, 0)  # stored top-left lands top-right
    assert result.getpixel((3, 3)) == (0, 0, 255)


# ---- refusals ---------------------------------------------------------------------------------


def test_decompression_bomb_is_refused_from_its_header_without_allocating():
    bomb = png_header_only(40000, 40000)  # 1.6 gigapixels in ~100 bytes
    assert len(bomb) < 200
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as caught:
            prepare_image(bomb, name="bomb.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Decoding it would take 1.6 GB (4.8 GB as RGB): the peak shows it was never tried.
    assert peak < 50 * 1024 * 1024
    assert "bomb.png" in caught.value.message
    assert one_sentence(caught.value.message)


def test_over_our_pixel_cap_but_under_pillows_is_refused_with_its_size():
    data = png_header_only(9000, 9000)  # 81 MP: Pillow alone would only warn above 89 MP
    assert images.MAX_PIXELS < 9000 * 9000
    tracemalloc.start()
    try:
        with pytest.raises(InvalidInput) as caught:
            prepare_image(data, name="huge.png")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 50 * 1024 * 1024
    assert "9000x9000" in caught.value.message
    with pytest.raises(InvalidInput):
        image_size(data)


def test_pillows_bomb_warning_refuses_locally_and_leaves_warnings_alone(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    filters_before = list(warnings.filters)
    with pytest.raises(InvalidInput) as caught:
        prepare_image(encode(Image.new("RGB", (20, 20)), "PNG"))
    assert "too many pixels" in caught.value.message
    assert warnings.filters == filters_before


@pytest.mark.parametrize(
    ("data", "what"),
    [
        (b"", "empty"),
        (b"Dear diary, today I uploaded a text file.\n", "not an image"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not an image"),
        (encode(Image.effect_noise((128, 128), 50), "PNG")[:2000], "damaged"),
        (encode(Image.effect_noise((128, 128), 50).convert("RGB"), "JPEG")[:1500], "damaged"),
    ],
    ids=["zero bytes", "text", "eps", "truncated png", "truncated jpeg"],
)
def test_what_is_not_a_usable_image_is_refused_by_name(data, what):
    with pytest.raises(InvalidInput) as caught:
        prepare_image(data, name="/tmp/gradio/1234/notes.png")
    message = caught.value.message
    assert "'notes.png'" in message
    assert what in message
    assert "PNG, JPEG or WebP" in message
    assert one_sentence(message)


def test_a_file_over_the_byte_limit_is_refused(monkeypatch):
    data = encode(gradient(), "PNG")
    monkeypatch.setattr(images, "MAX_INPUT_BYTES", len(data) - 1)
    with pytest.raises(InvalidInput) as caught:
        prepare_image(data, name="big.png")
    assert "limit" in caught.value.message
    assert one_sentence(caught.value.message)


def test_a_conversion_that_outgrows_the_limit_is_refused(monkeypatch):
    noise = Image.fromarray(np.random.default_rng(5).random((256, 256)) < 0.5)
    data = encode(noise, "PNG")  # 1 bit per pixel, will be 8 once converted to L
    monkeypatch.setattr(images, "MAX_INPUT_BYTES", len(data) + 1)
    with pytest.raises(InvalidInput) as caught:
        prepare_image(data, name="dots.png")
    assert "once converted" in caught.value.message


def test_image_size_reads_the_header():
    assert image_size(encode(gradient(), "PNG")) == (64, 48)
    assert image_size(png_header_only(3000, 2000)) == (3000, 2000)  # pixels never decoded
    with pytest.raises(InvalidInput):
        image_size(b"nope")


def test_file_names_are_tidied():
    data = encode(gradient(), "JPEG")
    assert prepare_image(data, name="C:\\Users\\me\\My photo (1).jpeg").file_name == (
        "My_photo_1.jpg"
    )
    assert prepare_image(data).file_name == "image.jpg"
    assert prepare_image(data, name="").file_name == "image.jpg"
