"""The recorded runs as a page sees them: its browser's own, or every browser's in
the "All runs" view, which a local app offers and a Space never does.

Reading, deleting and exporting runs, and reading parameters back from a saved
image. Nothing here runs anything at fal (a run fetched again is the run
service's `fetch_again`).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.endpoints import Endpoint, Registry
from backend.errors import InvalidInput
from backend.export import export_runs
from backend.history import History, HistoryEntry, Totals, thumbnail
from backend.inputs import read_file, sidecar_of
from backend.metadata import parameters_for_ui, read_metadata
from backend.settings import Settings
from backend.urls import on_fal_media


class HistoryViews:
    """This browser's runs (or every browser's, where allowed), for the History tab
    and for the forms that reuse a run's images."""

    def __init__(self, history: History, settings: Settings, endpoints: Registry) -> None:
        self.history = history
        self.settings = settings
        self.endpoints = endpoints

    @staticmethod
    def new_browser_id(current: str) -> str:
        """A random id for a browser's history, kept across reloads."""
        return current or uuid.uuid4().hex

    def all_runs_allowed(self) -> bool:
        """The "All runs" view (every browser's runs) is for a local app, never a Space."""
        return not self.settings.space_id

    async def history_of(
        self, browser_id: str | None, *, search: str = "", tab: str = ""
    ) -> tuple[list[HistoryEntry], Totals]:
        """This browser's runs, newest first, filtered, and what its runs cost.
        `None` reads every browser's runs (only where `all_runs_allowed`)."""
        if browser_id is None and not self.all_runs_allowed():
            browser_id = ""
        if browser_id == "":
            return [], Totals(0.0, 0.0, 0)
        entries = await self.history.entries(browser_id, search=search, tab=tab)
        return entries, await self.history.totals(browser_id)

    async def thumbnails(self, entries: Sequence[HistoryEntry]) -> list[str]:
        """A small image for each entry's first image (the image itself if none can be
        made), in Gradio's upload folder, where it is served as it is."""
        folder = self.settings.results_dir / "thumbnails"

        def make() -> list[str]:
            return [thumbnail(e.image_paths[0], folder) or e.image_paths[0] for e in entries]

        return await asyncio.to_thread(make)

    async def result_file(self, browser_id: str, request_id: str, index: int) -> str | None:
        """The kept copy of image `index` of this browser's run `request_id`; None for
        another browser's run or an API caller."""
        if not browser_id or index < 0:
            return None
        return await self.history.file_of(browser_id, request_id, index)

    async def fal_urls_of(self, browser_id: str, paths: Sequence[str]) -> dict[str, str]:
        """Of `paths`, this browser's kept result copies that fal served, with fal's URL
        (what an edit can send instead of uploading the file again)."""
        return await self.history.fal_urls(browser_id, paths) if browser_id else {}

    async def history_entry(self, browser_id: str | None, run_id: str) -> HistoryEntry | None:
        """One run of this browser (any browser's for None, where "All runs" is allowed)."""
        if browser_id is None and not self.all_runs_allowed():
            return None
        return await self.history.get(browser_id, run_id) if run_id else None

    async def delete_run(self, browser_id: str | None, run_id: str) -> bool:
        """Delete one of this browser's runs (any browser's for None, where the
        "All runs" view is allowed) with its kept images; False if there is none."""
        if browser_id is None and not self.all_runs_allowed():
            return False
        return await self.history.delete(browser_id, run_id)

    async def export_runs(self, browser_id: str | None, run_ids: Sequence[str]) -> Path:
        """A zip of these runs of this browser (any browser's for None, where "All
        runs" is allowed): their images and a JSON of their parameters. Raises
        InvalidInput when none of them is there."""
        if browser_id is None and not self.all_runs_allowed():
            browser_id = ""
        entries = [e for e in [await self.history.get(browser_id, i) for i in run_ids] if e]
        if not entries:
            raise InvalidInput("Choose the runs to export first, in the list above the button.")
        return await asyncio.to_thread(export_runs, entries, self.settings.results_dir / "exports")

    async def hosted_copies(self, browser_id: str, paths: Sequence[str]) -> dict[str, str]:
        """Of `paths`, the app's copies of this browser's results on fal's media hosts,
        each with its fal URL (what an edit sends instead of the file)."""
        cdn = self.settings.fal_cdn_url
        known = await self.fal_urls_of(browser_id, paths)
        return {path: url for path, url in known.items() if on_fal_media(url, cdn)}

    async def parameters_from_file(self, path: str) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint and the prompt and parameters saved in an image this app made."""
        data = await asyncio.to_thread(read_file, path)
        sidecar = await asyncio.to_thread(sidecar_of, path)
        tab, values = parameters_for_ui(read_metadata(data, sidecar=sidecar), self.endpoints)
        return self.endpoints.by_tab(tab), values
