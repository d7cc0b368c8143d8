"""Making the fake's output images and decoding the images it is sent.

Outputs are real, decodable images of the requested size and format, cheap to
make (flat colours, fast encoder settings) and different per prompt and index so a
test can tell two results apart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw

MIME_BY_FORMAT: dict[str, str] = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
EXTENSION_BY_FORMAT: dict[str, str] = {"png": "png", "jpeg": "jpg", "webp": "webp"}
EDIT_SIZES: tuple[tuple[int, int], ...] = ((1024, 1024), (1536, 1024), (1024, 1536))


class DataURIError(ValueError):
    pass


@dataclass(frozen=True)
class RenderSpec:
    prompt: str
    index: int
    width: int
    height: int
    output_format: str  # "png" | "jpeg" | "webp"
    transparent: bool = False
    base: bytes | None = None  # encoded first input image of an edit


def parse_size(size: str) -> tuple[int, int]:
    width, _, height = size.partition("x")
    return int(width), int(height)


def closest_size(width: int, height: int) -> tuple[int, int]:
    """The edit size whose aspect ratio is nearest to width/height ("auto")."""
    ratio = width / height
    return min(EDIT_SIZES, key=lambda size: abs(size[0] / size[1] - ratio))


def _palette(prompt: str, index: int) -> tuple[tuple[int, int, int], tuple[int, int, int], int]:
    digest = hashlib.sha256(f"{prompt}\x00{index}".encode()).digest()
    background = (digest[0], digest[1], digest[2])
    # The shape colour is the complement, so it is always visible.
    shape = (255 - digest[0], 255 - digest[1], 255 - digest[2])
    return background, shape, digest[3]


@lru_cache(maxsize=64)
def render(spec: RenderSpec) -> bytes:
    """Encode one output image for `spec` (cached: benchmarks repeat prompts, and
    the fake's CPU time should not compete with the app it is measuring)."""
    size = (spec.width, spec.height)
    background, shape, seed = _palette(spec.prompt, spec.index)
    mode = "RGBA" if spec.transparent and spec.output_format != "jpeg" else "RGB"
    if spec.base is not None:
        with Image.open(io.BytesIO(spec.base)) as base:
            canvas = base.convert(mode).resize(size, Image.Resampling.NEAREST)
    else:
        fill = (*background, 0) if mode == "RGBA" else background
        canvas = Image.new(mode, size, fill)
    draw = ImageDraw.Draw(canvas)
    # A disc whose position depends on the prompt, plus one bar per index, so
    # images of one request differ from each other and from other prompts.
    radius = min(size) // 4
    cx = radius + (seed * (spec.width - 2 * radius)) // 255
    cy = spec.height // 2
    opaque_shape = (*shape, 255) if mode == "RGBA" else shape
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=opaque_shape)
    bar = max(8, spec.height // 32)
    for bar_index in range(spec.index + 1):
        top = bar + bar_index * 2 * bar
        draw.rectangle((bar, top, spec.width // 3, top + bar), fill=opaque_shape)
    if mode == "RGBA" and spec.base is not None:
        # An edited photo is opaque; punch a transparent frame so a transparent
        # background request still yields a transparent area. (ImageDraw replaces
        # pixels, alpha included; it does not blend.)
        frame = max(4, min(size) // 16)
        clear = (0, 0, 0, 0)
        draw.rectangle((0, 0, spec.width - 1, frame - 1), fill=clear)
        draw.rectangle((0, spec.height - frame, spec.width - 1, spec.height - 1), fill=clear)
        draw.rectangle((0, 0, frame - 1, spec.height - 1), fill=clear)
        draw.rectangle((spec.width - frame, 0, spec.width - 1, spec.height - 1), fill=clear)
    return encode(canvas, spec.output_format)


def encode(image: Image.Image, output_format: str) -> bytes:
    buffer = io.BytesIO()
    if output_format == "png":
        image.save(buffer, format="PNG", compress_level=1)
    elif output_format == "jpeg":
        image.convert("RGB").save(buffer, format="JPEG", quality=85)
    elif output_format == "webp":
        image.save(buffer, format="WEBP", quality=80, method=0)
    else:
        raise ValueError(f"unsupported output format {output_format!r}")
    return buffer.getvalue()


def data_uri(mime: str, data: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def parse_data_uri(uri: str) -> tuple[str, bytes]:
    """(mime type, bytes) of a `data:` URI; raises DataURIError if it is not one."""
    if not uri.startswith("data:"):
        raise DataURIError("not a data URI")
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise DataURIError("data URI without a comma")
    params = header.split(";")
    mime = params[0] or "text/plain"
    if "base64" not in params[1:]:
        raise DataURIError("only base64 data URIs are supported")
    try:
        return mime, base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataURIError(f"invalid base64 payload: {exc}") from exc


def solid_image(
    width: int, height: int, color: tuple[int, ...] = (200, 80, 40), output_format: str = "png"
) -> bytes:
    """A plain image for tests (RGB, or RGBA if `color` has four components)."""
    mode = "RGBA" if len(color) == 4 else "RGB"
    return encode(Image.new(mode, (width, height), color), output_format)


def mask_image(width: int, height: int, box: tuple[int, int, int, int]) -> bytes:
    """An edit mask for tests: opaque black, with `box` fully transparent (= edit here)."""
    image = Image.new("RGBA", (width, height), (0, 0, 0, 255))
    ImageDraw.Draw(image).rectangle(box, fill=(255, 255, 255, 0))
    return encode(image, "png")
