"""Images an agent names for an edit: data URIs become files, URLs stay URLs.

Gradio's MCP convention gives a tool's images as http(s) URLs or `data:` URIs.
An http(s) URL goes to fal unchanged (backend/urls.py). A data URI is decoded
into a file and then read like any upload, so its bytes are checked, normalised
and sent inline or uploaded by the same rules (backend/edits.py).

fal receives the files first, then the URLs; so that the first image named stays
the one edited, data URIs must come before URLs in the list.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from backend.errors import InvalidInput
from backend.formats import DataURIError, DataURITooLarge, decode_data_uri
from backend.images import MAX_INPUT_BYTES


@dataclass(frozen=True)
class AgentImages:
    files: list[str]  # data URIs, written out, in their order
    urls: list[object]  # everything else, checked later as http(s) URLs
    mask_file: str | None
    mask_url: object


def is_data_uri(value: object) -> bool:
    return isinstance(value, str) and value[:5].lower() == "data:"


@contextmanager
def agent_images(image_urls: object, mask_image_url: object, folder: Path) -> Iterator[AgentImages]:
    """The images as files and URLs; the files are removed when the block ends.

    Raises InvalidInput in one sentence for a data URI that holds nothing usable
    or one that follows a URL."""
    values: Sequence[object]
    if image_urls is None:
        values = []
    elif isinstance(image_urls, str):
        values = [image_urls]
    elif isinstance(image_urls, list):
        values = image_urls
    else:
        raise InvalidInput("image_urls must be a list of https URLs or data URIs.")
    first_url = next((i for i, v in enumerate(values) if not is_data_uri(v)), len(values))
    late = [i for i, v in enumerate(values) if is_data_uri(v) and i > first_url]
    if late:
        raise InvalidInput(
            f"image_urls[{late[0]}] is a data URI after a URL: put data URIs first "
            "(the first image is the one edited), then URLs."
        )
    here = folder / uuid.uuid4().hex
    try:
        files = [_write(values[i], here, f"image_urls[{i}]") for i in range(first_url)]
        mask_file = None
        mask_url = mask_image_url or None
        if is_data_uri(mask_image_url):
            mask_file = _write(mask_image_url, here, "mask_image_url")
            mask_url = None
        yield AgentImages(files, list(values[first_url:]), mask_file, mask_url)
    finally:
        shutil.rmtree(here, ignore_errors=True)


def _write(uri: object, folder: Path, name: str) -> str:
    try:
        data = decode_data_uri(str(uri), max_bytes=MAX_INPUT_BYTES)
    except DataURITooLarge:
        raise InvalidInput(
            f"{name} holds more than {MAX_INPUT_BYTES // 1_000_000} MB; use a smaller image."
        ) from None
    except DataURIError:
        raise InvalidInput(
            f"{name} is not a base64 data URI (data:image/png;base64,...); "
            "give an https URL or a base64 data URI of a PNG, JPEG or WebP image."
        ) from None
    folder.mkdir(parents=True, exist_ok=True)
    # Named after the parameter, so a sentence about the file names it as the agent
    # did; no extension: the bytes say what it is.
    path = folder / name
    path.write_bytes(data)
    return str(path)
