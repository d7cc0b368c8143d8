"""What a run is made of: who asks, what runs it, and what the page is told.

The plain types and small rules `backend/service.py` works with, kept apart so
that the run service itself holds only the run.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from PIL import Image

from backend.client import Job
from backend.edits import EditDraft
from backend.endpoints import Endpoint
from backend.errors import InvalidInput, StudioError
from backend.history import NewRun
from backend.keys import KeyChoice
from backend.progress import Finished, Progress
from backend.schema import GenerationResult, TextToImageRequest
from backend.stopping import closing

MAX_COMPARISONS = 9
# The key a demo run "uses": nothing is sent anywhere, so there is no key.
DEMO_KEY = KeyChoice("", "demo")


class ImageGenerator(Protocol):
    """What runs a job: `backend.client.ImageClient` (fal) or `backend.demo.DemoClient`."""

    def stream(self, job: Job, key: KeyChoice) -> AsyncIterator[Progress]: ...


@dataclass(frozen=True)
class Caller:
    """Who asks for a run."""

    visitor: str  # whose share of capacity and budget it takes (RunService.caller)
    session: str | None = None  # the page's session, whose Stop button can end it
    browser_id: str = ""  # whose history it joins; "" records none (API callers)
    fal_key: str = field(default="", repr=False)  # their own key, as typed
    batch_id: str | None = None  # the batch a run belongs to, if any


@dataclass(frozen=True)
class KeyStatus:
    """Which key the next request would use (never the key itself)."""

    kind: Literal["yours", "host", "required", "missing", "invalid"]
    demo: bool = False  # with no key, runs are demo runs
    problem: str = ""  # for "invalid": what is wrong with the key as typed


@dataclass(frozen=True)
class MaskPreview:
    image: Image.Image  # the mask drawn over the main image
    edit_fraction: float


@dataclass
class Comparison:
    """A Compare run as it goes: which settings finished, and how."""

    jobs: list[TextToImageRequest]
    # index -> (result, seconds it took), or the error it ended with
    done: dict[int, tuple[GenerationResult, float] | StudioError] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started


@dataclass(eq=False)
class LiveRun:
    """A run under way, in a task of its own (`RunService._drive`): its events kept
    for whoever follows it (the page that started it, or the same browser's page
    reopened), until it ends."""

    run_id: str
    tab: str
    browser_id: str
    job: Job
    stop: asyncio.Event = field(default_factory=asyncio.Event)  # the Stop button's
    done: asyncio.Event = field(default_factory=asyncio.Event)  # ended, files kept
    reached_fal: bool = False  # fal has the request: the run belongs to the browser
    session: str | None = None  # the page following it, whose Stop button ends it
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None
    _events: list[Progress] = field(default_factory=list)
    _news: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def prompt(self) -> str:
        return job_prompt(self.job)

    @property
    def finished(self) -> bool:
        """Its result was handed out (its files may still be being kept)."""
        return bool(self._events) and isinstance(self._events[-1], Finished)

    def publish(self, event: Progress) -> None:
        self._events.append(event)
        self._wake()

    def end(self, error: BaseException | None) -> None:
        self.error = error
        self.done.set()
        self._wake()

    def _wake(self) -> None:
        # Everyone waiting on the old event wakes; the next wait is on a new one.
        news, self._news = self._news, asyncio.Event()
        news.set()

    async def events(self) -> AsyncIterator[Progress]:
        """Every event so far, then each as it comes; the run's error raised at its end."""
        seen = 0
        while True:
            news = self._news
            if seen < len(self._events):
                batch, seen = self._events[seen:], len(self._events)
                for event in batch:
                    yield event
                continue
            if self.done.is_set():
                if self.error is not None:
                    raise self.error
                return
            await news.wait()


def job_prompt(job: Job) -> str:
    return (job.request if isinstance(job, EditDraft) else job).prompt


def new_run(endpoint: Endpoint, job: Job, key: KeyChoice, caller: Caller, cost: float) -> NewRun:
    """What history records of a run as it starts: the prompt and the controls'
    values (no images, no key: only where the key came from)."""
    request = job.request if isinstance(job, EditDraft) else job
    values = request.model_dump()
    return NewRun(
        tab=endpoint.tab,
        endpoint=endpoint.endpoint_id,
        prompt=request.prompt,
        parameters={name: values[name] for name in endpoint.parameter_names if name in values},
        cost_usd=cost,
        key_source=key.source,
        browser_id=caller.browser_id,
        batch_id=caller.batch_id,
        demo=key.source == DEMO_KEY.source,
    )


def comparison_jobs(
    prompt: str,
    qualities: Sequence[str] | None,
    sizes: Sequence[str] | None,
    **values: Any,
) -> list[TextToImageRequest]:
    """Every quality x size asked for, each checked before any is sent."""
    if not qualities or not sizes:
        raise InvalidInput("Tick at least one quality and one image_size to compare.")
    if len(qualities) * len(sizes) > MAX_COMPARISONS:
        raise InvalidInput(f"Compare at most {MAX_COMPARISONS} settings at once.")
    return [
        TextToImageRequest.parse(
            prompt=prompt, image_size=size, quality=quality, num_images=1, **values
        )
        for size in sizes
        for quality in qualities
    ]


async def finished_result(events: AsyncIterator[Progress]) -> GenerationResult:
    async with closing(events):
        async for event in events:
            if isinstance(event, Finished):
                return event.result
    raise StudioError(detail="a run ended without a result")  # pragma: no cover


def whole_numbers(endpoint: Endpoint, values: Mapping[str, Any]) -> dict[str, Any]:
    """Values for the model, a whole float turned int where the field is an int.

    Sliders and JSON callers send 2.0 for 2; anything else goes through as it is,
    for the request model to refuse with a clear sentence."""
    fields = endpoint.model.model_fields
    return {
        name: int(value)
        if name in fields
        and fields[name].annotation is int
        and isinstance(value, float)
        and value.is_integer()
        else value
        for name, value in values.items()
    }
