"""What a running request reports: a small sum type the UI renders.

`ImageClient.stream` (and the offline demo's) yield these, ending with
`Finished(result)`.
"""

from __future__ import annotations

from dataclasses import dataclass

from backend.schema import GenerationResult


@dataclass(frozen=True)
class Waiting:
    """The app is at capacity: the call waits for a free slot (nothing sent yet)."""

    yours_ahead: int  # this visitor's calls waiting before this one
    running: int  # this visitor's calls running now
    elapsed_s: float


@dataclass(frozen=True)
class Uploading:
    count: int
    elapsed_s: float


@dataclass(frozen=True)
class Submitted:
    request_id: str
    elapsed_s: float


@dataclass(frozen=True)
class Queued:
    request_id: str
    position: int
    elapsed_s: float


@dataclass(frozen=True)
class Running:
    request_id: str
    logs: tuple[str, ...]  # every log line so far
    elapsed_s: float


@dataclass(frozen=True)
class ShownImage:
    """A result that can be shown before the app has its own copy: on fal's media
    hosts, the browser fetches it from there (results in one hop)."""

    url: str
    caption: str


@dataclass(frozen=True)
class Fetching:
    """fal finished; the app is downloading its copies of the results (for history,
    saved outputs, Send to edit). `shown`: those the page may show at once, from
    fal's media hosts (none for sync_mode data URIs, which the app serves)."""

    request_id: str
    count: int
    elapsed_s: float
    shown: tuple[ShownImage, ...] = ()


@dataclass(frozen=True)
class Finished:
    result: GenerationResult


Progress = Waiting | Uploading | Submitted | Queued | Running | Fetching | Finished
