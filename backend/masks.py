"""The edit mask: painted strokes or an uploaded file, made into the PNG fal expects.

fal and OpenAI read a mask as a PNG the size of the FIRST image whose fully
transparent pixels (alpha 0) mark the area to edit. Every mask made here is an
RGBA PNG with just two colours: the area to edit white with alpha 0
(255, 255, 255, 0), the rest opaque black (0, 0, 0, 255). That satisfies the
alpha reading and a "white = edit" grayscale reading alike. RGBA rather than
the smaller LA: fal and OpenAI document "a PNG with an alpha channel" and every
example they show is RGBA, and LA was never tried against live fal; the ~12 ms
more it costs to encode is nothing beside a generation.

A mask that would edit nothing is never made: painting nothing gives `None`
(send no mask), an uploaded mask with nothing to edit is refused.

Painted layers, as Gradio's `gr.ImageEditor`/`gr.ImageMask` hand them over:
- HxWx4 (RGBA, the default) or HxWx2 (LA): painted where alpha > 0.
- HxWx3 (RGB, an editor with `image_mode="RGB"`) or HxW / HxWx1 (L): there is
  no alpha, and the editor's untouched transparent pixels come out black, so
  painted = any channel non-zero (not black). A black brush is invisible then.
- PIL images are accepted too (an editor with `type="pil"`).
"""

from __future__ import annotations

import io
import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageOps

from backend.errors import InvalidInput
from backend.formats import PNG, data_uri
from backend.images import load_image, to_standard_mode

#: OpenAI's documented limit for the mask file.
MAX_MASK_BYTES = 4 * 1000 * 1000

#: A mask upload whose aspect ratio is within this of the image's is resized to fit.
ASPECT_TOLERANCE = 0.01

_MASK_HINT = "use a PNG mask the size of the first image."
# Preview colours: the edit area tinted magenta, the rest dimmed.
_TINT = np.array([255, 0, 255], dtype=np.uint16)
_TINT_WEIGHT = 120  # out of 256
_DIM_FACTOR = 150  # out of 256

Bools = npt.NDArray[np.bool_]


class Mask:
    """A checked mask: its edit area now, its PNG when first asked for.

    Encoding is most of a mask's cost, so it waits for `png`: `send_inputs`
    encodes it while the reference images are already uploading. A mask whose
    PNG could pass 4 MB is encoded at once instead, so that it is refused
    before anything is sent; smaller ones cannot pass it (see `_may_pass_limit`).
    """

    def __init__(self, edit: Bools) -> None:
        edit.flags.writeable = False  # ours now; shared with callers read-only
        self._edit = edit
        self.height, self.width = edit.shape
        self.edit_fraction = float(np.count_nonzero(edit)) / edit.size
        self._png: bytes | None = None
        self._lock = threading.Lock()
        if _may_pass_limit(self.width, self.height):
            _ = self.png

    @property
    def png(self) -> bytes:
        """The two-colour RGBA PNG; `InvalidInput` if it would pass 4 MB."""
        with self._lock:
            if self._png is None:
                self._png = _encode(self._edit)
            return self._png

    def to_pil(self) -> Image.Image:
        """The mask as a loaded RGBA PIL image."""
        with Image.open(io.BytesIO(self.png)) as image:
            return image.convert("RGBA")

    def edit_area(self) -> Bools:
        """A height x width boolean array (read-only), True where the image is to be edited."""
        return self._edit

    def to_data_uri(self) -> str:
        """The mask as a `data:image/png;base64,...` URI."""
        return data_uri(self.png, PNG.mime)


def mask_from_layers(
    layers: Sequence[npt.NDArray[Any] | Image.Image | None],
    size: tuple[int, int],
    *,
    invert: bool = False,
) -> Mask | None:
    """The mask for painted `layers`, at `size` = (width, height) of the first image.

    The union of what the layers painted is the area to edit; with `invert`, it
    is everything but that. `None` when that area is empty or everything with
    `invert` (no mask at all means the same as a full one). Layers of another
    size are scaled to `size` with nearest neighbour.
    """
    width, height = _check_size(size)
    painted: Bools | None = None
    for layer in layers:
        if layer is None:
            continue
        strokes = _painted(layer)
        if strokes.size == 0:
            continue
        strokes = _resize_nearest(strokes, width, height)
        if painted is None:
            painted = strokes  # a fresh array of our own, safe to update in place
        else:
            np.logical_or(painted, strokes, out=painted)
    if painted is None or not painted.any():
        return None
    if invert:
        np.logical_not(painted, out=painted)
        if not painted.any():
            return None
    return Mask(painted)


def mask_from_editor(
    value: Mapping[str, Any] | None, size: tuple[int, int], *, invert: bool = False
) -> Mask | None:
    """The mask for a Gradio image editor's value (`{"background", "layers", "composite"}`).

    `None` for no value, no layers, or nothing painted: see `mask_from_layers`.
    """
    if value is None:
        return None
    layers = value.get("layers") or []
    return mask_from_layers([layer for layer in layers if layer is not None], size, invert=invert)


def painted_anything(value: Mapping[str, Any] | None) -> bool:
    """Whether an image editor's value has any paint at all (at whatever size)."""
    layers = (value or {}).get("layers") or []
    return any(layer is not None and _painted(layer).any() for layer in layers)


def mask_from_upload(data: bytes, size: tuple[int, int]) -> Mask:
    """A mask file the user made, checked and normalised; raise `InvalidInput` if unusable.

    With an alpha channel (RGBA, LA, P or a colour key with transparency), alpha
    0 marks the area to edit, as fal and OpenAI read it. Without one (L, 1, RGB,
    JPEG...), it is read as black and white: white (luminance >= 128) = edit.
    A mask of another size with the same aspect ratio (within 1%) is scaled to
    `size` with nearest neighbour; another aspect ratio is refused.
    """
    width, height = _check_size(size)
    image = load_image(data, label="The mask", hint=_MASK_HINT)
    try:
        standard = to_standard_mode(_oriented(image))
    except (OSError, ValueError) as error:
        raise InvalidInput(
            f"The mask uses a colour format that cannot be read; {_MASK_HINT}",
            detail=f"mode {image.mode}: {error}",
        ) from error
    if standard.mode == "RGBA":
        edit: Bools = np.asarray(standard.getchannel("A")) == 0
    else:
        edit = np.asarray(standard.convert("L")) >= 128

    mask_height, mask_width = edit.shape
    if (mask_width, mask_height) != (width, height):
        ratio, target = mask_width / mask_height, width / height
        if abs(ratio - target) > ASPECT_TOLERANCE * target:
            raise InvalidInput(
                f"The mask is {mask_width}x{mask_height} but the first image is "
                f"{width}x{height}; use a mask of the same size."
            )
        edit = _resize_nearest(edit, width, height)
    if not edit.any():
        raise InvalidInput(
            "The mask has no transparent area, so nothing would change; make the area to edit "
            "transparent (or white, in a mask without transparency)."
        )
    return Mask(edit)


def mask_preview(image: Image.Image, mask: Mask) -> Image.Image:
    """`image` (RGB, its own size) with the area to edit tinted magenta and the rest dimmed."""
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.has_transparency_data:
        # Show transparent parts over white rather than whatever colour hides under them.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        base = Image.alpha_composite(canvas, rgba).convert("RGB")
    else:
        base = image.convert("RGB")
    edit = _resize_nearest(mask.edit_area(), base.width, base.height)
    pixels = np.asarray(base, dtype=np.uint16)
    tinted = (pixels * (256 - _TINT_WEIGHT) + _TINT * _TINT_WEIGHT) >> 8
    dimmed = (pixels * _DIM_FACTOR) >> 8
    shown = np.where(edit[..., None], tinted, dimmed).astype(np.uint8)
    return Image.fromarray(shown)


def _check_size(size: tuple[int, int]) -> tuple[int, int]:
    width, height = (int(side) for side in size)
    if width <= 0 or height <= 0:
        raise ValueError(f"a mask needs a positive size, not {size!r}")
    return width, height


def _oriented(image: Image.Image) -> Image.Image:
    """The image as displayed, like the reference images (EXIF rotation applied)."""
    return ImageOps.exif_transpose(image) or image


def _painted(layer: npt.NDArray[Any] | Image.Image) -> Bools:
    """Height x width: True where this layer has paint."""
    if isinstance(layer, Image.Image):
        if layer.mode in ("RGBA", "LA", "PA", "RGBa", "La") or layer.has_transparency_data:
            return np.asarray(layer.convert("RGBA").getchannel("A")) > 0
        return np.asarray(layer.convert("L")) > 0
    array = np.asarray(layer)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim == 2:
        return array > 0
    if array.ndim == 3 and array.shape[2] in (2, 4):
        return array[..., -1] > 0
    if array.ndim == 3 and array.shape[2] == 3:
        return np.asarray(array.any(axis=2))
    raise ValueError(
        f"an editor layer must be HxW, HxWx1, HxWx2, HxWx3 or HxWx4, not {array.shape}"
    )


def _resize_nearest(area: Bools, width: int, height: int) -> Bools:
    """`area` scaled to width x height by nearest neighbour, sampled at pixel centres.

    Exact integer arithmetic: target pixel i reads source pixel floor((i + 0.5) * s / t).
    (Pillow's NEAREST agrees except where a centre falls exactly on a pixel edge.)
    """
    source_height, source_width = area.shape
    if (source_width, source_height) == (width, height):
        return area
    rows = ((2 * np.arange(height, dtype=np.int64) + 1) * source_height) // (2 * height)
    cols = ((2 * np.arange(width, dtype=np.int64) + 1) * source_width) // (2 * width)
    scaled: Bools = area.take(cols, axis=1).take(rows, axis=0)  # ~10x faster than area[r, c]
    return scaled


def _encode(edit: Bools) -> bytes:
    """The two-colour RGBA PNG for an edit area; `InvalidInput` if it would pass 4 MB."""
    png = _png_rgba(edit, level=1, strategy=zlib.Z_RLE)
    if len(png) > MAX_MASK_BYTES:  # only speckled noise gets here: try harder once
        png = _png_rgba(edit, level=9, strategy=zlib.Z_DEFAULT_STRATEGY)
    if len(png) > MAX_MASK_BYTES:
        raise InvalidInput("The mask is too detailed to send (over 4 MB); use a simpler mask.")
    return png


def _may_pass_limit(width: int, height: int) -> bool:
    """Whether a mask this size could encode to over 4 MB.

    A two-colour image carries at most one bit a pixel; the worst case measured
    (independent random pixels, the most a two-colour image can hold) encodes
    to 0.65 bytes a pixel at level 1 with the RLE strategy (1536x1024: 1.0 MB).
    The bound allows 1 byte a pixel and a margin, so 1536x1024 (1.6 MB at
    worst) waits to be encoded while the references upload; a mask over about
    4 megapixels is encoded at once so it can be refused before anything is sent.
    """
    pixels = width * height
    return pixels + pixels // 1000 + 4096 > MAX_MASK_BYTES


# RGBA pixels as one little-endian uint32 each, indexed by "edit":
# keep = (0, 0, 0, 255) opaque black, edit = (255, 255, 255, 0) transparent white.
_RGBA_PIXELS = np.array([0xFF000000, 0x00FFFFFF], dtype="<u4")


def _png_rgba(edit: Bools, *, level: int, strategy: int) -> bytes:
    """Encode the mask as an 8-bit RGBA PNG, every row with PNG's "Sub" filter.

    Written here, not by Pillow, because Pillow offers no choice of row filter and
    took 25 ms for a 1536x1024 mask (tests/test_masks.py decodes the result with
    Pillow). With Sub, each byte minus the one a pixel before, a two-colour image
    is zeros except where a row crosses the edge of the area: zlib's run-length
    strategy then takes 10 ms for the same mask, at about the same size.
    """
    height, width = edit.shape
    pixels = _RGBA_PIXELS[edit.view(np.uint8)].view(np.uint8).reshape(height, width * 4)
    rows = np.empty((height, width * 4 + 1), dtype=np.uint8)
    rows[:, 0] = 1  # the filter type of each row: Sub
    rows[:, 1:5] = pixels[:, :4]
    np.subtract(pixels[:, 4:], pixels[:, :-4], out=rows[:, 5:])  # modulo 256, as PNG says
    compressor = zlib.compressobj(level, zlib.DEFLATED, 15, 9, strategy)
    idat = compressor.compress(rows.data) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA
    return b"".join(
        (_PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", idat), _chunk(b"IEND", b""))
    )


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: its length, type, data, and the CRC-32 of type and data."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
