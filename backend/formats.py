"""Image formats, once: the API's name, MIME type, file extension and Pillow's name.

The API's `output_format` values are png, jpeg and webp (backend/schema.py);
GIF is here because a result fal sends is saved as whatever it really is.
Also the one reader and writer of base64 `data:` URIs, the form fal takes
inline images in and may send results in.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass


@dataclass(frozen=True)
class ImageFormat:
    name: str  # as the API spells it: "jpeg"
    mime: str  # "image/jpeg"
    extension: str  # without the dot: "jpg", the one people and tools expect
    pillow: str  # Pillow's format name: "JPEG"


PNG = ImageFormat("png", "image/png", "png", "PNG")
JPEG = ImageFormat("jpeg", "image/jpeg", "jpg", "JPEG")
WEBP = ImageFormat("webp", "image/webp", "webp", "WEBP")
GIF = ImageFormat("gif", "image/gif", "gif", "GIF")
FORMATS = (PNG, JPEG, WEBP, GIF)

_BY_NAME = {fmt.name: fmt for fmt in FORMATS}
_BY_MIME = {fmt.mime: fmt for fmt in FORMATS}
_BY_PILLOW = {fmt.pillow: fmt for fmt in FORMATS}


def format_named(name: str) -> ImageFormat:
    """The format an `output_format` value names; KeyError for one that names none."""
    return _BY_NAME[name]


def format_for_mime(mime: str) -> ImageFormat | None:
    return _BY_MIME.get(mime)


def format_for_pillow(pillow_name: str) -> ImageFormat | None:
    """The format of an image Pillow opened (its `format`), if it is one of these."""
    return _BY_PILLOW.get(pillow_name)


def data_uri(data: bytes, mime: str) -> str:
    """`data` as a base64 `data:` URI, which fal accepts wherever it takes an image URL."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


class DataURIError(ValueError):
    """A `data:` URI whose payload is not valid base64."""


class NotBase64DataURI(DataURIError):
    """Not a `data:` URI, or one whose payload is not marked base64."""


class DataURITooLarge(DataURIError):
    """A `data:` URI whose payload would decode to more than the caller allows."""


def decode_data_uri(uri: str, *, max_bytes: int | None = None) -> bytes:
    """The bytes a base64 `data:` URI holds; raises a DataURIError if it holds none.

    With `max_bytes`, a payload too long to fit is refused before it is decoded.
    """
    header, _, payload = uri.partition(",")
    if not header.startswith("data:") or ";base64" not in header:
        raise NotBase64DataURI("not a base64 data URI")
    # Four base64 characters per three bytes, plus padding.
    if max_bytes is not None and len(payload) > max_bytes * 4 // 3 + 4:
        raise DataURITooLarge(f"the data URI holds more than {max_bytes} bytes")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise DataURIError("the data URI's base64 is not valid") from None
