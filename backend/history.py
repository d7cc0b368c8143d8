"""Every run, kept in the app's SQLite database (tables `runs` and `run_files`).

A run is recorded when it starts (before anything is sent), with its request id
once fal gives one, and its status at the end. Its files follow a write-ahead
order, so that the outputs folder and the database always agree:
1. the file rows are recorded with the paths the files will have (status "saving");
2. the files are written;
3. the status becomes "finished".
A crash leaves a run "running" or "saving": `recover()`, at start-up, marks it
"interrupted" (its fal request id kept, so its result can be fetched again) and
removes whatever of its files was written. So no row points at a missing file
and no file is left without its row.

Entries hold what is needed to show a run again and to repeat it: the prompt,
the controls' values (never images, never a key), the files, what it cost and
how long it took. Browsers see only their own runs; `browser_id=None` reads all
(the local "All runs" view).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from PIL import Image

from backend.database import Database
from backend.metadata import is_demo, planned_outputs, sidecar_of_output, write_outputs
from backend.pricing import format_usd
from backend.schema import GenerationResult

_CAPTION_PROMPT_CHARS = 40

Status = Literal["running", "saving", "finished", "failed", "stopped", "interrupted"]
UNFINISHED: tuple[Status, ...] = ("running", "saving")


@dataclass(frozen=True)
class HistoryFile:
    path: str  # the kept copy on this machine
    fal_url: str | None  # where fal served it (None for inline results and the demo)
    # fal's file as downloaded, byte for byte, in Gradio's upload folder (temporary:
    # it may be gone after a restart; the kept copy lasts)
    download: str | None = None


@dataclass(frozen=True)
class HistoryEntry:
    entry_id: str
    tab: str  # the endpoint's tab (backend.endpoints)
    endpoint: str
    prompt: str
    parameters: dict[str, Any]  # the controls' values: no images, no key
    files: tuple[HistoryFile, ...]
    cost_usd: float
    seconds: float
    request_id: str
    created: float  # time.time()
    demo: bool
    status: Status = "finished"
    key_source: str = ""
    batch_id: str | None = None
    error: str = ""

    @property
    def image_paths(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files)

    @property
    def can_fetch(self) -> bool:
        """An interrupted run whose result fal may still hold."""
        return self.status == "interrupted" and bool(self.request_id) and not self.demo

    def caption(self) -> str:
        """One line for a list of runs, e.g. "a red fox in snow… · $0.13 · 14.2 s"."""
        price = "demo" if self.demo else format_usd(self.cost_usd)
        # The runs of one batch (or one comparison) share a mark: they read as a group.
        batch = ""
        if self.batch_id:
            compared = self.batch_id.startswith(COMPARISON_GROUP)
            mark = self.batch_id.removeprefix(COMPARISON_GROUP)[:4]
            batch = f"▦ {'compare' if compared else 'batch'} {mark} · "
        if self.status == "finished":
            return f"{batch}{_shorten(self.prompt)} · {price} · {self.seconds:.1f} s"
        return f"{batch}{_shorten(self.prompt)} · {price} · {self.status}"


# The group id of a comparison's runs starts with this; a batch's is a bare uuid hex.
COMPARISON_GROUP = "compare-"


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


@dataclass(frozen=True)
class NewRun:
    """A run as it starts: what was asked, by which browser, at what estimated cost."""

    tab: str
    endpoint: str
    prompt: str
    parameters: dict[str, Any]
    cost_usd: float
    key_source: str
    browser_id: str = ""  # "" for API callers
    batch_id: str | None = None
    demo: bool = False
    run_id: str = ""

    def with_id(self) -> NewRun:
        return self if self.run_id else replace(self, run_id=uuid.uuid4().hex)


@dataclass(frozen=True)
class Totals:
    """What a browser's runs cost: all of them, and today's (UTC), estimated."""

    session_usd: float
    today_usd: float
    runs: int  # finished ones (those with images to show)


class History:
    """The runs table, read and written off the event loop."""

    def __init__(self, database: Database, kept_dir: Path | None) -> None:
        self._database = database
        # Where a finished run's images are kept; None keeps the downloaded copies.
        self.kept_dir = kept_dir.resolve() if kept_dir is not None else None

    # -- writing -----------------------------------------------------------------

    async def start(self, run: NewRun) -> str:
        """Record a run about to be sent; returns its id."""
        run = run.with_id()

        def insert(connection: sqlite3.Connection) -> None:
            connection.execute(
                "INSERT INTO runs (id, browser_id, batch_id, tab, endpoint, prompt, parameters,"
                " key_source, cost_usd, demo, status, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'running', ?)",
                (
                    run.run_id,
                    run.browser_id,
                    run.batch_id,
                    run.tab,
                    run.endpoint,
                    run.prompt,
                    json.dumps(run.parameters, ensure_ascii=False),
                    run.key_source,
                    run.cost_usd,
                    int(run.demo),
                    time.time(),
                ),
            )

        await self._database.run(insert)
        return run.run_id

    async def submitted(self, run_id: str, request_id: str) -> None:
        """fal took the request: its id is what a later fetch needs."""
        await self._database.run(
            lambda c: c.execute("UPDATE runs SET request_id = ? WHERE id = ?", (request_id, run_id))
        )

    async def finish(self, run_id: str, result: GenerationResult) -> HistoryEntry | None:
        """The run's images kept, then the run marked finished (in that order)."""
        demo = is_demo(result)
        kept = self.kept_dir
        if demo or kept is None:  # placeholders, or no folder: keep the downloads
            paths = [Path(image.path) for image in result.images]
        else:
            paths = planned_outputs(result, kept, run_id[:8])
        files = [
            (number, str(path), image.source_url, image.path)
            for number, (path, image) in enumerate(zip(paths, result.images, strict=True))
        ]
        timings = result.timings
        seconds = timings.total_s if timings else 0.0

        def saving(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE runs SET status = 'saving', request_id = ?, seconds = ?, timings = ?"
                " WHERE id = ?",
                (
                    result.request_id,
                    seconds,
                    json.dumps(timings.__dict__) if timings else None,
                    run_id,
                ),
            )
            connection.execute("DELETE FROM run_files WHERE run_id = ?", (run_id,))
            connection.executemany(
                "INSERT INTO run_files (run_id, number, path, fal_url, download_path)"
                " VALUES (?, ?, ?, ?, ?)",
                [(run_id, *row) for row in files],
            )

        await self._database.run(saving)
        if not demo and kept is not None:
            await asyncio.to_thread(write_outputs, result, paths)
        await self.end(run_id, "finished")
        return await self.get(None, run_id)

    async def end(self, run_id: str, status: Status, error: str = "") -> None:
        def update(connection: sqlite3.Connection) -> None:
            connection.execute(
                "UPDATE runs SET status = ?, error = ?, ended = ? WHERE id = ?",
                (status, error, time.time(), run_id),
            )

        await self._database.run(update)

    async def forget(self, run_id: str) -> None:
        """A run that never reached fal, whose page went away: no trace of it."""
        await self._database.run(lambda c: _delete_rows(c, run_id))

    async def delete(self, browser_id: str | None, run_id: str) -> bool:
        """Delete one run of this browser with its kept files; False if there is none."""
        entry = await self.get(browser_id, run_id)
        if entry is None or entry.status in UNFINISHED:
            return False  # (a run under way is stopped first, then deleted)
        # Rows first, then files: a crash in between leaves a stray file in the
        # outputs folder, never a row pointing at nothing.
        await self._database.run(lambda c: _delete_rows(c, run_id))
        if not entry.demo and self.kept_dir is not None:
            await asyncio.to_thread(_remove_files, [Path(f.path) for f in entry.files])
        return True

    # -- reading -----------------------------------------------------------------

    async def entries(
        self,
        browser_id: str | None,
        *,
        search: str = "",
        tab: str = "",
        limit: int = 200,
    ) -> list[HistoryEntry]:
        """Newest first: this browser's runs (all browsers' for None), filtered."""
        clauses, values = [], []
        if browser_id is not None:
            clauses.append("browser_id = ?")
            values.append(browser_id)
        if search.strip():
            clauses.append("prompt LIKE ? ESCAPE '\\'")
            values.append(f"%{_like(search.strip())}%")
        if tab:
            clauses.append("tab = ?")
            values.append(tab)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT * FROM runs {where} ORDER BY created DESC, rowid DESC LIMIT ?"
        return await self._database.run(lambda c: _read(c, query, [*values, limit]))

    async def get(self, browser_id: str | None, run_id: str) -> HistoryEntry | None:
        """One run of this browser (any browser's for None)."""
        query = "SELECT * FROM runs WHERE id = ?"
        values: list[Any] = [run_id]
        if browser_id is not None:
            query += " AND browser_id = ?"
            values.append(browser_id)
        found = await self._database.run(lambda c: _read(c, query, values))
        return found[0] if found else None

    async def file_of(self, browser_id: str, request_id: str, index: int) -> str | None:
        """The kept copy of image `index` of this browser's run `request_id`."""

        def read(connection: sqlite3.Connection) -> str | None:
            row = connection.execute(
                "SELECT f.path, f.download_path FROM run_files f JOIN runs r ON r.id = f.run_id"
                " WHERE r.browser_id = ? AND r.request_id = ? AND f.number = ?",
                (browser_id, request_id, index),
            ).fetchone()
            if row is None:
                return None
            # fal's file byte for byte while it is there (in Gradio's upload folder,
            # served as it is), else the kept copy.
            return str(row[1] if row[1] and Path(row[1]).is_file() else row[0])

        return await self._database.run(read)

    async def fal_urls(self, browser_id: str, paths: Sequence[str]) -> dict[str, str]:
        """Of `paths`, this browser's kept copies that fal also served, with fal's URL."""
        wanted = list(dict.fromkeys(paths))

        def read(connection: sqlite3.Connection) -> dict[str, str]:
            found: dict[str, str] = {}
            for path in wanted:
                row = connection.execute(
                    "SELECT f.fal_url FROM run_files f JOIN runs r ON r.id = f.run_id"
                    " WHERE r.browser_id = ? AND (f.path = ? OR f.download_path = ?)"
                    " AND f.fal_url IS NOT NULL",
                    (browser_id, path, path),
                ).fetchone()
                if row:
                    found[path] = str(row[0])
            return found

        return await self._database.run(read)

    async def totals(self, browser_id: str | None) -> Totals:
        """What this browser's runs cost (estimated; demo runs and runs that never
        reached fal cost nothing), in all and today (UTC)."""
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        since = midnight.timestamp()
        where = "browser_id = ?" if browser_id is not None else "1"
        args = [browser_id] if browser_id is not None else []

        def read(connection: sqlite3.Connection) -> Totals:
            paid = "demo = 0 AND status = 'finished'"
            row = connection.execute(
                f"SELECT COALESCE(SUM(CASE WHEN {paid} THEN cost_usd END), 0),"
                f" COALESCE(SUM(CASE WHEN {paid} AND created >= ? THEN cost_usd END), 0),"
                f" COUNT(CASE WHEN status = 'finished' THEN 1 END) FROM runs WHERE {where}",
                [since, *args],
            ).fetchone()
            return Totals(float(row[0]), float(row[1]), int(row[2]))

        return await self._database.run(read)

    # -- start-up ------------------------------------------------------------------

    def recover(self) -> int:
        """Mark runs a crash left unfinished as interrupted, remove what of their files
        was written, and drop rows whose file is gone. Returns how many were
        interrupted. Runs once, before the app serves anyone."""

        def work(connection: sqlite3.Connection) -> tuple[int, list[Path]]:
            placeholders = ",".join("?" * len(UNFINISHED))
            stale = [
                row[0]
                for row in connection.execute(
                    f"SELECT id FROM runs WHERE status IN ({placeholders})", UNFINISHED
                )
            ]
            partial = [
                Path(row[0])
                for run_id in stale
                for row in connection.execute(
                    "SELECT path FROM run_files f JOIN runs r ON r.id = f.run_id"
                    " WHERE run_id = ? AND r.demo = 0",
                    (run_id,),
                )
            ]
            for run_id in stale:
                connection.execute("DELETE FROM run_files WHERE run_id = ?", (run_id,))
                connection.execute(
                    "UPDATE runs SET status = 'interrupted', ended = ?,"
                    " error = 'The app stopped while this run was under way.' WHERE id = ?",
                    (time.time(), run_id),
                )
            gone = [
                (run_id, number)
                for run_id, number, path in connection.execute(
                    "SELECT run_id, number, path FROM run_files"
                )
                if not Path(path).is_file()
            ]
            connection.executemany("DELETE FROM run_files WHERE run_id = ? AND number = ?", gone)
            return len(stale), partial

        count, partial = self._database.run_now(work)
        if self.kept_dir is not None:
            _remove_files(partial)
        return count


THUMBNAIL_PX = 320


def thumbnail(path: str, folder: Path) -> str | None:
    """A small WebP of the image at `path`, made once in `folder`; None if it cannot be
    read. The History tab shows these: a kept image outside Gradio's upload folder
    would be hashed and copied whole on every display (ARCHITECTURE.md, Gradio 6)."""
    source = Path(path)
    digest = hashlib.sha256(str(source.resolve()).encode()).hexdigest()[:16]
    target = folder / f"{source.stem[:40]}-{digest}.webp"
    if target.is_file():
        return str(target)
    try:
        with Image.open(source) as image:
            image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
            folder.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
            image.save(partial, "WEBP", quality=80)
        partial.replace(target)  # whole or absent: a concurrent display never sees half
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    return str(target)


def _delete_rows(connection: sqlite3.Connection, run_id: str) -> None:
    connection.execute("DELETE FROM run_files WHERE run_id = ?", (run_id,))
    connection.execute("DELETE FROM runs WHERE id = ?", (run_id,))


def _remove_files(paths: Sequence[Path]) -> None:
    for path in paths:
        for file in (path, sidecar_of_output(path)):
            file.unlink(missing_ok=True)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _read(connection: sqlite3.Connection, query: str, values: Sequence[Any]) -> list[HistoryEntry]:
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute(query, values).fetchall()
        entries = []
        for row in rows:
            files = tuple(
                HistoryFile(path, url, download)
                for path, url, download in connection.execute(
                    "SELECT path, fal_url, download_path FROM run_files"
                    " WHERE run_id = ? ORDER BY number",
                    (row["id"],),
                )
            )
            entries.append(_entry(row, files))
        return entries
    finally:
        connection.row_factory = None


def _entry(row: sqlite3.Row, files: tuple[HistoryFile, ...]) -> HistoryEntry:
    return HistoryEntry(
        entry_id=row["id"],
        tab=row["tab"],
        endpoint=row["endpoint"],
        prompt=row["prompt"],
        parameters=json.loads(row["parameters"]),
        files=files,
        cost_usd=float(row["cost_usd"]),
        seconds=float(row["seconds"] or 0.0),
        request_id=row["request_id"] or "",
        created=float(row["created"]),
        demo=bool(row["demo"]),
        status=row["status"],
        key_source=row["key_source"],
        batch_id=row["batch_id"],
        error=row["error"] or "",
    )
