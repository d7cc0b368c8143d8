"""Fair shares of a shared server: at most N jobs running at once per visitor.

A visitor is identified by their network address (see `visitor_id`). The
count lives in memory: it guards slots of this process, nothing more.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from threading import Lock

from backend.errors import StudioError


class TooManyJobs(StudioError):
    default_message = (
        "You already have the most requests running at once that this app allows. "
        "Wait for one to finish (or stop one), then try again."
    )


class VisitorLimiter:
    """Counts running jobs per visitor; `limit` 0 means no limit."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._running: dict[str, int] = {}
        self._lock = Lock()  # handlers may run on threads as well as the event loop

    @contextmanager
    def slot(self, visitor: str) -> Iterator[None]:
        """Hold one of the visitor's slots for the duration of a job."""
        with self._lock:
            count = self._running.get(visitor, 0)
            if self.limit and count >= self.limit:
                plural = "request" if self.limit == 1 else "requests"
                raise TooManyJobs(
                    f"You already have {count} {plural} running, the most this app allows "
                    "at once. Wait for one to finish (or stop one), then try again."
                )
            self._running[visitor] = count + 1
        try:
            yield
        finally:
            with self._lock:
                left = self._running[visitor] - 1
                if left:
                    self._running[visitor] = left
                else:
                    del self._running[visitor]

    def running(self, visitor: str) -> int:
        with self._lock:
            return self._running.get(visitor, 0)


def visitor_id(client_host: str | None, headers: Mapping[str, str]) -> str:
    """The address a job is counted against.

    A client that reached us from a private or loopback address came through a
    proxy (a Hugging Face Space, a local reverse proxy): the proxy's
    `X-Forwarded-For` names the real visitor. A client connecting from a public
    address is taken as it is, so it cannot pick its identity with a header.
    """
    host = client_host or "unknown"
    forwarded = headers.get("x-forwarded-for", "")
    if forwarded and _is_internal(host):
        first = forwarded.split(",")[0].strip()
        if first:
            return first
    return host


def _is_internal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host in ("localhost", "testclient", "unknown")
    return address.is_private or address.is_loopback
