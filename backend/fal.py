"""The app's one door to fal_client: no other module imports it.

What the app uses of fal's client library is here, through its public API
only: a client per key (`Clients`), submit, status with logs, the status
stream (`Submission.statuses`: fal's server-sent events, which fal_client
does not use; read here with httpx-sse over the handle's own HTTP client), the
result, cancel, uploads, data URIs (`encode`), and where uploads go
(`point_uploads_at`). After the submit, a request's HTTP (its status stream,
polls, result and cancel) goes through an httpx client with aiohttp underneath
(httpx-aiohttp), handed to fal_client's public `AsyncRequestHandle(client=...)`:
about half the CPU per request of fal_client's own httpx client
(`python -m benchmarks.http_clients`). An upgrade of fal_client that changes what we rely on
shows up here and in tests/test_fal.py, not all over the app.

What comes out of a call that failed:
- `FalHTTPError`: fal answered with an HTTP error (after fal_client's retries);
- `UnreadableAnswer`: fal answered, but fal_client could not read the answer
  (not JSON, or JSON without the fields it expects);
- `NetworkTrouble`: the answer never arrived whole (after fal_client's retries).
Anything else is a bug, and is let through as it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
import fal_client
import httpx
from httpx_aiohttp import AiohttpTransport
from httpx_sse import EventSource, SSEError

from backend.errors import UnreadableAnswer, from_transport_error

T = TypeVar("T")

# Clients kept per key: reusing one keeps its TLS connections warm; the cap
# bounds memory on a busy public Space with many visitors' keys.
MAX_CACHED_CLIENTS = 256


class FalHTTPError(Exception):
    """fal answered with an HTTP error status, after fal_client's own retries."""

    def __init__(self, status_code: int, detail: Any, error_type: str | None) -> None:
        self.status_code = status_code
        self.detail = detail  # fal's `detail`: a string, or FastAPI's list of {loc, msg, type}
        self.error_type = error_type
        super().__init__(f"HTTP {status_code} ({error_type}): {detail}")


# --- where a request is: fal's three states, as plain values ---------------------------


@dataclass(frozen=True)
class InQueue:
    position: int


@dataclass(frozen=True)
class InProgress:
    logs: tuple[str, ...]  # the message of every log line so far


@dataclass(frozen=True)
class Completed:
    metrics: dict[str, Any]
    error: Any = None  # fal's `error` when it finished with one: mostly text, maybe a list
    error_type: str | None = None


Status = InQueue | InProgress | Completed


class StreamFailed(Exception):
    """The status stream could not be opened, broke, or ended before COMPLETED.

    Not the user's concern: the caller reconnects or falls back to polling."""

    def __init__(self, reason: str, *, unanswered: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.unanswered = unanswered  # no answer at all within the time to open it


# --- clients ----------------------------------------------------------------------------


class Clients:
    """A fal client per key, made on first use and kept, the least recently used
    dropped first beyond `cap`.

    Each key gets its own `fal_client.AsyncClient(key=...)`: fal_client's
    module-level client caches the first key it sees, and visitors bring their own.

    After the submit, every key's requests share one aiohttp session (one pool of
    connections to fal; each request carries its key's header), unless
    `over_aiohttp` is False: then fal_client's own httpx client does it all (the
    benchmark's comparison).
    """

    def __init__(
        self, *, timeout_s: float, cap: int = MAX_CACHED_CLIENTS, over_aiohttp: bool = True
    ) -> None:
        self._timeout_s = timeout_s
        self._cap = cap
        self._over_aiohttp = over_aiohttp
        self._clients: OrderedDict[str, Client] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: AiohttpTransport | None = None

    def for_key(self, key: str) -> Client:
        # fal_client's httpx clients belong to the event loop that first used them.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._clients.clear()
            self._transport = _aiohttp_transport() if self._over_aiohttp else None
        client = self._clients.get(key)
        if client is None:
            client = self._clients[key] = Client(
                key, timeout_s=self._timeout_s, transport=self._transport
            )
            if len(self._clients) > self._cap:
                # Dropping (not closing) is safe: a request still using it holds a reference.
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client

    async def aclose(self) -> None:
        """Close the shared aiohttp session (on the loop that made it)."""
        if self._transport is not None:
            await self._transport.aclose()
            self._transport = None
        self._clients.clear()
        self._loop = None


def _aiohttp_transport() -> AiohttpTransport:
    # No cap on connections: a status stream holds one for a request's whole wait,
    # and the app's own concurrency limit bounds how many run at once (aiohttp's
    # default cap of 100 would hold back the 101st stream). The session is made
    # on the first request, inside the running loop; the TLS context trusts what
    # httpx would (SSL_CERT_FILE, else certifi).
    context = httpx.create_ssl_context()
    return AiohttpTransport(
        client=lambda: aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=context))
    )


class Client:
    """fal for one key: submit a request, upload a file."""

    def __init__(
        self, key: str, *, timeout_s: float, transport: AiohttpTransport | None = None
    ) -> None:
        self._fal = fal_client.AsyncClient(key=key, default_timeout=timeout_s)
        # The key's header on a thin httpx client over the shared transport: it is
        # dropped with this object, with nothing of its own to close.
        self._after_submit = (
            httpx.AsyncClient(
                transport=transport,
                headers={"Authorization": f"Key {key}"},
                timeout=timeout_s,
            )
            if transport is not None
            else None
        )

    async def submit(
        self, endpoint: str, arguments: dict[str, Any], *, start_timeout: float | None = None
    ) -> Submission:
        """Queue a request. `start_timeout`: fal gives it up if it has not started
        within that many seconds (sent as the `X-Fal-Request-Timeout` header), even
        if nobody is left to cancel it."""
        handle = await _answer(
            "submit", self._fal.submit(endpoint, arguments, start_timeout=start_timeout)
        )
        if self._after_submit is not None:
            handle = dataclasses.replace(handle, client=self._after_submit)
        return Submission(handle)

    async def upload(self, data: bytes, content_type: str, file_name: str) -> str:
        """Upload to fal's storage (its CDN, or its REST storage if that fails); the URL."""
        url = await _answer("upload", self._fal.upload(data, content_type, file_name))
        return str(url)


class Submission:
    """A request in fal's queue."""

    def __init__(self, handle: fal_client.AsyncRequestHandle) -> None:
        self._handle = handle
        self.request_id: str = handle.request_id

    async def status(self) -> Status:
        """Where the request is now, with every log line so far."""
        status = await _answer("status", self._handle.status(with_logs=True))
        return _status_of(status)

    async def statuses(
        self, *, with_logs: bool, open_s: float, idle_s: float
    ) -> AsyncGenerator[Status]:
        """fal's status stream: each change of status as it happens, up to COMPLETED.

        One GET of `{status_url}/stream` answered with server-sent events: a
        `data:` status object per change (its `logs` only the lines new since the
        last event: they are added up here, so each status carries every line so
        far, as a poll's does), `:` comments as heartbeat, and the end of the
        stream after COMPLETED (ARCHITECTURE.md, "fal's status stream").

        `open_s`: longest wait for the stream's answer (its headers); `idle_s`:
        longest silence after that (heartbeats included) before the stream counts
        as broken. Raises `StreamFailed` when the stream is refused, breaks, says
        something unreadable or ends before COMPLETED; nothing else of its own.
        """
        handle = self._handle
        logs: list[str] = []
        timeout = httpx.Timeout(idle_s, connect=min(open_s, idle_s))
        try:
            async with contextlib.AsyncExitStack() as opened:
                try:
                    async with asyncio.timeout(open_s):
                        response = await opened.enter_async_context(
                            handle.client.stream(
                                "GET",
                                handle.status_url + "/stream",
                                params={"logs": "1" if with_logs else "0"},
                                headers={
                                    "Accept": "text/event-stream",
                                    "Cache-Control": "no-store",
                                },
                                timeout=timeout,
                            )
                        )
                except TimeoutError:
                    raise StreamFailed(f"not answered in {open_s:g} s", unanswered=True) from None
                if response.status_code != 200:
                    raise StreamFailed(f"refused with HTTP {response.status_code}")
                # Closed explicitly: a suspended reader would keep the connection
                # busy in the pool after the stream is done with.
                async with contextlib.aclosing(EventSource(response).aiter_sse()) as events:
                    async for event in events:
                        if not event.data:
                            continue
                        status = _streamed_status(json.loads(event.data), logs)
                        yield status
                        if isinstance(status, Completed):
                            return
        except (httpx.HTTPError, OSError) as exc:
            raise StreamFailed(f"broke ({type(exc).__name__})") from exc
        except (SSEError, ValueError, KeyError, TypeError, UnreadableAnswer) as exc:
            raise StreamFailed(f"unreadable ({type(exc).__name__})") from exc
        raise StreamFailed("ended before COMPLETED")

    async def result(self) -> Any:
        """The output of a request `status()` has seen completed: one GET.

        fal_client's `handle.get()` first polls the status until it says
        COMPLETED, then GETs the result with its retries (gateway 502-504,
        broken connections) and errors. Here the status was just seen COMPLETED,
        so the handle's `status()` is made to say so without asking: what is left
        of `get()` is that one GET, retries included, at ~50 ms less per request
        and one poll less at fal. tests/test_fal.py fails if `get()` stops
        waiting through `status()`.
        """
        handle = self._handle
        seen = _SeenCompleted(
            **{f.name: getattr(handle, f.name) for f in dataclasses.fields(handle) if f.init}
        )
        return await _answer("result", seen.get())

    async def cancel(self) -> None:
        await _answer("cancel", self._handle.cancel())


class _SeenCompleted(fal_client.AsyncRequestHandle):
    """A handle whose request is known to be COMPLETED: `get()` only fetches the result."""

    async def status(self, *, with_logs: bool = False) -> fal_client.Status:
        return fal_client.Completed(logs=None, metrics={})


def _status_of(status: fal_client.Status) -> Status:
    if isinstance(status, fal_client.Queued):
        if not isinstance(status.position, int):
            raise UnreadableAnswer(detail=f"unreadable answer: queue position {status.position!r}")
        return InQueue(status.position)
    if isinstance(status, fal_client.InProgress):
        return InProgress(_log_lines(status.logs))
    if isinstance(status, fal_client.Completed):
        metrics = status.metrics if isinstance(status.metrics, dict) else {}
        error_type = status.error_type if isinstance(status.error_type, str) else None
        return Completed(dict(metrics), status.error or None, error_type)
    raise UnreadableAnswer(detail=f"unreadable answer: a status fal_client names {status!r}")


def _streamed_status(data: Any, logs: list[str]) -> Status:
    """One streamed status object as a Status; its new log lines added to `logs`.

    The same fields as a polled status (fal's docs); read like fal_client reads
    a poll's answer, so both modes give the same values."""
    state = data["status"]
    if state == "IN_QUEUE":
        position = data.get("queue_position", 0)
        if not isinstance(position, int):
            raise UnreadableAnswer(detail=f"unreadable answer: queue position {position!r}")
        return InQueue(position)
    logs.extend(_log_lines(data.get("logs")))
    if state == "IN_PROGRESS":
        return InProgress(tuple(logs))
    if state == "COMPLETED":
        metrics = data.get("metrics")
        error_type = data.get("error_type")
        return Completed(
            dict(metrics) if isinstance(metrics, dict) else {},
            data.get("error") or None,
            error_type if isinstance(error_type, str) else None,
        )
    raise UnreadableAnswer(detail=f"unreadable answer: a status {state!r}")


def _log_lines(logs: Any) -> tuple[str, ...]:
    entries = logs if isinstance(logs, list) else []
    return tuple(
        str(entry["message"])
        for entry in entries
        if isinstance(entry, dict) and entry.get("message")
    )


async def _answer(call: str, answer: Awaitable[T]) -> T:
    """`answer` awaited, its failures as the exceptions this module's docstring lists.

    The call was made by the caller, outside this: an argument fal_client does
    not take is a TypeError of ours, not an unreadable answer.
    """
    try:
        return await answer
    except fal_client.FalClientHTTPError as exc:
        raise FalHTTPError(exc.status_code, exc.message, exc.error_type) from exc
    except (ValueError, KeyError, TypeError) as exc:
        # fal_client reading an answer that is not JSON (JSONDecodeError is a
        # ValueError), or JSON without the fields it indexes, or a status it
        # does not know (ValueError).
        raise UnreadableAnswer(detail=f"unreadable answer: {exc!r} (to the {call})"[:300]) from exc
    except (httpx.HTTPError, OSError) as exc:
        raise from_transport_error(exc) from exc


# --- no request needed ------------------------------------------------------------------


def encode(data: bytes, content_type: str) -> str:
    """`data` as a data URI, to send inline in a request instead of uploading it."""
    return fal_client.encode(data, content_type)


def point_uploads_at(rest_url: str | None, cdn_url: str | None) -> None:
    """Send uploads (and the storage token requests before them) to these hosts,
    instead of fal's own; None leaves that one as it is.

    fal_client 1.0 has no setting for these: no constructor argument, and no
    environment variable (it reads FAL_RUN_HOST and FAL_QUEUE_RUN_HOST, for
    requests, once at import, and nothing for storage). Its upload functions
    read the module globals REST_URL and CDN_URL when they run, so this writes
    them: the only write to fal_client's globals in the app. (A client's token
    manager copies REST_URL when its first upload starts: call this before then.)
    """
    if rest_url:
        fal_client.client.REST_URL = rest_url.rstrip("/")
    if cdn_url:
        fal_client.client.CDN_URL = cdn_url.rstrip("/")
