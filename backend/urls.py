"""Image URLs a caller names: which are acceptable, which are fal's own, and the
one kind of fetch the server allows itself.

An edit may name its images by URL (`image_urls`, `mask_image_url`): fal
fetches them, not this server. The only exception is a file on fal's own media
hosts, read when a check cannot be made otherwise (a mask's size against the
first image's). A URL anywhere else is never fetched here: a visitor must not be
able to make this server call an address of their choosing (SSRF).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from urllib.parse import urlsplit

import httpx
from PIL import Image, UnidentifiedImageError

from backend.errors import InvalidInput

# fal serves uploads and results from fal.media and its subdomains (v3.fal.media,
# v3b.fal.media: ARCHITECTURE.md, "Facts", fal's media hosts).
FAL_MEDIA_DOMAIN = "fal.media"
# Enough of an image file for its header (JPEG's size can follow a large EXIF block).
_HEADER_BYTES = 256 * 1024
_SHOWN_CHARS = 60


def checked_urls(values: Sequence[object] | None, name: str = "image_urls") -> list[str]:
    """Each value, if it is an http(s) URL; InvalidInput in one sentence otherwise."""
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]  # one URL given as a plain string: the caller meant a list of one
    if not isinstance(values, Sequence):
        raise InvalidInput(f"{name} must be a list of http(s) URLs.")
    return [checked_url(value, f"{name}[{index}]") for index, value in enumerate(values)]


def checked_url(value: object, name: str) -> str:
    """`value` as sent to fal, unchanged, if it is an http(s) URL with a host.

    Anything else (a file path, plain text, data: or another scheme) is refused:
    fal could not fetch it, or it would name something on this machine."""
    text = value if isinstance(value, str) else ""
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not host
        or any(ch.isspace() or ord(ch) < 32 for ch in text)
    ):
        shown = repr(value) if not isinstance(value, str) else repr(_shortened(value))
        raise InvalidInput(
            f"{name} is not an http(s) URL ({shown}): give an https:// address fal can "
            "fetch, or upload the file itself."
        )
    return text


def on_fal_media(url: str, cdn_url: str | None = None) -> bool:
    """Whether `url` is on fal's media hosts (or the CDN this app is pointed at)."""
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return False
    if parts.scheme.lower() not in ("http", "https") or not host:
        return False
    if parts.scheme.lower() == "https" and (
        host == FAL_MEDIA_DOMAIN or host.endswith("." + FAL_MEDIA_DOMAIN)
    ):
        return True
    if cdn_url:
        cdn = urlsplit(cdn_url)
        return (parts.scheme.lower(), host, port) == (
            cdn.scheme.lower(),
            (cdn.hostname or "").lower(),
            cdn.port,
        )
    return False


async def fal_image_size(url: str, *, cdn_url: str | None, what: str) -> tuple[int, int]:
    """(width, height) of an image on fal's media hosts, from its first bytes.

    Only for fal's own hosts: anything else raises InvalidInput without a request."""
    if not on_fal_media(url, cdn_url):
        raise InvalidInput(
            f"{what} is not on fal's storage, so its size cannot be checked here; "
            "upload the file itself instead."
        )
    data = b""
    try:
        async with (
            httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=5.0)) as http,
            http.stream("GET", url, headers={"Range": f"bytes=0-{_HEADER_BYTES - 1}"}) as answer,
        ):
            if answer.status_code not in (200, 206):
                raise InvalidInput(
                    f"{what} could not be read from fal's storage (HTTP {answer.status_code}); "
                    "check the URL."
                )
            async for chunk in answer.aiter_bytes():
                data += chunk
                if len(data) >= _HEADER_BYTES:
                    break
    except httpx.HTTPError as exc:
        raise InvalidInput(
            f"{what} could not be read from fal's storage; check the URL and try again.",
            detail=type(exc).__name__,
        ) from None
    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise InvalidInput(f"{what} is not an image that can be read.") from None


def _shortened(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 1] + "…"
