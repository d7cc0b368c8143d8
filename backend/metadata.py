"""Saved images remember how they were made: prompt, parameters, request id.

A PNG carries the record in an iTXt chunk (keyword `APP_TAG`, UTF-8 JSON),
inserted without touching the pixel data. JPEG and WebP files are kept byte for
byte as fal made them, with the same JSON in a sidecar `<file name>.json`.
`read_metadata` + `parameters_for_ui` turn either back into the controls'
values, so a saved image can be dropped on the app to repeat its run.

Nothing here ever holds a key: a result only knows where its key came from,
and even that label is not written.

Note: inserting a chunk changes the file, so a C2PA manifest in a PNG (OpenAI
signs its images) no longer validates in the saved copy; the download in the
results directory stays exactly as fal sent it.
"""

from __future__ import annotations

import io
import json
import re
import struct
import unicodedata
import warnings
import zlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, get_origin

from PIL import Image, UnidentifiedImageError

from backend.endpoints import ENDPOINTS, Endpoint, Registry
from backend.errors import InvalidInput
from backend.formats import format_for_mime
from backend.images import MAX_PIXELS
from backend.schema import EDIT_ENDPOINT, GenerationResult

APP_TAG = "gpt-image-studio"  # the PNG text keyword, and the JSON's "tag"
APP_NAME = "GPT Image 1.5 Studio"
METADATA_VERSION = 1

# What marks a run of the offline demo (backend/demo.py). Defined here, the
# lower layer, so that demo, metadata and history agree without an import cycle.
DEMO_KEY_SOURCE = "demo"
DEMO_REQUEST_PREFIX = "demo-"

_IMAGE_ARGUMENTS = ("image_urls", "mask_image_url")

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_MAX_JSON_BYTES = 1_000_000  # far above any record; refuses a random large upload fast
_NO_PARAMETERS = (
    "This image holds no GPT Image Studio parameters (only images saved by this app do; "
    "for a JPEG or WebP, use the .json file saved next to it)."
)
_PROMPT_WORDS_IN_NAME = 6
_MAX_NAME_CHARS = 48


def is_demo(result: GenerationResult) -> bool:
    """Whether `result` came from the offline demo rather than fal."""
    return (
        result.key_source == DEMO_KEY_SOURCE
        or result.request_id.startswith(DEMO_REQUEST_PREFIX)
        or result.metrics.get("demo") is True
    )


def build_metadata(result: GenerationResult, *, now: datetime | None = None) -> dict[str, Any]:
    """The record a saved image carries: what was asked, of which endpoint, when."""
    created = (now or datetime.now(UTC)).astimezone(UTC)
    return {
        "tag": APP_TAG,
        "version": METADATA_VERSION,
        "app": APP_NAME,
        "endpoint": result.endpoint,
        "request_id": result.request_id,
        "created": created.isoformat(timespec="seconds"),
        "parameters": _recorded_parameters(result),
        "demo": is_demo(result),
    }


def _recorded_parameters(result: GenerationResult) -> dict[str, Any]:
    """The arguments without image URLs (data URIs are megabytes; CDN URLs expire)."""
    arguments = result.arguments
    parameters = {k: v for k, v in arguments.items() if k not in _IMAGE_ARGUMENTS}
    if result.endpoint == EDIT_ENDPOINT or "image_urls" in arguments:
        parameters["reference_images"] = len(arguments.get("image_urls") or [])
        parameters["mask"] = bool(arguments.get("mask_image_url"))
    return parameters


# --- PNG text chunks, written by hand -----------------------------------------


def embed_png_text(png: bytes, keyword: str, text: str) -> bytes:
    """`png` with an iTXt chunk (UTF-8, uncompressed) right after IHDR.

    Every other chunk is copied byte for byte, so the pixel data is untouched.
    An existing text chunk with the same keyword is dropped: a file saved twice
    carries one record, the newest. Raises InvalidInput if `png` is no PNG.
    """
    keyword_bytes = _keyword_bytes(keyword)
    chunks, trailer = _split_chunks(png)
    kept = [chunk for chunk in chunks[1:] if _text_keyword(chunk) != keyword_bytes]
    payload = b"".join(
        [
            keyword_bytes + b"\x00",
            b"\x00\x00",  # compression flag and method: not compressed
            b"\x00",  # empty language tag
            b"\x00",  # empty translated keyword
            text.encode("utf-8"),
        ]
    )
    return b"".join([_PNG_SIGNATURE, chunks[0], _chunk(b"iTXt", payload), *kept, trailer])


def _keyword_bytes(keyword: str) -> bytes:
    # The PNG spec: 1 to 79 Latin-1 characters, no NUL.
    try:
        encoded = keyword.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"a PNG text keyword must be Latin-1: {keyword!r}") from None
    if not 1 <= len(encoded) <= 79 or b"\x00" in encoded:
        raise ValueError(f"a PNG text keyword has 1 to 79 characters and no NUL: {keyword!r}")
    return encoded


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _split_chunks(png: bytes) -> tuple[list[bytes], bytes]:
    """The whole chunks of `png` up to IEND, and any bytes after it (kept as they are)."""
    if not png.startswith(_PNG_SIGNATURE):
        raise InvalidInput("This file is not a PNG image.")
    chunks: list[bytes] = []
    position = len(_PNG_SIGNATURE)
    while position + 12 <= len(png):
        (length,) = struct.unpack_from(">I", png, position)
        end = position + 12 + length
        if end > len(png):
            break
        chunks.append(png[position:end])
        position = end
        if chunks[-1][4:8] == b"IEND":
            break
    if not chunks or chunks[0][4:8] != b"IHDR" or chunks[-1][4:8] != b"IEND":
        raise InvalidInput("This PNG image is damaged or incomplete.")
    return chunks, png[position:]


def _text_keyword(chunk: bytes) -> bytes | None:
    if chunk[4:8] not in _TEXT_CHUNKS:
        return None
    return chunk[8:-4].split(b"\x00", 1)[0]


# --- saving ---------------------------------------------------------------------


def planned_outputs(
    result: GenerationResult, outputs_dir: Path, tag: str, *, now: datetime | None = None
) -> list[Path]:
    """Where `write_outputs` will put each image: names made unique by `tag` (a run's
    id), so they can be recorded before any file exists (backend/history.py)."""
    created = now or datetime.now(UTC)
    base = f"{created.astimezone():%Y-%m-%d_%H%M%S}_{_name_from_prompt(result)}_{tag}"
    paths = []
    for number, image in enumerate(result.images, start=1):
        fmt = format_for_mime(image.content_type)
        extension = fmt.extension if fmt else Path(image.path).suffix.lstrip(".")
        paths.append(outputs_dir / f"{base}_{number}.{extension or 'bin'}")
    return paths


def write_outputs(result: GenerationResult, paths: list[Path]) -> None:
    """Write each image to its planned path with its record: a PNG gets it embedded;
    a JPEG or WebP is copied byte for byte with the record beside it in
    `<file name>.json`."""
    metadata = build_metadata(result)
    for number, (image, path) in enumerate(zip(result.images, paths, strict=True), start=1):
        path.parent.mkdir(parents=True, exist_ok=True)
        data = Path(image.path).read_bytes()
        record = {**metadata, "image_number": number}
        if data.startswith(_PNG_SIGNATURE):
            path.write_bytes(embed_png_text(data, APP_TAG, json.dumps(record, ensure_ascii=False)))
        else:
            path.write_bytes(data)
            sidecar_text = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
            sidecar_of_output(path).write_text(sidecar_text, encoding="utf-8")


def sidecar_of_output(path: Path) -> Path:
    """The JSON record saved beside a JPEG or WebP output."""
    return _sidecar(path)


def _name_from_prompt(result: GenerationResult) -> str:
    """The prompt's first words as a file-name part ("a-red-fox-in-snow")."""
    # NFC first: a letter typed as letter + combining accent is one \w character then.
    prompt = unicodedata.normalize("NFC", str(result.arguments.get("prompt", "")))
    words = re.findall(r"\w+", prompt.lower())[:_PROMPT_WORDS_IN_NAME]
    name = "-".join(words)[:_MAX_NAME_CHARS].strip("-_")
    return name or "image"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


# --- reading back ----------------------------------------------------------------


def read_metadata(data: bytes, *, sidecar: bytes | None = None) -> dict[str, Any]:
    """The record saved with an image: from `sidecar`, a PNG's text chunk, or `data` as JSON.

    Raises InvalidInput when there is none or it cannot be read.
    """
    if sidecar is not None:
        return _parse_record(sidecar)
    if data.startswith(_PNG_SIGNATURE):
        return _parse_record(_png_text(data))
    if data.lstrip()[:1] == b"{":
        return _parse_record(data)
    raise InvalidInput(_NO_PARAMETERS)


def _png_text(data: bytes) -> bytes:
    try:
        with Image.open(io.BytesIO(data)) as image:
            # Chunks before the pixels are in `info` without decoding anything.
            text = image.info.get(APP_TAG)
            if text is None and image.width * image.height <= MAX_PIXELS:
                # `text` also finds chunks after the pixels, but decodes them to get there.
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                    text = getattr(image, "text", {}).get(APP_TAG)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError):
        raise InvalidInput("This PNG image is damaged and cannot be read.") from None
    if not isinstance(text, str):
        raise InvalidInput(_NO_PARAMETERS)
    return text.encode("utf-8")


def _parse_record(raw: bytes) -> dict[str, Any]:
    if len(raw) > _MAX_JSON_BYTES:
        raise InvalidInput(_NO_PARAMETERS)
    try:
        record = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise InvalidInput(_NO_PARAMETERS) from None
    if isinstance(record, dict) and isinstance(record.get("runs"), list) and record["runs"]:
        # An export of several runs (backend/export.py): its first run.
        first = record["runs"][0]
        record = {"tag": record.get("tag"), **first} if isinstance(first, dict) else None
    if (
        not isinstance(record, dict)
        or record.get("tag") != APP_TAG
        or not isinstance(record.get("parameters"), dict)
    ):
        raise InvalidInput(_NO_PARAMETERS)
    return record


def parameters_for_ui(
    metadata: dict[str, Any], endpoints: Registry = ENDPOINTS
) -> tuple[str, dict[str, Any]]:
    """(the tab, the controls' values, prompt included) from a saved record.

    The values are checked as a new request would be; unknown keys are dropped,
    missing ones take the API's defaults. Raises InvalidInput for bad values or
    an endpoint `endpoints` does not serve.
    """
    saved = metadata.get("parameters")
    if not isinstance(saved, dict):
        raise InvalidInput(_NO_PARAMETERS)
    endpoint = endpoints.by_id(str(metadata.get("endpoint")))
    names = ("prompt", *endpoint.parameter_names)
    fields = {name: saved[name] for name in names if name in saved}
    try:
        request = endpoint.model.parse(**_saved_images(endpoint), **fields)
    except InvalidInput as exc:
        raise InvalidInput(f"The saved parameters cannot be used: {exc.message}") from None
    return endpoint.tab, request.model_dump(include=set(names))


def _saved_images(endpoint: Endpoint) -> dict[str, Any]:
    """Placeholders for the required image inputs (images are not saved), so that
    the parameters can be checked."""
    placeholders: dict[str, Any] = {}
    for name in endpoint.image_inputs:
        info = endpoint.field(name)
        if info.is_required():
            placeholders[name] = ["saved:0"] if get_origin(info.annotation) is list else "saved:0"
    return placeholders
