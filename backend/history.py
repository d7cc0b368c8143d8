"""Each browser's recent runs, kept in server memory.

Entries hold what is needed to show a run again and to repeat it: the prompt,
the controls' values (never images, never a key), the local image paths, what
it cost and how long it took. Memory is bounded twice: a cap per browser (the
oldest entry goes) and a cap on browsers (the least recently seen goes). A
restart forgets everything; that is the point of keeping it in memory.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any

from backend.endpoints import ENDPOINTS, Registry
from backend.metadata import is_demo
from backend.pricing import format_usd
from backend.schema import GenerationResult

_CAPTION_PROMPT_CHARS = 40


@dataclass(frozen=True)
class HistoryEntry:
    entry_id: str
    tab: str  # the endpoint's tab (backend.endpoints)
    prompt: str
    parameters: dict[str, Any]  # the controls' values: no images, no key
    image_paths: tuple[str, ...]
    cost_usd: float
    seconds: float
    request_id: str
    created: float  # time.time()
    demo: bool
    # fal's URL of each image (None for sync_mode data URIs): Send to edit passes
    # it back to fal instead of uploading the file again.
    image_urls: tuple[str | None, ...] = ()

    def caption(self) -> str:
        """One line for a list of runs, e.g. "a red fox in snow… · $0.13 · 14.2 s"."""
        price = "demo" if self.demo else format_usd(self.cost_usd)
        return f"{_shorten(self.prompt)} · {price} · {self.seconds:.1f} s"


def _shorten(prompt: str) -> str:
    """The prompt on one line, cut at a word boundary when long."""
    text = " ".join(prompt.split())
    if len(text) <= _CAPTION_PROMPT_CHARS:
        return text
    cut = text[:_CAPTION_PROMPT_CHARS]
    # Cut at the last space unless that would leave very little.
    if " " in cut[_CAPTION_PROMPT_CHARS // 2 :]:
        cut = cut.rsplit(" ", 1)[0]
    return cut.rstrip(" ,;:.") + "…"


def entry_from_result(
    result: GenerationResult, tab: str, cost_usd: float, endpoints: Registry = ENDPOINTS
) -> HistoryEntry:
    """A history entry for a finished run; `cost_usd` is the estimate shown for it.

    It keeps the values of the tab's controls (the endpoint's parameters, in the
    registry), so a click on it restores exactly those."""
    fields = ("prompt", *endpoints.by_tab(tab).parameter_names)
    arguments = result.arguments
    return HistoryEntry(
        entry_id=uuid.uuid4().hex,
        tab=tab,
        prompt=str(arguments.get("prompt", "")),
        parameters={name: arguments[name] for name in fields if name in arguments},
        image_paths=tuple(image.path for image in result.images),
        cost_usd=cost_usd,
        seconds=result.timings.total_s if result.timings else 0.0,
        request_id=result.request_id,
        created=time.time(),
        demo=is_demo(result),
        image_urls=tuple(image.source_url for image in result.images),
    )


@dataclass
class _Browser:
    entries: deque[HistoryEntry]
    # Kept apart from the entries: the session total survives the per-browser cap.
    spent_usd: float = 0.0
    ids: dict[str, HistoryEntry] = field(default_factory=dict)


class HistoryStore:
    """Run history per browser id; safe to use from Gradio's worker threads."""

    def __init__(self, per_browser: int = 50, browsers: int = 1000) -> None:
        if per_browser < 1 or browsers < 1:
            raise ValueError("per_browser and browsers must be at least 1")
        self._per_browser = per_browser
        self._max_browsers = browsers
        self._browsers: OrderedDict[str, _Browser] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, browser_id: str, entry: HistoryEntry) -> None:
        """Record `entry` as the newest of `browser_id`; the oldest beyond the cap goes.

        Adding the same entry twice keeps one (and counts its cost once).
        """
        with self._lock:
            browser = self._created(browser_id)
            if entry.entry_id in browser.ids:
                return
            if len(browser.entries) == self._per_browser:
                dropped = browser.entries.pop()
                del browser.ids[dropped.entry_id]
            browser.entries.appendleft(entry)
            browser.ids[entry.entry_id] = entry
            if not entry.demo:
                browser.spent_usd += entry.cost_usd

    def entries(self, browser_id: str) -> list[HistoryEntry]:
        """Newest first; [] for a browser never seen (or forgotten)."""
        with self._lock:
            browser = self._existing(browser_id)
            return list(browser.entries) if browser else []

    def get(self, browser_id: str, entry_id: str) -> HistoryEntry | None:
        """One entry of this browser; another browser's entry id finds nothing."""
        with self._lock:
            browser = self._existing(browser_id)
            return browser.ids.get(entry_id) if browser else None

    def total_cost(self, browser_id: str) -> float:
        """What this browser's runs cost so far (estimated; demo runs cost nothing)."""
        with self._lock:
            browser = self._existing(browser_id)
            return browser.spent_usd if browser else 0.0

    # Both helpers mark the browser as most recently used; call them with the lock held.

    def _existing(self, browser_id: str) -> _Browser | None:
        browser = self._browsers.get(browser_id)
        if browser is not None:
            self._browsers.move_to_end(browser_id)
        return browser

    def _created(self, browser_id: str) -> _Browser:
        browser = self._existing(browser_id)
        if browser is None:
            browser = self._browsers[browser_id] = _Browser(entries=deque())
            if len(self._browsers) > self._max_browsers:
                self._browsers.popitem(last=False)  # the least recently seen browser
        return browser
