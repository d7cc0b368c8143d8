"""Resolving and checking the images an edit request points at.

Kept apart from the server so the rules (OpenAI's documented limits) read in one
place; the server supplies `fetch`, which knows which URLs the fake can reach.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, Literal

from PIL import Image, UnidentifiedImageError

from .records import DecodedImage
from .schema import ErrorItem

MAX_INPUT_BYTES = 50 * 1024 * 1024  # OpenAI: each input image under 50 MB
MAX_MASK_BYTES = 4 * 1024 * 1024  # OpenAI: mask PNG under 4 MB
INPUT_FORMATS = frozenset({"PNG", "JPEG", "WEBP"})

Fetch = Callable[[str], bytes | None]


def resolve_inputs(
    arguments: dict[str, Any], fetch: Fetch
) -> tuple[list[DecodedImage], list[ErrorItem]]:
    """Decode every `image_urls` entry and the mask; collect 422 items for failures."""
    decoded: list[DecodedImage] = []
    problems: list[ErrorItem] = []
    for index, url in enumerate(arguments["image_urls"]):
        image, problem = _load(
            url, fetch, "image", index, ("body", "image_urls", index), MAX_INPUT_BYTES
        )
        if image is not None:
            decoded.append(image)
        if problem is not None:
            problems.append(problem)
    mask_url = arguments.get("mask_image_url")
    if isinstance(mask_url, str):
        mask, problem = _load(
            mask_url, fetch, "mask", 0, ("body", "mask_image_url"), MAX_MASK_BYTES
        )
        if mask is not None:
            decoded.append(mask)
            problem = problem or _mask_problem(mask, decoded)
        if problem is not None:
            problems.append(problem)
    return decoded, problems


def _mask_problem(mask: DecodedImage, decoded: list[DecodedImage]) -> ErrorItem | None:
    loc = ["body", "mask_image_url"]
    if mask.format != "PNG":
        return {
            "loc": loc,
            "msg": f"The mask must be a PNG image, got {mask.format}",
            "type": "invalid_mask_format",
            "input": None,
        }
    first = next((item for item in decoded if item.role == "image" and item.index == 0), None)
    # OpenAI requires the mask to be exactly the size of the first image.
    if first is not None and (first.width, first.height) != (mask.width, mask.height):
        return {
            "loc": loc,
            "msg": f"The mask ({mask.width}x{mask.height}) must have the same "
            f"dimensions as the first image ({first.width}x{first.height})",
            "type": "mask_size_mismatch",
            "input": None,
        }
    return None


def _load(
    url: str,
    fetch: Fetch,
    role: Literal["image", "mask"],
    index: int,
    loc: tuple[str | int, ...],
    max_bytes: int,
) -> tuple[DecodedImage | None, ErrorItem | None]:
    shown = url if len(url) <= 200 else url[:200] + "..."

    def problem(msg: str, type_: str) -> tuple[None, ErrorItem]:
        return None, {"loc": list(loc), "msg": msg, "type": type_, "input": shown}

    data = fetch(url)
    if data is None:
        return problem(f"Could not download image from URL: {shown}", "file_download_error")
    if len(data) > max_bytes:
        return problem(
            f"The image is {len(data)} bytes; the limit is {max_bytes}", "file_too_large"
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            fmt, mode, (width, height) = image.format, image.mode, image.size
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        return problem(f"Could not load image: {exc}", "image_load_error")
    if fmt not in INPUT_FORMATS:
        return problem(
            f"Unsupported image format {fmt}; use PNG, JPEG or WEBP", "unsupported_image_format"
        )
    return DecodedImage(role, index, fmt, mode, width, height, data), None
