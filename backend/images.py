"""Reference images, checked and normalised before they go to fal.

Every upload is read, never trusted: empty, oversized, truncated or foreign
files are refused with a sentence naming the file. Decompression bombs are
refused from the header, before a single pixel is decoded.

A PNG, JPEG or WebP that is already fine (one frame, no EXIF rotation, an
ordinary RGB/RGBA/L mode) goes out byte for byte: no needless re-encode. Such a
PNG is not even decoded: its header says all of that, and `verify()` reads
every chunk and checks its checksum, so a truncated or corrupted file is still
refused (three 1536x1024 photos: ~13 ms instead of ~98 ms for a full decode).
Anything else is brought into shape (first frame, EXIF rotation applied, modes
fal may not take converted) and re-encoded as PNG when it has alpha or came
from a lossless format, else as JPEG quality 95.
"""

from __future__ import annotations

import io
import os
import re
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from backend.errors import InvalidInput
from backend.formats import JPEG, PNG, WEBP, ImageFormat, data_uri

#: OpenAI's documented limit: each input image under 50 MB (decimal megabytes,
#: the stricter reading). Checked on the upload and again on a re-encoded result.
MAX_INPUT_BYTES = 50 * 1000 * 1000

#: Largest image accepted, in pixels: 64 Mi (8192x8192). That covers every
#: current full-frame camera (61 MP) and 50 MP phones, stays under Pillow's own
#: warning threshold (~89 M), and bounds one decoded RGBA image to 256 MiB.
#: The model works at ~1.5k pixels anyway, so more would only cost memory.
MAX_PIXELS = 8192 * 8192
# How messages name that limit (64 Mi pixels = 67.1 million).
_PIXEL_LIMIT = "8192x8192"

#: What Pillow may even try to parse (its JPEG reader also yields "MPO", the
#: multi-picture JPEGs many cameras write). Keeping this short keeps exotic
#: decoders away (EPS would even run Ghostscript).
ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF")

# What goes out as it came, by Pillow's name for it (a camera's MPO is a JPEG).
_SENDABLE = {"PNG": PNG, "JPEG": JPEG, "MPO": JPEG, "WEBP": WEBP}
_LOSSLESS_SOURCES = {"PNG", "GIF", "BMP", "TIFF"}
_FINE_MODES = {"RGB", "RGBA", "L"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "F", "I;16", "I;16L", "I;16B", "I;16N"}
_ORIENTATION_TAG = 0x0112

IMAGE_HINT = "use a PNG, JPEG or WebP file."


@dataclass(frozen=True)
class PreparedImage:
    """An image ready to send: its bytes, what they are, and its size as displayed."""

    data: bytes
    content_type: str
    width: int
    height: int
    file_name: str

    def to_data_uri(self) -> str:
        """The image as a `data:` URI, which fal accepts wherever it takes an image URL."""
        return data_uri(self.data, self.content_type)


def prepare_image(data: bytes, *, name: str = "image") -> PreparedImage:
    """Check one uploaded image and make it something fal takes; raise `InvalidInput` if not.

    `name` is the file's name (a path is fine) and only serves error messages
    and `file_name`.
    """
    label = _label(name)
    image = _open_header(data, label=label, hint=IMAGE_HINT)
    if _png_as_it_is(image, data):
        _verify(image, label=label, hint=IMAGE_HINT)
        return PreparedImage(
            data=data,
            content_type=PNG.mime,
            width=image.width,
            height=image.height,
            file_name=_file_name(name, PNG),
        )
    _decode(image, label=label, hint=IMAGE_HINT)
    source_format = image.format or ""
    frames = getattr(image, "n_frames", 1)
    orientation = _orientation(image)

    keep = (
        source_format in _SENDABLE
        and (frames == 1 or source_format == "MPO")
        and orientation == 1
        and image.mode in _FINE_MODES
        and "transparency" not in image.info
    )
    if keep:
        sent = _SENDABLE[source_format]
        return PreparedImage(
            data=data,
            content_type=sent.mime,
            width=image.width,
            height=image.height,
            file_name=_file_name(name, sent),
        )

    try:
        oriented = ImageOps.exif_transpose(image) if orientation != 1 else image
        result = to_standard_mode(oriented or image)
    except (OSError, ValueError) as error:
        raise InvalidInput(
            f"{label} uses a colour format that cannot be converted; {IMAGE_HINT}",
            detail=f"mode {image.mode}: {error}",
        ) from error
    icc = image.info.get("icc_profile") if _family(image.mode) == _family(result.mode) else None
    lossless = source_format in _LOSSLESS_SOURCES or (
        source_format == "WEBP" and _webp_is_lossless(data)
    )
    buffer = io.BytesIO()
    if result.mode == "RGBA" or lossless:
        sent = PNG
        result.save(buffer, PNG.pillow, icc_profile=icc)
    else:
        sent = JPEG
        result.save(buffer, JPEG.pillow, quality=95, subsampling=0, icc_profile=icc)
    encoded = buffer.getvalue()
    if len(encoded) > MAX_INPUT_BYTES:
        raise InvalidInput(
            f"{label} becomes {_megabytes(len(encoded))} once converted for sending, over the "
            f"{_megabytes(MAX_INPUT_BYTES)} limit; use a smaller image."
        )
    return PreparedImage(
        data=encoded,
        content_type=sent.mime,
        width=result.width,
        height=result.height,
        file_name=_file_name(name, sent),
    )


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) as the image is displayed, i.e. after EXIF rotation; header only.

    A PNG whose EXIF block sits after its pixel data reports its stored size,
    since finding that block would mean decoding the pixels.
    """
    image = _open_header(data, label="The image", hint=IMAGE_HINT)
    width, height = image.size
    if _orientation(image) in (5, 6, 7, 8):
        return height, width
    return width, height


def load_image(data: bytes, *, label: str, hint: str = IMAGE_HINT) -> ImageFile.ImageFile:
    """Open and fully decode the first frame of `data`, refusing bombs before decoding.

    `label` starts the error sentences ("The image 'cat.png'"), `hint` ends them.
    """
    image = _open_header(data, label=label, hint=hint)
    _decode(image, label=label, hint=hint)
    return image


def _decode(image: ImageFile.ImageFile, *, label: str, hint: str) -> None:
    """Decode the pixels of an image `_open_header` accepted, or refuse it in a sentence."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise _too_many_pixels(label, image.size) from error
    except (OSError, ValueError, EOFError, SyntaxError, IndexError, TypeError) as error:
        # Truncated, corrupt, or an encoding Pillow cannot decode.
        raise InvalidInput(
            f"{label} is damaged or incomplete; {hint}", detail=f"{type(error).__name__}: {error}"
        ) from error


def _png_as_it_is(image: ImageFile.ImageFile, data: bytes) -> bool:
    """Whether a PNG can go out byte for byte, judged from its header alone.

    One frame (an APNG says so before its pixels), a mode fal takes and no
    colour-key transparency (tRNS also comes before the pixels). An eXIf chunk
    before the pixels is in the header: its orientation is read. One after them
    is found only by decoding: such a file takes the long way.
    """
    if (
        image.format != "PNG"
        or getattr(image, "n_frames", 1) != 1
        or image.mode not in _FINE_MODES
        or "transparency" in image.info
    ):
        return False
    if b"eXIf" not in data:  # (a false match in compressed data only costs a decode)
        return True
    return "exif" in image.info and _orientation(image) == 1


def _verify(image: ImageFile.ImageFile, *, label: str, hint: str) -> None:
    """Check every chunk of a PNG through to its end (checksums, nothing missing)
    without decoding the pixels; refuse a damaged file in a sentence.

    `image` is spent afterwards (Pillow's rule for `verify()`): read what you need first.
    """
    try:
        image.verify()
    except (
        OSError,
        ValueError,
        EOFError,
        SyntaxError,
        IndexError,
        TypeError,
        struct.error,
    ) as error:
        raise InvalidInput(
            f"{label} is damaged or incomplete; {hint}", detail=f"{type(error).__name__}: {error}"
        ) from error


def to_standard_mode(image: Image.Image) -> Image.Image:
    """`image` in RGB, RGBA or L (an alpha channel made explicit); unchanged if it already is."""
    mode = image.mode
    if mode in _FINE_MODES and "transparency" not in image.info:
        return image
    if mode in ("I", "F") or mode.startswith("I;16"):
        return _gray_to_8bit(image)
    if mode == "1":
        return image.convert("L")
    if mode == "CMYK":
        return image.convert("RGB")
    if image.has_transparency_data:
        # P/PA/LA/La/RGBa, and RGB/L carrying a tRNS colour key.
        return image.convert("RGBA")
    return image.convert("RGB")


def _open_header(data: bytes, *, label: str, hint: str) -> ImageFile.ImageFile:
    """Identify `data` and check its size, without decoding a pixel."""
    if not data:
        raise InvalidInput(f"{label} is empty (0 bytes); {hint}")
    if len(data) > MAX_INPUT_BYTES:
        raise InvalidInput(
            f"{label} is {_megabytes(len(data))}, over the {_megabytes(MAX_INPUT_BYTES)} limit; "
            "use a smaller file."
        )
    try:
        with warnings.catch_warnings():
            # Pillow warns (and only errors at twice the size) about huge images:
            # here that warning refuses the file. Local to this block, though
            # before Python 3.14 `catch_warnings` swaps a process-wide list, so
            # threads can race on it; harmless here, as the explicit MAX_PIXELS
            # check below (lower than Pillow's threshold) refuses the same files.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise InvalidInput(
            f"{label} has too many pixels (more than {_PIXEL_LIMIT}); use a smaller image.",
            detail=str(error),
        ) from error
    except (UnidentifiedImageError, OSError, ValueError, EOFError, SyntaxError) as error:
        raise InvalidInput(
            f"{label} is not an image that can be read; {hint}",
            detail=f"{type(error).__name__}: {error}",
        ) from error
    width, height = image.size
    if width <= 0 or height <= 0:
        raise InvalidInput(f"{label} has no pixels; {hint}")
    if width * height > MAX_PIXELS:
        raise _too_many_pixels(label, image.size)
    return image


def _too_many_pixels(label: str, size: tuple[int, int]) -> InvalidInput:
    width, height = size
    return InvalidInput(
        f"{label} is {width}x{height} pixels, over the {_PIXEL_LIMIT} limit; use a smaller image."
    )


def _orientation(image: Image.Image) -> int:
    """EXIF orientation 1..8 (1 when absent or nonsense)."""
    try:
        value: Any = image.getexif().get(_ORIENTATION_TAG, 1)
    except Exception:  # a broken EXIF block is no reason to refuse the picture
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _gray_to_8bit(image: Image.Image) -> Image.Image:
    """16/32-bit or float grayscale to L, scaled rather than clipped.

    I;16 (and I within 0..65535, which is how 16-bit data usually arrives) is
    divided by 257; F within 0..1 is multiplied by 255; anything else is
    stretched linearly from its minimum to its maximum.
    """
    values: npt.NDArray[np.float64] = np.asarray(image, dtype=np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=0.0, neginf=0.0)
    low = float(values.min()) if values.size else 0.0
    high = float(values.max()) if values.size else 0.0
    if image.mode == "F" and low >= 0.0 and high <= 1.0:
        scaled = values * 255.0
    elif image.mode != "F" and low >= 0.0 and high <= 65535.0:
        scaled = values / 257.0
    elif high > low:
        scaled = (values - low) * (255.0 / (high - low))
    else:
        scaled = np.zeros_like(values)
    eight_bit = np.clip(np.rint(scaled), 0, 255).astype(np.uint8)
    return Image.fromarray(eight_bit)


def _webp_is_lossless(data: bytes) -> bool:
    """Whether a WebP's (first) image is coded losslessly: a VP8L chunk, not a VP8 one."""
    position = 12  # after "RIFF", the size, "WEBP"
    while position + 8 <= len(data):
        kind = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        if kind == b"VP8L":
            return True
        if kind == b"VP8 ":
            return False
        if kind == b"ANMF":
            position += 8 + 16  # into the first frame: its header, then its chunks
            continue
        position += 8 + size + (size & 1)
    return False


def _family(mode: str) -> str:
    """Colour space of a mode, to know whether an ICC profile still applies after conversion."""
    if mode in _GRAY_MODES:
        return "gray"
    if mode == "CMYK":
        return "cmyk"
    return "rgb"


def _label(name: str) -> str:
    """How error sentences refer to the file."""
    base = _clean_base(name)
    return "The image" if not base or base == "image" else f"The image '{base}'"


def _clean_base(name: str) -> str:
    base = os.path.basename(name.replace("\\", "/")).strip()
    base = "".join(ch for ch in base if ch.isprintable())
    return base[:80]


def _file_name(name: str, sent: ImageFormat) -> str:
    """A tidy file name with the extension of what is actually sent."""
    stem = os.path.splitext(_clean_base(name))[0]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "image"
    return f"{stem[:60]}.{sent.extension}"


def _megabytes(count: int) -> str:
    return f"{count / 1_000_000:.1f} MB" if count < 10_000_000 else f"{count // 1_000_000} MB"
