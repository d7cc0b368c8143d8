"""Bringing fal's result images home: downloaded in parallel, kept byte for byte.

The bytes are saved exactly as fal made them (no re-encoding: the user's
choice of png/jpeg/webp is what they download). Only URLs from fal's own
answer are fetched, never one a visitor typed. One image that fails does not
sink the others: it is reported as an `ImageFailure`.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import httpx
from PIL import Image, UnidentifiedImageError

from backend.formats import (
    DataURIError,
    DataURITooLarge,
    NotBase64DataURI,
    decode_data_uri,
    format_for_pillow,
)
from backend.progress import ShownImage
from backend.schema import ImageFailure, ResultImage
from backend.urls import on_fal_media

# A 1536x1024 PNG is a few MB; anything near this cap is not an image we asked for.
MAX_RESULT_BYTES = 64 * 1024 * 1024

# A connection lost under a download: most often a kept-alive connection that the
# file host closed at the moment it was reused (httpx and many servers both idle
# out after 5 s, so under load the two meet). A GET changes nothing, so it is sent
# once more, on a new connection. Timeouts are not retried: the request's deadline
# governs those.
_SEND_AGAIN = (httpx.RemoteProtocolError, httpx.ConnectError, httpx.ReadError, httpx.WriteError)


def shown_from_fal(images_json: list[Any], cdn_url: str | None) -> tuple[ShownImage, ...]:
    """The results a page may show straight from fal, before the app's copies arrive:
    those on fal's media hosts, captioned from fal's answer (the size in bytes comes
    with the app's copy). A data URI (sync_mode) or any other address is not."""
    shown = []
    for entry in images_json:
        url = entry.get("url") if isinstance(entry, dict) else None
        if not isinstance(url, str) or not on_fal_media(url, cdn_url):
            continue
        width, height = entry.get("width"), entry.get("height")
        kind = str(entry.get("content_type") or "").removeprefix("image/").upper()
        size = f"{width}×{height} " if isinstance(width, int) and isinstance(height, int) else ""
        shown.append(ShownImage(url, f"{size}{kind}".strip()))
    return tuple(shown)


async def fetch_images(
    http: httpx.AsyncClient,
    images_json: list[Any],
    dest: Path,
    *,
    stem: str,
    time_left: float | None = None,
) -> tuple[list[ResultImage], list[ImageFailure]]:
    """Fetch every image fal listed, at once; return those that arrived and those that didn't.

    After `time_left` seconds the downloads still running are abandoned and
    reported as failures: the images that did arrive are kept either way.
    """
    if not images_json:
        return [], []
    tasks = [
        asyncio.create_task(_fetch_one(http, entry, dest, f"{stem}-{index + 1}", index))
        for index, entry in enumerate(images_json)
    ]
    try:
        await asyncio.wait(tasks, timeout=time_left)
    finally:
        # Also on the caller's cancellation (Stop): no download outlives its request.
        unfinished = [task for task in tasks if not task.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
    outcomes = [
        task.result()
        if not task.cancelled()
        else ImageFailure(index, "did not arrive before the request's time limit")
        for index, task in enumerate(tasks)
    ]
    images = [o for o in outcomes if isinstance(o, ResultImage)]
    failures = [o for o in outcomes if isinstance(o, ImageFailure)]
    return images, failures


async def _fetch_one(
    http: httpx.AsyncClient, entry: Any, dest: Path, name: str, index: int
) -> ResultImage | ImageFailure:
    url = entry.get("url") if isinstance(entry, dict) else None
    if not isinstance(url, str) or not url:
        return ImageFailure(index, "fal listed an image without a URL")
    try:
        if url.startswith("data:"):
            data = _inline_image(url)
            source_url = None
        elif url.startswith(("https://", "http://")):
            data = await _download(http, url)
            source_url = url
        else:
            return ImageFailure(index, "fal listed an image at an unsupported address")
        return await asyncio.to_thread(_save, data, dest, name, source_url)
    except _FetchFailed as exc:
        return ImageFailure(index, str(exc))
    except httpx.HTTPError as exc:
        return ImageFailure(index, f"download failed ({type(exc).__name__})")
    except OSError as exc:  # saving it here failed (disk full, permissions)
        return ImageFailure(index, f"could not be saved on the server ({type(exc).__name__})")


class _FetchFailed(Exception):
    pass


async def _download(http: httpx.AsyncClient, url: str) -> bytes:
    try:
        return await _download_once(http, url)
    except _SEND_AGAIN:
        return await _download_once(http, url)


async def _download_once(http: httpx.AsyncClient, url: str) -> bytes:
    async with http.stream("GET", url) as response:
        if response.status_code != 200:
            raise _FetchFailed(f"download failed (HTTP {response.status_code})")
        chunks = []
        total = 0
        async for chunk in response.aiter_bytes():
            total += len(chunk)
            if total > MAX_RESULT_BYTES:
                raise _FetchFailed("the image is larger than 64 MB")
            chunks.append(chunk)
    return b"".join(chunks)


def _inline_image(uri: str) -> bytes:
    """The bytes of a result fal sent inside its answer (sync_mode)."""
    try:
        return decode_data_uri(uri, max_bytes=MAX_RESULT_BYTES)
    except NotBase64DataURI:
        raise _FetchFailed("fal sent an image data URI that is not base64") from None
    except DataURITooLarge:
        raise _FetchFailed("the image is larger than 64 MB") from None
    except DataURIError:
        raise _FetchFailed("fal sent an image data URI that could not be decoded") from None


def _save(data: bytes, dest: Path, name: str, source_url: str | None) -> ResultImage:
    try:
        # open() reads the header only: size and format without decoding pixels.
        with Image.open(io.BytesIO(data)) as image:
            pillow_name = image.format or ""
            width, height = image.size
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError):
        raise _FetchFailed("the file fal sent is not a readable image") from None
    # Named and labelled as what the bytes are, whatever format was asked for.
    fmt = format_for_pillow(pillow_name)
    extension = fmt.extension if fmt else pillow_name.lower() or "bin"
    content_type = fmt.mime if fmt else f"image/{extension}"
    dest.mkdir(parents=True, exist_ok=True)
    path = dest / f"{name}.{extension}"
    path.write_bytes(data)
    return ResultImage(
        path=str(path),
        content_type=content_type,
        width=width,
        height=height,
        size_bytes=len(data),
        source_url=source_url,
    )
