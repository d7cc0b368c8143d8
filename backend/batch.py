"""Batch runs: many prompts with the same parameters, or a CSV that changes some.

`batch_jobs` turns what the user pasted (or uploaded) into checked requests before
anything is sent: one prompt per line (blank lines and surrounding spaces
ignored), or a CSV whose header has a `prompt` column and, optionally, columns
named like the endpoint's parameters, whose cells override the current values.
A mistake anywhere refuses the whole batch in a sentence that names the line.

`Batch` is a batch as it runs (`RunService.batch`): each item's state, result or
error, for the page's table and the API's records.
"""

from __future__ import annotations

import asyncio
import csv
import io
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from backend.endpoints import Endpoint
from backend.errors import InvalidInput, StudioError
from backend.progress import Fetching, Progress, Queued, Running, Submitted, Uploading, Waiting
from backend.runs import whole_numbers
from backend.schema import GenerationResult

EMPTY_BATCH = (
    "There are no prompts in the batch: write one prompt per line, or give a CSV "
    "with a prompt column. Nothing was sent."
)
MAX_PROMPT_FILE_BYTES = 1024 * 1024
_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}

ItemState = Literal["waiting", "sending", "queued", "running", "done", "failed", "stopped"]


def batch_values(
    text: str, base: Mapping[str, Any], endpoint: Endpoint, *, max_items: int
) -> list[tuple[int, dict[str, Any]]]:
    """(line number, the values of one run) for each prompt in `text`; `base`
    holds the current parameters. Raises InvalidInput."""
    text = (text or "").lstrip("\ufeff")
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    header = [cell.strip().lower() for cell in next(csv.reader([first]), [])]
    items = _csv_items(text, header, endpoint) if "prompt" in header else _line_items(lines)
    if not items:
        raise InvalidInput(EMPTY_BATCH)
    if len(items) > max_items:
        raise InvalidInput(
            f"The batch has {len(items)} prompts; this app runs at most {max_items} at once. "
            "Split it into smaller batches."
        )
    return [(number, {**base, **overrides}) for number, overrides in items]


def _line_items(lines: list[str]) -> list[tuple[int, dict[str, Any]]]:
    return [
        (number, {"prompt": line.strip()})
        for number, line in enumerate(lines, start=1)
        if line.strip()
    ]


def _csv_items(
    text: str, header: list[str], endpoint: Endpoint
) -> list[tuple[int, dict[str, Any]]]:
    known = set(endpoint.parameter_names)
    unknown = [name for name in header if name and name != "prompt" and name not in known]
    if unknown:
        names = ", ".join(endpoint.parameter_names)
        raise InvalidInput(
            f"The CSV has a column named {unknown[0]!r}, which is not a parameter: use "
            f"prompt and any of {names}. Nothing was sent."
        )
    reader = csv.reader(io.StringIO(text.strip("\n")))
    next(reader)  # the header
    items = []
    for row in reader:
        number = reader.line_num
        cells = {name: cell.strip() for name, cell in zip(header, row, strict=False) if name}
        prompt = cells.pop("prompt", "")
        if not prompt:
            continue
        overrides: dict[str, Any] = {"prompt": prompt}
        for name, cell in cells.items():
            if cell:
                overrides[name] = _typed(endpoint, name, cell)
        items.append((number, overrides))
    return items


def _typed(endpoint: Endpoint, name: str, cell: str) -> Any:
    """A CSV cell as the field's type; left as text (for the model to refuse in its
    own sentence) when it is not one."""
    annotation = endpoint.model.model_fields[name].annotation
    if annotation is bool:
        lowered = cell.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else cell
    if annotation is int or "int" in str(annotation):
        try:
            return int(cell)
        except ValueError:
            return cell
    return cell


def batch_jobs(
    text: str, base: Mapping[str, Any], endpoint: Endpoint, *, max_items: int
) -> list[Any]:
    """Every run of the batch, checked before any is sent. Raises InvalidInput
    naming the line of the first mistake."""
    jobs = []
    for number, values in batch_values(text, base, endpoint, max_items=max_items):
        try:
            jobs.append(endpoint.model.parse(**whole_numbers(endpoint, values)))
        except InvalidInput as exc:
            raise InvalidInput(f"Line {number}: {exc.message} Nothing was sent.") from None
    return jobs


def read_prompt_file(path: str) -> str:
    """The text of an uploaded prompt list or CSV. Raises InvalidInput."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_PROMPT_FILE_BYTES:
            raise InvalidInput("That file is over 1 MB: a prompt list is plain text or a CSV.")
        data = file.read_bytes()
    except OSError:
        raise InvalidInput("That file could not be read; upload it again.") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidInput(
            "That file is not UTF-8 text: give a plain-text prompt list or a CSV."
        ) from None


@dataclass
class BatchItem:
    index: int
    prompt: str
    state: ItemState = "waiting"
    run_id: str = ""
    result: GenerationResult | None = None
    error: str = ""
    last: Progress | None = None  # its latest progress event

    def record(self) -> dict[str, Any]:
        """What the API returns for this prompt."""
        if self.result is not None:
            record = self.result.record()
            return {"prompt": self.prompt, "status": self.state, **record}
        return {"prompt": self.prompt, "status": self.state, "error": self.error}


@dataclass
class Batch:
    """A batch as it runs: one item per prompt, in the order given."""

    items: list[BatchItem]
    batch_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    started: float = field(default_factory=time.monotonic)
    stopped: bool = False

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def done(self) -> bool:
        return all(item.state in ("done", "failed", "stopped") for item in self.items)

    def count(self, state: ItemState) -> int:
        return sum(item.state == state for item in self.items)

    def images(self) -> list[tuple[str, str]]:
        """Every image so far, in the batch's order, captioned with its prompt."""
        return [
            (image.path, f"{item.index + 1}. {item.prompt[:60]}")
            for item in self.items
            if item.result is not None
            for image in item.result.images
        ]

    def records(self) -> list[dict[str, Any]]:
        return [item.record() for item in self.items]


@dataclass(eq=False)
class LiveBatch:
    """A batch under way, in a task of its own (`RunService._drive_batch`). A page's
    batch belongs to its browser: it goes on when the page goes, and the browser's
    next page follows it and can stop it."""

    batch: Batch
    browser_id: str
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # its Stop button's
    task: asyncio.Task[None] | None = None


def state_of(event: Progress) -> ItemState:
    """An item's state from its run's latest event."""
    if isinstance(event, Waiting | Uploading):
        return "waiting" if isinstance(event, Waiting) else "sending"
    if isinstance(event, Submitted | Queued):
        return "queued"
    if isinstance(event, Running | Fetching):
        return "running"
    return "done"


def failed(item: BatchItem, exc: StudioError, *, stopped: bool) -> None:
    item.state = "stopped" if stopped else "failed"
    item.error = exc.message
