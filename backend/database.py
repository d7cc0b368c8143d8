"""The app's embedded database: one SQLite file, versioned, written off the event loop.

`Database` opens `<data folder>/studio.sqlite3` in write-ahead-log mode (readers
and one writer at once) and brings its schema up to date, one numbered migration
at a time (`PRAGMA user_version` says how far a file has come). Every statement
runs in a worker thread, one at a time behind a lock, so the event loop never
waits on the disk.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, TypeVar

try:
    import fcntl
except ImportError:  # Windows: no flock (see _Claim)
    fcntl = None  # type: ignore[assignment]

T = TypeVar("T")

FILE_NAME = "studio.sqlite3"
LOCK_NAME = "studio.lock"

# Migration N takes a file from version N-1 to N. Append only: never edit one
# that has shipped, since files out there are already past it.
MIGRATIONS: Sequence[str] = (
    # 1: what each visitor spent on the host's key (backend/budget.py)
    """
    CREATE TABLE host_key_spend (
        id INTEGER PRIMARY KEY,
        visitor TEXT NOT NULL,
        day TEXT NOT NULL,            -- UTC date, YYYY-MM-DD
        usd REAL NOT NULL,
        refunded INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
    );
    CREATE INDEX host_key_spend_by_day ON host_key_spend (visitor, day);
    """,
    # 2: every run and its kept files (backend/history.py)
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        browser_id TEXT NOT NULL,     -- '' for API callers
        batch_id TEXT,                -- the batch it belongs to, if any
        tab TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        prompt TEXT NOT NULL,
        parameters TEXT NOT NULL,     -- JSON: the controls' values (no images, no key)
        key_source TEXT NOT NULL,     -- whose key ("your key", "the host's key", "demo")
        request_id TEXT,              -- fal's, once it took the request
        cost_usd REAL NOT NULL,       -- the estimate
        demo INTEGER NOT NULL DEFAULT 0,
        status TEXT NOT NULL,         -- running, saving, finished, failed, stopped, interrupted
        error TEXT,
        seconds REAL,
        timings TEXT,                 -- JSON
        created REAL NOT NULL,        -- Unix time
        ended REAL
    );
    CREATE INDEX runs_by_browser ON runs (browser_id, created);
    CREATE INDEX runs_by_status ON runs (status);
    CREATE TABLE run_files (
        run_id TEXT NOT NULL,
        number INTEGER NOT NULL,
        path TEXT NOT NULL,           -- the kept copy
        fal_url TEXT,
        download_path TEXT,           -- fal's file as downloaded, byte for byte (temporary)
        PRIMARY KEY (run_id, number)
    );
    -- values the app makes once and keeps (the secret of the browser's history id)
    CREATE TABLE app_state (name TEXT PRIMARY KEY, value TEXT NOT NULL);
    """,
)


class Database:
    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / FILE_NAME
        self._claim = _Claim(folder / LOCK_NAME)
        # One connection, used by one thread at a time (the lock): SQLite's own
        # locking then only ever sees this process as one writer.
        self._connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._connection.execute("PRAGMA journal_mode=WAL")
            self._connection.execute("PRAGMA busy_timeout=5000")
            _migrate(self._connection)

    @property
    def alone(self) -> bool:
        """No other app process is using this folder: runs the database says are under
        way were left by a process that stopped (`History.recover` may mark them)."""
        return self._claim.alone

    def started(self) -> None:
        """Start-up is over: from now on, a process starting on this folder sees this one."""
        self._claim.share()

    @property
    def version(self) -> int:
        with self._lock:
            return int(self._connection.execute("PRAGMA user_version").fetchone()[0])

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` in a worker thread, as one transaction."""
        return await asyncio.to_thread(self._transaction, work)

    def kept_secret(self, name: str) -> str:
        """A random secret made the first time it is asked for, the same ever after."""

        def read_or_make(connection: sqlite3.Connection) -> str:
            connection.execute(
                "INSERT OR IGNORE INTO app_state (name, value) VALUES (?, ?)",
                (name, secrets.token_urlsafe(24)),
            )
            row = connection.execute("SELECT value FROM app_state WHERE name = ?", (name,))
            return str(row.fetchone()[0])

        return self._transaction(read_or_make)

    def run_now(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work(connection)` as one transaction, in this thread: for start-up only,
        before the app serves anyone."""
        return self._transaction(work)

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            connection = self._connection
            # IMMEDIATE: a read-then-write (the budget's check and charge) cannot
            # interleave with another writer.
            connection.execute("BEGIN IMMEDIATE")
            try:
                result = work(connection)
            except BaseException:
                connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
            return result

    def close(self) -> None:
        with self._lock:
            self._connection.close()
        self._claim.release()


class _Claim:
    """Every app process using a data folder holds a lock on its lock file while it
    runs (flock, released by the system when the process ends, even by SIGKILL).

    A starting process tries to take it exclusively: if it can, no other app
    process is using the folder (`alone`), and holds it so until `share()`, after
    its start-up recovery. Otherwise another process is running there (two
    `python app.py` in one folder: Gradio takes the next port), and this one leaves
    that process's runs alone. Either way it then holds the lock shared. Without
    flock (Windows, or a file system without locks) every start counts as alone, as
    if each folder had one process.
    """

    def __init__(self, path: Path) -> None:
        self.alone = True
        self._file: IO[str] | None = None
        if fcntl is None:
            return
        try:
            self._file = path.open("a")
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.alone = False
            self._share_within(10.0)
        except OSError:
            # A file system without locks (some network mounts): as without flock.
            self.release()

    def share(self) -> None:
        if fcntl is not None and self._file is not None and self.alone:
            try:
                fcntl.flock(self._file, fcntl.LOCK_SH)
            except OSError:
                self.release()

    def _share_within(self, seconds: float) -> None:
        # Another process may hold it exclusively for its start-up: wait that out,
        # but never hang a start on it.
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(self._file, fcntl.LOCK_SH | fcntl.LOCK_NB)  # type: ignore[arg-type]
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.05)
            except OSError:
                return

    def release(self) -> None:
        if self._file is not None:
            self._file.close()  # closing the file lets the lock go
            self._file = None


def _migrate(connection: sqlite3.Connection) -> None:
    version = int(connection.execute("PRAGMA user_version").fetchone()[0])
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        connection.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")
