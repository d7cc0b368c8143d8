"""A run's request as code: Python (fal_client), JavaScript (@fal-ai/client), cURL.

Made from the run's record (`GenerationResult.record()`): the endpoint and the
arguments exactly as sent, so a prompt found by trying can be taken into a program.

- The key is never written: the snippets read it from the environment
  (`$FAL_KEY`, `process.env.FAL_KEY`; fal_client reads `FAL_KEY` itself).
- An input that was a file on the caller's machine (the record's `local_inputs`:
  sent inline as a data URI or uploaded to fal's storage for this run) is never
  pasted: the snippet uploads a file of that name instead, with a comment saying
  so. Other URLs (a caller's `image_urls`) are kept as they were sent.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

QUEUE_URL = "https://queue.fal.run"


@dataclass(frozen=True)
class Snippets:
    python: str
    javascript: str
    curl: str


@dataclass(frozen=True)
class _Local:
    """A local input: where it goes, the variable and the file name standing for it."""

    field: str
    index: int | None  # position in image_urls; None for the mask
    variable: str
    file_name: str


def request_as_code(record: Mapping[str, Any]) -> Snippets:
    """The three snippets for a run's record."""
    endpoint = str(record["endpoint"])
    arguments: dict[str, Any] = dict(record["arguments"])
    locals_ = _locals(record.get("local_inputs") or [])
    request_id = record.get("request_id") or ""
    return Snippets(
        python=_python(endpoint, arguments, locals_, request_id),
        javascript=_javascript(endpoint, arguments, locals_, request_id),
        curl=_curl(endpoint, arguments, locals_, request_id),
    )


def _locals(names: Sequence[str]) -> list[_Local]:
    found = []
    for name in names:
        match = re.fullmatch(r"image_urls\[(\d+)\]", name)
        if match:
            index = int(match.group(1))
            found.append(
                _Local("image_urls", index, f"image_{index + 1}", f"image-{index + 1}.png")
            )
        elif name == "mask_image_url":
            found.append(_Local("mask_image_url", None, "mask", "mask.png"))
    return found


def _with(arguments: dict[str, Any], locals_: list[_Local], stand_in: Any) -> dict[str, Any]:
    """`arguments` with each local input replaced by `stand_in(local)`."""
    values = dict(arguments)
    for local in locals_:
        if local.index is None:
            values[local.field] = stand_in(local)
        else:
            urls = list(values.get(local.field) or [])
            if local.index < len(urls):
                urls[local.index] = stand_in(local)
            values[local.field] = urls
    return values


class _Code(str):
    """A piece of code to write as it is, not as a string literal."""


def _literal(value: Any, language: str, indent: int) -> str:
    step = _STEP[language]
    if isinstance(value, _Code):
        return str(value)
    if isinstance(value, bool):
        return ("True" if value else "False") if language == "python" else json.dumps(value)
    if value is None:
        return "None" if language == "python" else "null"
    if isinstance(value, list):
        if not value:
            return "[]"
        inner = " " * (indent + step)
        items = [f"{inner}{_literal(item, language, indent + step)}," for item in value]
        return "[\n" + "\n".join(items) + "\n" + " " * indent + "]"
    # json.dumps makes a string literal valid in Python and JavaScript alike.
    return json.dumps(value, ensure_ascii=False)


# Indentation: PEP 8's four spaces in Python, the common two in JavaScript.
_STEP = {"python": 4, "javascript": 2}


def _object(values: Mapping[str, Any], language: str, indent: int) -> str:
    """An object literal whose closing brace sits at `indent`."""
    inner = indent + _STEP[language]
    lines = []
    for key, value in values.items():
        name = json.dumps(key) if language == "python" else key
        lines.append(f"{' ' * inner}{name}: {_literal(value, language, inner)},")
    return "{\n" + "\n".join(lines) + "\n" + " " * indent + "}"


def _header(endpoint: str, request_id: str, comment: str) -> str:
    sent = f" (request {request_id})" if request_id else ""
    return f"{comment} {endpoint}: the request this run sent{sent}."


def _python(endpoint: str, arguments: dict[str, Any], locals_: list[_Local], rid: str) -> str:
    lines = [
        _header(endpoint, rid, "#"),
        "# pip install fal-client; it reads your key from the FAL_KEY environment variable.",
        "import fal_client",
        "",
    ]
    for local in locals_:
        lines.append(
            f"# {_where(local)} was a file on your machine: upload yours to fal's storage."
        )
        lines.append(f'{local.variable} = fal_client.upload_file("{local.file_name}")')
    if locals_:
        lines.append("")
    values = _with(arguments, locals_, lambda local: _Code(local.variable))
    lines += [
        "result = fal_client.subscribe(",
        f"    {json.dumps(endpoint)},",
        f"    arguments={_object(values, 'python', 4)},",
        ")",
        'print([image["url"] for image in result["images"]])',
    ]
    return "\n".join(lines) + "\n"


def _javascript(endpoint: str, arguments: dict[str, Any], locals_: list[_Local], rid: str) -> str:
    lines = [
        _header(endpoint, rid, "//"),
        "// npm install @fal-ai/client; run as an ES module (node script.mjs).",
    ]
    if locals_:
        lines.append('import { readFile } from "node:fs/promises";')
    lines += [
        'import { fal } from "@fal-ai/client";',
        "",
        "fal.config({ credentials: process.env.FAL_KEY });",
        "",
    ]
    for local in locals_:
        lines.append(
            f"// {_where(local)} was a file on your machine: upload yours to fal's storage."
        )
        lines.append(
            f"const {_camel(local.variable)} = await fal.storage.upload("
            f'new Blob([await readFile("{local.file_name}")], {{ type: "image/png" }}));'
        )
    if locals_:
        lines.append("")
    values = _with(arguments, locals_, lambda local: _Code(_camel(local.variable)))
    lines += [
        f"const result = await fal.subscribe({json.dumps(endpoint)}, {{",
        f"  input: {_object(values, 'javascript', 2)},",
        "});",
        "console.log(result.data.images.map((image) => image.url));",
    ]
    return "\n".join(lines) + "\n"


def _curl(endpoint: str, arguments: dict[str, Any], locals_: list[_Local], rid: str) -> str:
    lines = [
        _header(endpoint, rid, "#"),
        "# Through fal's queue; the key is read from $FAL_KEY.",
    ]
    for local in locals_:
        lines.append(
            f"# {_where(local)} was a file on your machine: put the https URL of yours "
            "(upload it to fal's storage, e.g. with fal_client.upload_file) where it says so."
        )

    def stand_in(local: _Local) -> str:
        return f"<https URL of {local.file_name}>"

    body = json.dumps(_with(arguments, locals_, stand_in), indent=2, ensure_ascii=False)
    lines += [
        f"curl -s -X POST {shlex.quote(f'{QUEUE_URL}/{endpoint}')} \\",
        '  -H "Authorization: Key $FAL_KEY" \\',
        '  -H "Content-Type: application/json" \\',
        "  --data-binary @- <<'JSON'",
        body,
        "JSON",
        "# fal answers with a status_url and a response_url. Ask the status_url until it",
        "# says COMPLETED, then GET the response_url for the images:",
        '#   curl -s -H "Authorization: Key $FAL_KEY" "<status_url>"',
        '#   curl -s -H "Authorization: Key $FAL_KEY" "<response_url>"',
    ]
    return "\n".join(lines) + "\n"


def _where(local: _Local) -> str:
    return local.field if local.index is None else f"{local.field}[{local.index}]"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)
