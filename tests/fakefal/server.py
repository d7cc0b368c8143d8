"""A fake of fal's HTTP services for `fal-ai/gpt-image-1.5` and its `/edit` endpoint.

It speaks real HTTPS on loopback so the real `fal_client` can talk to it:

- the QUEUE port plays `queue.fal.run` (submit, status, the status stream, result,
  cancel);
- the MAIN port plays `fal.run` (direct runs), `rest.fal.ai` (storage tokens and
  uploads) and `v3.fal.media` (uploads and file downloads); their paths don't clash.

uvicorn serves both ports from one background thread with its own event loop.
Everything tests read (`http_log`, `submissions`, `uploads`, ...) is guarded by a
lock and returned as snapshots.
"""

from __future__ import annotations

import asyncio
import json
import mimetypes
import re
import secrets
import socket
import ssl
import tempfile
import threading
import time
import traceback
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any, Literal, cast
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import httpx
import trustme
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from . import images
from .faults import TRANSPORT_KINDS, Fault, Where
from .inputs import resolve_inputs
from .records import RecordedHTTP, Role, Submission, Upload, Via
from .schema import EDIT, SCHEMAS, ErrorItem

Scope = MutableMapping[str, Any]
_SWEEP_STEPS = 10
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

APP_PATH = "/fal-ai/gpt-image-1.5"  # queue URLs use the app, never the /edit path
QUEUE_STEPS = 3  # a queued request shows positions 2, 1, 0 over `queue_time`
CANCELLED_ERROR = "Request was cancelled"
TRANSPORT_KEY = "fakefal.transport"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost"})

_REQUEST_PATH = re.compile(
    re.escape(APP_PATH) + r"/requests/(?P<rid>[^/]+)(?P<op>/status/stream|/status|/cancel)?"
)
# fal's docs: "The server sends a comment line every 15 seconds to keep the connection open."
STREAM_HEARTBEAT_S = 15.0
_STORAGE_BLOB = re.compile(r"/storage/upload/blob/(?P<bid>[0-9a-f]+)")


# --- what a handler answers ---------------------------------------------------------


@dataclass(frozen=True)
class _Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class _Drop:
    """Close the connection without sending anything."""


@dataclass(frozen=True)
class _Truncate:
    """Send the headers and half of the body of `reply`, then close."""

    reply: _Reply


@dataclass(frozen=True)
class _Hang:
    """Answer nothing until the fake is reset (generation) or ten minutes pass."""

    generation: int


@dataclass(frozen=True)
class _Stream:
    """A status stream (server-sent events) for `sub`, kept open until COMPLETED.

    `break_after`: drop the connection after that many events (a fault)."""

    sub: Submission
    with_logs: bool
    break_after: int | None = None


_Action = _Reply | _Drop | _Truncate | _Hang | _Stream


@dataclass(frozen=True)
class _Request:
    role: Role
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    receive: Receive


@dataclass(frozen=True)
class _StoredFile:
    data: bytes
    content_type: str


def _json(status: int, payload: Any, headers: tuple[tuple[str, str], ...] = ()) -> _Reply:
    if status >= 500 and not any(name == "x-fal-request-id" for name, _ in headers):
        # fal's own 5xx answers carry a request id; without it fal_client treats
        # a 502-504 as an nginx ingress error and retries it.
        headers = (*headers, ("x-fal-request-id", str(uuid.uuid4())))
    return _Reply(status, json.dumps(payload).encode(), "application/json", headers)


def _error_reply(status: int, detail: Any, error_type: str | None = None) -> _Reply:
    payload: dict[str, Any] = {"detail": detail}
    headers: tuple[tuple[str, str], ...] = ()
    if error_type is not None:
        payload["error_type"] = error_type
        headers = (("x-fal-error-type", error_type),)
    return _json(status, payload, headers)


def _seconds_header(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _now_iso() -> str:
    return datetime.now(UTC).isoformat()


def _key_of(request: _Request) -> str:
    """The fal key in a request's `Authorization: Key <key>` header ("" if none)."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    return key.strip() if scheme == "Key" else ""


# --- uvicorn plumbing ----------------------------------------------------------------


class _TransportExposingH11(H11Protocol):
    """uvicorn's h11 protocol that also hands the app its transport.

    An ASGI app cannot close a connection without answering: raising before the
    response starts makes uvicorn send a 500. The transport (in
    `scope["extensions"]`) lets the fake really drop or truncate a response.
    """

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(cast(asyncio.Transport, transport))
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("extensions", {})[TRANSPORT_KEY] = transport
            await inner(cast(Any, scope), cast(Any, receive), cast(Any, send))

        self.app = cast(Any, app)


def _bind(port: int) -> socket.socket:
    # IPPROTO_TCP, not the default 0: asyncio turns Nagle off (TCP_NODELAY) only on
    # sockets that say they are TCP, and accepted sockets inherit this one's. With
    # Nagle on, a response's body waited for the client's delayed ACK of its
    # headers: 40 ms added to some replies, which real fal does not add.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    # Rebinding the same port after stop() must not fail on TIME_WAIT leftovers.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def _notify(sub: Submission) -> None:
    """Wake whoever streams `sub`'s status (on the fake's loop)."""
    changed = sub._changed
    if changed is not None:
        sub._changed = asyncio.Event()
        changed.set()


async def _disconnected(receive: Receive) -> None:
    """Return when the client has gone (its body was read already)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


async def _deliver(
    action: _Reply | _Drop | _Truncate,
    send: Send,
    transport: asyncio.Transport | None,
    head_only: bool,
) -> None:
    if isinstance(action, _Drop):
        if transport is None:
            raise RuntimeError("cannot drop a connection without its transport")
        transport.abort()
        # Let uvicorn see the connection go before the app returns, so it does
        # not try to answer with a 500 on the dead socket.
        await asyncio.sleep(0.05)
        return
    reply = action.reply if isinstance(action, _Truncate) else action
    headers = [
        (b"content-type", reply.content_type.encode("latin-1")),
        (b"content-length", str(len(reply.body)).encode("latin-1")),
        *((name.encode("latin-1"), value.encode("latin-1")) for name, value in reply.headers),
    ]
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    if isinstance(action, _Truncate):
        await send(
            {
                "type": "http.response.body",
                "body": reply.body[: len(reply.body) // 2],
                "more_body": True,
            }
        )
        if transport is None:
            raise RuntimeError("cannot truncate a response without its transport")
        transport.close()  # flushes what was written, then closes
        await asyncio.sleep(0.05)
        return
    await send({"type": "http.response.body", "body": b"" if head_only else reply.body})


# --- the fake ----------------------------------------------------------------------

# Running fakes by (queue port, main port), so process-wide setup code can adopt a
# fake that some other fixture already started on the ports fal_client targets.
_RUNNING: dict[tuple[int, int], FakeFal] = {}
_RUNNING_LOCK = threading.Lock()


def running_fake(queue_port: int, main_port: int) -> FakeFal | None:
    with _RUNNING_LOCK:
        return _RUNNING.get((queue_port, main_port))


class FakeFal:
    """fal's queue, run, REST and CDN services for GPT Image 1.5, on loopback TLS."""

    def __init__(
        self,
        *,
        accepted_keys: set[str] | None = None,
        queue_port: int = 0,
        main_port: int = 0,
        workdir: Path | None = None,
        sockets: tuple[socket.socket, socket.socket] | None = None,
        latency: float = 0.2,
        queue_time: float = 0.0,
        latency_sweep: float = 0.0,
        sweep_group: int = 1,
    ) -> None:
        # Behaviour knobs: plain attributes, read when a request arrives.
        self.accepted_keys = accepted_keys
        self.latency = latency
        # With one fixed latency, a client polling every 0.1 s sees COMPLETED at
        # whatever phase its polls happen to have, and a few ms of work can cost it
        # a whole poll. A sweep adds 0, 1/10, ..., 9/10 of `latency_sweep` in turn,
        # each to `sweep_group` consecutive requests: clients compared in rounds of
        # that many calls get the same latency in a round, and every phase in turn.
        self.latency_sweep = latency_sweep
        self.sweep_group = max(1, sweep_group)
        self._swept = 0
        self.queue_time = queue_time
        # Give up queued requests at their X-Fal-Request-Timeout, as fal does; a
        # test turns it off to see the app's own queue timeout at work.
        self.honour_request_timeout = True
        # How often a status stream says it is alive while nothing changes.
        self.stream_heartbeat_s = STREAM_HEARTBEAT_S
        self._defaults = (accepted_keys, latency, queue_time)

        # Bind now, so the hosts are known (and can go into os.environ) before start().
        if sockets is not None:
            queue_sock, main_sock = sockets
        else:
            queue_sock = _bind(queue_port)
            try:
                main_sock = _bind(main_port)
            except OSError:
                queue_sock.close()
                raise
        self._sockets: list[socket.socket] | None = [queue_sock, main_sock]
        self.queue_port: int = queue_sock.getsockname()[1]
        self.main_port: int = main_sock.getsockname()[1]
        if self.queue_port == self.main_port:
            raise ValueError("the queue and main ports must differ (routing is by port)")
        self.queue_host = f"127.0.0.1:{self.queue_port}"
        self.run_host = f"127.0.0.1:{self.main_port}"
        self.rest_url = f"https://{self.run_host}"
        self.cdn_url = self.rest_url

        self._tempdir: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tempdir = tempfile.TemporaryDirectory(prefix="fakefal-")
            workdir = Path(self._tempdir.name)
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        ca = trustme.CA()
        self._leaf = ca.issue_cert("127.0.0.1", "localhost")
        self.ca_pem_path = workdir / f"fakefal-ca-{self.main_port}.pem"
        ca.cert_pem.write_to_path(str(self.ca_pem_path))

        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread_error: BaseException | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # token -> the key it was issued to; survive reset(): clients cache them for 1h
        self._cdn_tokens: dict[str, str] = {}
        self._generation = 0  # reset() count
        self._clear_records()

    # --- lifecycle ---------------------------------------------------------------

    def start(self) -> FakeFal:
        """Serve both ports from a background thread; returns once they accept."""
        if self._thread is not None:
            raise RuntimeError("FakeFal is already running")
        sockets = self._sockets or [_bind(self.queue_port), _bind(self.main_port)]
        self._sockets = None  # uvicorn closes them on shutdown
        config = uvicorn.Config(
            self._asgi,
            http=_TransportExposingH11,
            interface="asgi3",
            ws="none",
            lifespan="off",
            access_log=False,
            log_config=None,
            log_level="warning",
            proxy_headers=False,
            server_header=False,
            timeout_graceful_shutdown=1,
            ssl_context_factory=self._ssl_context_factory,
        )
        server = uvicorn.Server(config)
        self._thread_error = None
        thread = threading.Thread(
            target=self._serve,
            args=(server, sockets),
            name=f"fakefal-{self.main_port}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        deadline = time.monotonic() + 15
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self._thread = self._server = None
                raise RuntimeError(f"FakeFal did not start: {self._thread_error!r}")
            time.sleep(0.01)
        for port in (self.queue_port, self.main_port):
            with socket.create_connection(("127.0.0.1", port), timeout=5):
                pass
        with _RUNNING_LOCK:
            _RUNNING[(self.queue_port, self.main_port)] = self
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        with _RUNNING_LOCK:
            _RUNNING.pop((self.queue_port, self.main_port), None)
        # force_exit: don't wait for idle keep-alive TLS connections to finish
        # their close_notify exchange (clients rarely answer it promptly).
        server.should_exit = server.force_exit = True
        thread.join(timeout=20)
        self._server = self._thread = None
        self._loop = None

    def close(self) -> None:
        """stop(), and release ports that were bound but never served."""
        self.stop()
        for sock in self._sockets or []:
            sock.close()
        self._sockets = None

    def __enter__(self) -> FakeFal:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None

    def _serve(self, server: uvicorn.Server, sockets: list[socket.socket]) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            await server.serve(sockets=sockets)
            for connection in list(server.server_state.connections):
                transport = getattr(connection, "transport", None)
                if transport is not None:
                    transport.abort()

        try:
            asyncio.run(main())
        except BaseException as exc:  # SystemExit from a failed uvicorn startup, too
            self._thread_error = exc
        finally:
            for sock in sockets:
                sock.close()

    def _ssl_context_factory(
        self, _config: uvicorn.Config, _default: Callable[[], ssl.SSLContext]
    ) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._leaf.configure_cert(context)
        return context

    # --- configuration helpers for tests --------------------------------------------

    def env(self) -> dict[str, str]:
        """Environment for a process whose fal_client should talk to this fake.

        FAL_RUN_HOST / FAL_QUEUE_RUN_HOST must be set before fal_client is imported;
        SSL_CERT_FILE before any httpx client is made. fal_client ignores
        FAL_REST_URL / FAL_CDN_URL; the app's Settings read them and pass them to
        `backend.fal.point_uploads_at`, which sets fal_client's upload hosts.
        """
        return {
            "FAL_RUN_HOST": self.run_host,
            "FAL_QUEUE_RUN_HOST": self.queue_host,
            "SSL_CERT_FILE": str(self.ca_pem_path),
            "FAL_REST_URL": self.rest_url,
            "FAL_CDN_URL": self.cdn_url,
        }

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting this fake's CA (for httpx `verify=`)."""
        return ssl.create_default_context(cafile=str(self.ca_pem_path))

    def download(self, url: str) -> bytes:
        """Bytes behind a result URL: a data URI or a file this fake serves."""
        if url.startswith("data:"):
            return images.parse_data_uri(url)[1]
        response = httpx.get(url, verify=self.ssl_context(), timeout=10)
        response.raise_for_status()
        return response.content

    # --- records --------------------------------------------------------------------

    def _clear_records(self) -> None:
        self._http_log: list[RecordedHTTP] = []
        self._submissions: list[Submission] = []
        self._by_id: dict[str, Submission] = {}
        self._uploads: list[Upload] = []
        self._files: dict[str, _StoredFile] = {}
        self._pending_blobs: dict[str, tuple[str, str, str]] = {}  # name, type, key
        self._submission_faults: deque[Fault] = deque()
        self._prompt_faults: dict[str, deque[Fault]] = {}
        self._upload_faults: deque[Fault] = deque()
        self._stalled_files: set[str] = set()
        self._drops_left: dict[str, int] = {}  # file path -> downloads still to drop
        self._in_flight: set[str] = set()
        self._max_in_flight = 0
        self._internal_errors: list[str] = []
        self._stream_events = 0
        self._gate: tuple[int, float] | None = None  # (requests in progress, deadline)

    def reset(self) -> None:
        """Forget all records, files and pending faults; restore the default knobs.

        Requests still running (e.g. a never_finish one) are cancelled and no longer
        count towards `max_in_flight`.
        """
        with self._lock:
            leftovers = [sub for sub in self._submissions if sub.state != "COMPLETED"]
            self._clear_records()
            self._generation += 1  # ends downloads of stalled files
            self.accepted_keys, self.latency, self.queue_time = self._defaults
            self.honour_request_timeout = True
            self.stream_heartbeat_s = STREAM_HEARTBEAT_S
        loop = self._loop
        for sub in leftovers:
            event = sub._cancel_event
            if loop is not None and event is not None:
                loop.call_soon_threadsafe(event.set)

    @property
    def http_log(self) -> list[RecordedHTTP]:
        with self._lock:
            return list(self._http_log)

    @property
    def submissions(self) -> list[Submission]:
        with self._lock:
            return list(self._submissions)

    @property
    def uploads(self) -> list[Upload]:
        with self._lock:
            return list(self._uploads)

    @property
    def stream_events(self) -> int:
        """Status events sent on streams so far (heartbeats not counted)."""
        with self._lock:
            return self._stream_events

    @property
    def max_in_flight(self) -> int:
        with self._lock:
            return self._max_in_flight

    @property
    def in_flight(self) -> int:
        with self._lock:
            return len(self._in_flight)

    @property
    def internal_errors(self) -> list[str]:
        """Tracebacks of bugs in the fake itself (tests may assert it is empty)."""
        with self._lock:
            return list(self._internal_errors)

    def submission(self, request_id: str) -> Submission:
        with self._lock:
            for sub in self._submissions:
                if sub.request_id == request_id:
                    return sub
        raise KeyError(request_id)

    def wait_until(
        self, predicate: Callable[[], bool], timeout: float = 10, message: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"FakeFal: timed out after {timeout}s waiting for {message}")
            time.sleep(0.01)

    def wait_for_submissions(self, n: int, timeout: float = 10) -> list[Submission]:
        self.wait_until(lambda: len(self.submissions) >= n, timeout, f"{n} submission(s)")
        return self.submissions

    def gate(self, count: int, timeout: float = 20.0) -> None:
        """Hold each request IN_PROGRESS, before its latency, until `count` requests are
        in progress at once; then the gate stays open until reset(). A test of
        concurrency needs no window of time then: requests that really run together
        all reach it however slowly a loaded machine starts them, and requests run one
        at a time never do (after `timeout` seconds the gate opens anyway, so such a
        test fails on max_in_flight instead of hanging)."""
        with self._lock:
            self._gate = (count, time.monotonic() + timeout)

    # --- faults ---------------------------------------------------------------------

    def inject(self, fault: Fault, *, times: int = 1, prompt: str | None = None) -> None:
        """Apply `fault` to the next `times` submissions (or uploads, for
        where="upload"), first in, first out; with `prompt`, to the next `times`
        submissions whose prompt is exactly `prompt`."""
        if times < 1:
            raise ValueError("times must be at least 1")
        if prompt is not None and fault.where == "upload":
            raise ValueError("upload faults cannot be matched by prompt")
        with self._lock:
            if prompt is not None:
                target = self._prompt_faults.setdefault(prompt, deque())
            elif fault.where == "upload":
                target = self._upload_faults
            else:
                target = self._submission_faults
            target.extend([fault] * times)

    @property
    def pending_faults(self) -> list[Fault]:
        with self._lock:
            by_prompt = [f for faults in self._prompt_faults.values() for f in faults]
            return [*by_prompt, *self._submission_faults, *self._upload_faults]

    # --- ASGI entry point -------------------------------------------------------------

    async def _asgi(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        arrived = time.time()
        body = await _read_body(receive)
        transport = scope.get("extensions", {}).get(TRANSPORT_KEY)
        request = _Request(
            role=self._role(scope),
            method=scope["method"],
            path=scope["path"],
            query=dict(parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)),
            headers={k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
            receive=receive,
        )
        try:
            action = await self._dispatch(request)
        except Exception:
            self._note_internal_error()
            action = _error_reply(500, "fakefal internal error (see FakeFal.internal_errors)")
        status = (
            None
            if isinstance(action, _Drop | _Hang)
            else 200
            if isinstance(action, _Stream)
            else (action.reply.status if isinstance(action, _Truncate) else action.status)
        )
        record = RecordedHTTP(
            request.role,
            request.method,
            request.path,
            request.query,
            request.headers,
            len(body),
            arrived,
            status,
        )
        with self._lock:
            self._http_log.append(record)
        if isinstance(action, _Hang):
            await self._stall(action.generation)
            action = _Drop()
        if isinstance(action, _Stream):
            try:
                await self._serve_stream(action, send, receive, transport)
            except Exception:
                self._note_internal_error()
            return
        await _deliver(action, send, transport, head_only=request.method == "HEAD")

    def _role(self, scope: Scope) -> Role:
        server = scope.get("server")
        if server is not None and server[1] == self.queue_port:
            return "queue"
        path: str = scope["path"]
        if path.startswith(("/storage/", "/tokens")):
            return "rest"
        if path.startswith("/files/"):
            return "cdn"
        return "run"

    async def _dispatch(self, request: _Request) -> _Action:
        if request.role == "queue":
            return await self._queue(request)
        if request.role == "run":
            return await self._run(request)
        if request.role == "rest":
            return self._rest(request)
        return await self._cdn(request)

    def _note_internal_error(self) -> None:
        with self._lock:
            self._internal_errors.append(traceback.format_exc())

    # --- auth -------------------------------------------------------------------------

    def _auth_problem(self, request: _Request) -> _Reply | None:
        value = request.headers.get("authorization", "")
        if not value:
            return _error_reply(401, "Missing Authorization header")
        scheme, _, key = value.partition(" ")
        if scheme != "Key" or not key.strip():
            return _error_reply(401, "Invalid Authorization header: expected 'Key <FAL_KEY>'")
        accepted = self.accepted_keys
        if accepted is not None and key.strip() not in accepted:
            return _error_reply(401, "No user found for Key ID and Secret")
        return None

    # --- queue ------------------------------------------------------------------------

    async def _queue(self, request: _Request) -> _Action:
        if (denied := self._auth_problem(request)) is not None:
            return denied
        endpoint = request.path.lstrip("/")
        if match := _REQUEST_PATH.fullmatch(request.path):
            return self._queue_request_op(request, match["rid"], match["op"])
        if request.method != "POST":
            return _error_reply(405, "Method Not Allowed")
        if endpoint not in SCHEMAS:
            return _error_reply(404, f"Endpoint {endpoint!r} not found")
        return self._submit(request, endpoint)

    def _queue_request_op(self, request: _Request, request_id: str, op: str | None) -> _Action:
        with self._lock:
            sub = self._by_id.get(request_id)
        expected = {None: "GET", "/status": "GET", "/status/stream": "GET", "/cancel": "PUT"}[op]
        if request.method != expected:
            return _error_reply(405, "Method Not Allowed")
        if sub is None:
            if op == "/cancel":
                return _json(404, {"status": "NOT_FOUND"})
            return _error_reply(404, f"Request {request_id!r} not found")
        if op == "/status":
            return self._status(request, sub)
        if op == "/status/stream":
            return self._stream(request, sub)
        if op == "/cancel":
            return self._cancel(sub)
        return self._result(sub)

    def _urls(self, sub: Submission) -> dict[str, str]:
        base = f"https://{self.queue_host}{APP_PATH}/requests/{sub.request_id}"
        return {
            "request_id": sub.request_id,
            "response_url": base,
            "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel",
        }

    def _submit(self, request: _Request, endpoint: str) -> _Action:
        sub = self._new_submission(request, endpoint, "queue")
        if (rejected := self._submit_fault(sub)) is not None:
            return rejected
        queue_time = self.queue_time
        sub.queue_position = QUEUE_STEPS - 1 if queue_time > 0 else 0
        with self._lock:
            self._by_id[sub.request_id] = sub
        self._spawn(self._process(sub, queue_time=queue_time, latency=self._latency()))
        return _json(200, {**self._urls(sub), "queue_position": sub.queue_position})

    def _status(self, request: _Request, sub: Submission) -> _Action:
        if self._fault_fires(sub, "status"):
            return self._fault_action(sub)
        with_logs = request.query.get("logs", "").lower() in ("1", "true")
        return _json(200, self._status_payload(sub, sub.logs if with_logs else None))

    def _stream(self, request: _Request, sub: Submission) -> _Action:
        """`GET {status_url}/stream`: the status as server-sent events (`_serve_stream`)."""
        fault = sub.fault
        break_after = None
        # A "status" fault answers however the status is asked for: polls and streams.
        if self._fault_fires(sub, "stream") or self._fault_fires(sub, "status"):
            assert fault is not None
            if fault.kind != "stream_breaks":
                return self._fault_action(sub)
            break_after = fault.after
        with_logs = request.query.get("logs", "").lower() in ("1", "true")
        return _Stream(sub, with_logs, break_after)

    async def _serve_stream(
        self, stream: _Stream, send: Send, receive: Receive, transport: asyncio.Transport | None
    ) -> None:
        """Server-sent events as fal sends them: `text/event-stream`, chunked (no
        Content-Length), one `data:` status object per change whose `logs` are the
        lines new since the last event, a `:` comment every `stream_heartbeat_s`
        while nothing changes, and the end of the stream after COMPLETED."""
        sub = stream.sub
        headers = [
            (b"content-type", b"text/event-stream; charset=utf-8"),
            (b"cache-control", b"no-cache"),
            (b"connection", b"keep-alive"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        gone = asyncio.ensure_future(_disconnected(receive))
        with self._lock:
            generation = self._generation
        sent_logs = 0
        shown: tuple[Any, ...] | None = None
        events = 0
        try:
            while not gone.done():
                changed = sub._changed
                seen = (sub.state, sub.queue_position, len(sub.logs))
                if seen != shown:
                    shown = seen
                    new_logs = sub.logs[sent_logs:]
                    sent_logs += len(new_logs)
                    payload = self._status_payload(sub, new_logs if stream.with_logs else None)
                    chunk = b"data: " + json.dumps(payload).encode() + b"\n\n"
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                    events += 1
                    with self._lock:
                        self._stream_events += 1
                    if sub.state == "COMPLETED":
                        break
                    if stream.break_after is not None and events >= stream.break_after:
                        if transport is None:
                            raise RuntimeError("cannot break a stream without its transport")
                        transport.abort()
                        await asyncio.sleep(0.05)  # uvicorn sees it gone before we return
                        return
                if changed is None:
                    break
                with self._lock:
                    if self._generation != generation:
                        break  # reset(): end what is left
                woken = asyncio.ensure_future(changed.wait())
                try:
                    await asyncio.wait(
                        {woken, gone},
                        timeout=self.stream_heartbeat_s,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    woken.cancel()
                if not changed.is_set() and not gone.done():
                    heartbeat = b": heartbeat\n\n"
                    await send({"type": "http.response.body", "body": heartbeat, "more_body": True})
            if not gone.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

    def _status_payload(self, sub: Submission, logs: list[dict[str, Any]] | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"status": sub.state, **self._urls(sub)}
        if sub.state == "IN_QUEUE":
            payload["queue_position"] = sub.queue_position
            return payload
        # fal_client indexes data["logs"]: the key must be there, null if not asked.
        payload["logs"] = list(logs) if logs is not None else None
        if sub.state == "COMPLETED":
            started = sub.started_at or sub.submitted_at
            payload["metrics"] = {
                "inference_time": round((sub.finished_at or started) - started, 3)
            }
            if sub.error is not None:
                payload["error"] = sub.error
                payload["error_type"] = sub.error_type
        return payload

    def _result(self, sub: Submission) -> _Action:
        if self._fault_fires(sub, "result"):
            return self._fault_action(sub)
        if sub.state != "COMPLETED" or sub.result_status is None:
            return _error_reply(400, "Request is still in progress")
        return _Reply(sub.result_status, sub._result_body, "application/json", sub._result_headers)

    def _cancel(self, sub: Submission) -> _Action:
        if sub.state == "COMPLETED":
            return _json(400, {"status": "ALREADY_COMPLETED"})
        sub.cancelled = True
        event = sub._cancel_event
        if event is not None:
            event.set()
        return _json(202, {"status": "CANCELLATION_REQUESTED"})

    # --- direct run -----------------------------------------------------------------------

    async def _run(self, request: _Request) -> _Action:
        if (denied := self._auth_problem(request)) is not None:
            return denied
        endpoint = request.path.lstrip("/")
        if request.method != "POST":
            return _error_reply(405, "Method Not Allowed")
        if endpoint not in SCHEMAS:
            return _error_reply(404, f"Endpoint {endpoint!r} not found")
        sub = self._new_submission(request, endpoint, "run")
        if (rejected := self._submit_fault(sub)) is not None:
            return rejected
        # fal cancels a direct request when its caller hangs up.
        watcher = asyncio.create_task(self._cancel_on_disconnect(request.receive, sub))
        try:
            await self._process(sub, queue_time=0.0, latency=self._latency())
        finally:
            watcher.cancel()
        return self._result(sub)

    async def _cancel_on_disconnect(self, receive: Receive, sub: Submission) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                if sub.state != "COMPLETED":
                    sub.cancelled = True
                    if sub._cancel_event is not None:
                        sub._cancel_event.set()
                return

    # --- submissions and their faults ----------------------------------------------------

    def _new_submission(self, request: _Request, endpoint: str, via: Via) -> Submission:
        try:
            arguments: Any = json.loads(request.body)
            errors = SCHEMAS[endpoint].validate(arguments)
        except ValueError as exc:
            arguments = None
            errors = [
                {
                    "loc": ["body", 0],
                    "msg": f"JSON decode error: {exc}",
                    "type": "json_invalid",
                    "input": {},
                }
            ]
        sub = Submission(
            endpoint=endpoint,
            arguments=arguments,
            authorization=request.headers.get("authorization"),
            request_id=str(uuid.uuid4()),
            via=via,
            submitted_at=time.time(),
            schema_errors=errors,
            start_timeout=_seconds_header(request.headers.get("x-fal-request-timeout")),
        )
        sub._cancel_event = asyncio.Event()
        sub._changed = asyncio.Event()
        prompt = arguments.get("prompt") if isinstance(arguments, dict) else None
        with self._lock:
            matched = self._prompt_faults.get(prompt) if isinstance(prompt, str) else None
            if matched:
                sub.fault = matched.popleft()
            else:
                sub.fault = self._submission_faults.popleft() if self._submission_faults else None
            self._submissions.append(sub)
        return sub

    def _submit_fault(self, sub: Submission) -> _Action | None:
        fault = sub.fault
        if fault is None or fault.kind not in TRANSPORT_KINDS or fault.where != "submit":
            return None
        sub.state = "REJECTED"
        sub.finished_at = time.time()
        return self._fault_action(sub)

    def _fault_fires(self, sub: Submission, where: Where) -> bool:
        fault = sub.fault
        if fault is None or fault.kind not in TRANSPORT_KINDS or fault.where != where:
            return False
        if fault.hits is not None and sub._fault_hits >= fault.hits:
            return False
        sub._fault_hits += 1
        return True

    def _fault_action(self, sub: Submission) -> _Action:
        fault = sub.fault
        assert fault is not None
        return self._transport_fault(fault, sub)

    def _transport_fault(self, fault: Fault, sub: Submission | None) -> _Action:
        if fault.kind == "drop_connection":
            return _Drop()
        if fault.kind == "hang":
            with self._lock:
                return _Hang(self._generation)
        if fault.kind == "malformed_result":
            return _Reply(200, b'{"images": [{"url": "https://', "application/json")
        if fault.kind == "fields_missing":
            return _json(200, {"message": "an answer of another shape"})
        if fault.kind == "truncated_result":
            body = (
                sub._result_body
                if sub is not None and sub._result_body
                else json.dumps({"images": [{"url": f"{self.cdn_url}/files/none.png"}]}).encode()
            )
            return _Truncate(_Reply(200, body, "application/json"))
        if fault.ingress:
            title = f"{fault.status} {HTTPStatus(fault.status).phrase}"
            page = (
                f"<html><head><title>{title}</title></head><body><center><h1>{title}"
                "</h1></center><hr><center>nginx</center></body></html>"
            )
            return _Reply(fault.status, page.encode(), "text/html")
        return _error_reply(fault.status, fault.detail, fault.error_type)

    # --- running a request -------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _latency(self) -> float:
        if self.latency_sweep <= 0:
            return self.latency
        with self._lock:
            step = (self._swept // self.sweep_group) % _SWEEP_STEPS
            self._swept += 1
        return self.latency + self.latency_sweep * step / _SWEEP_STEPS

    async def _process(self, sub: Submission, *, queue_time: float, latency: float) -> None:
        try:
            await self._run_submission(sub, queue_time, latency)
        except Exception:
            self._note_internal_error()
            self._complete(
                sub,
                _error_reply(500, "fakefal internal error", "internal_error"),
                error="fakefal internal error",
                error_type="internal_error",
            )
        finally:
            with self._lock:
                self._in_flight.discard(sub.request_id)

    async def _run_submission(self, sub: Submission, queue_time: float, latency: float) -> None:
        limit = sub.start_timeout if self.honour_request_timeout else None
        if limit is not None and queue_time > limit:
            # fal gives up a request that has not started within X-Fal-Request-Timeout.
            if await self._wait_in_queue(sub, limit):
                return self._complete_cancelled(sub)
            return self._complete_start_timeout(sub, limit)
        if queue_time > 0 and await self._wait_in_queue(sub, queue_time):
            return self._complete_cancelled(sub)
        self._begin(sub)
        if await self._held_at_gate(sub):
            return self._complete_cancelled(sub)
        if sub.blocking_errors:
            return self._complete_invalid(sub, sub.blocking_errors)
        arguments = SCHEMAS[sub.endpoint].with_defaults(sub.arguments)
        problems: list[ErrorItem] = []
        if sub.endpoint == EDIT:
            sub.decoded_inputs, problems = await asyncio.to_thread(
                resolve_inputs, arguments, self._fetch_input
            )
            self._log(sub, f"Loaded {len(sub.decoded_inputs)} input image(s)")
        if problems:
            return self._complete_invalid(sub, problems)
        plan = self._plan(sub, arguments)
        fault = sub.fault
        outcome = fault.kind if fault is not None else None
        renders: asyncio.Future[list[bytes]] | None = None
        if outcome not in ("complete_with_error", "content_policy", "no_images"):
            # Encode while "the model works", so latency is not stretched by Pillow.
            renders = asyncio.gather(*(asyncio.to_thread(images.render, spec) for spec in plan))
        extra = fault.seconds if fault is not None and fault.kind == "slow" else 0.0
        step = (latency + extra) / len(plan)
        first = plan[0]
        self._log(
            sub,
            f"Generating {len(plan)} image(s) at {first.width}x{first.height}, "
            f"quality={arguments['quality']}",
        )
        for index in range(len(plan)):
            self._log(sub, f"Generating image {index + 1} of {len(plan)}")
            if await self._sleep_or_cancelled(sub, step):
                return await self._abandon(sub, renders)
        if outcome == "never_finish":
            self._log(sub, "Waiting for the upstream model...")
            if sub._cancel_event is not None:
                await sub._cancel_event.wait()
            return await self._abandon(sub, renders)
        encoded = await renders if renders is not None else []
        if sub.cancelled:
            return self._complete_cancelled(sub)
        self._finish(sub, arguments, plan, encoded)

    async def _abandon(self, sub: Submission, renders: asyncio.Future[list[bytes]] | None) -> None:
        if renders is not None:
            await renders  # finish the threads quietly; the result is discarded
        self._complete_cancelled(sub)

    async def _wait_in_queue(self, sub: Submission, queue_time: float) -> bool:
        for position in range(QUEUE_STEPS - 1, -1, -1):
            sub.queue_position = position
            _notify(sub)
            if await self._sleep_or_cancelled(sub, queue_time / QUEUE_STEPS):
                return True
        return False

    async def _held_at_gate(self, sub: Submission) -> bool:
        """Wait while gate() holds requests back; True if `sub` was cancelled meanwhile."""
        while True:
            with self._lock:
                gate = self._gate
                if gate is not None and (
                    len(self._in_flight) >= gate[0] or time.monotonic() > gate[1]
                ):
                    self._gate = gate = None
            if gate is None:
                return False
            if await self._sleep_or_cancelled(sub, 0.01):
                return True

    async def _sleep_or_cancelled(self, sub: Submission, seconds: float) -> bool:
        """Sleep `seconds` unless the request is cancelled; True if it was."""
        event = sub._cancel_event
        if event is None:
            await asyncio.sleep(seconds)
            return False
        if event.is_set():
            return True
        if seconds <= 0:
            return False
        try:
            await asyncio.wait_for(event.wait(), seconds)
        except TimeoutError:
            return False
        return True

    def _begin(self, sub: Submission) -> None:
        sub.started_at = time.time()
        sub.state = "IN_PROGRESS"
        _notify(sub)
        with self._lock:
            self._in_flight.add(sub.request_id)
            self._max_in_flight = max(self._max_in_flight, len(self._in_flight))
        self._log(sub, f"Starting request {sub.request_id} on {sub.endpoint}")

    def _log(self, sub: Submission, message: str) -> None:
        sub.logs.append(
            {"message": message, "level": "INFO", "source": "user", "timestamp": _now_iso()}
        )
        _notify(sub)

    def _complete(
        self,
        sub: Submission,
        reply: _Reply,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        error_type: str | None = None,
    ) -> None:
        sub.result = result
        sub.result_status = reply.status
        sub._result_body = reply.body
        sub._result_headers = reply.headers
        sub.error = error
        sub.error_type = error_type
        sub.finished_at = time.time()
        if sub.started_at is None:
            sub.started_at = sub.finished_at
        self._log(sub, "Request completed" if error is None else f"Request failed: {error}")
        sub.state = "COMPLETED"  # last, so whoever sees COMPLETED sees everything
        _notify(sub)

    def _complete_cancelled(self, sub: Submission) -> None:
        self._complete(
            sub,
            _error_reply(499, CANCELLED_ERROR, "client_cancelled"),
            error=CANCELLED_ERROR,
            error_type="client_cancelled",
        )

    def _complete_start_timeout(self, sub: Submission, limit: float) -> None:
        message = f"Request timed out: it did not start within {limit:g} seconds"
        sub.timed_out = True
        self._complete(
            sub,
            _error_reply(504, message, "request_timeout"),
            error=message,
            error_type="request_timeout",
        )

    def _complete_invalid(self, sub: Submission, errors: list[ErrorItem]) -> None:
        summary = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'][1:]) or 'body'}: {item['msg']}"
            for item in errors
        )
        self._complete(sub, _json(422, {"detail": errors}), error=f"Unprocessable input: {summary}")

    def _plan(self, sub: Submission, arguments: dict[str, Any]) -> list[images.RenderSpec]:
        size = arguments["image_size"]
        base: bytes | None = None
        if sub.endpoint == EDIT:
            first = sub.decoded_inputs[0]
            base = first.data
            width, height = (
                images.closest_size(first.width, first.height)
                if size == "auto"
                else images.parse_size(size)
            )
        else:
            width, height = images.parse_size(size)
        return [
            images.RenderSpec(
                prompt=arguments["prompt"],
                index=index,
                width=width,
                height=height,
                output_format=arguments["output_format"],
                transparent=arguments["background"] == "transparent",
                base=base,
            )
            for index in range(arguments["num_images"])
        ]

    def _finish(
        self,
        sub: Submission,
        arguments: dict[str, Any],
        plan: list[images.RenderSpec],
        encoded: list[bytes],
    ) -> None:
        fault = sub.fault
        kind = fault.kind if fault is not None else None
        if fault is not None and kind == "complete_with_error":
            error = str(fault.detail)
            self._complete(
                sub,
                _error_reply(500, error, fault.error_type),
                error=error,
                error_type=fault.error_type,
            )
            return
        if fault is not None and kind == "content_policy":
            image = fault.indexes[0] if fault.indexes else None
            item = {
                "loc": ["body", "prompt"] if image is None else ["body", "image_urls", image],
                "msg": str(fault.detail),
                "type": "content_policy_violation",
                "input": arguments["prompt"] if image is None else "<image>",
            }
            self._complete(
                sub,
                _json(422, {"detail": [item]}),
                error=str(fault.detail),
                error_type="content_policy_violation",
            )
            return
        broken = set(fault.indexes) if fault is not None and kind == "broken_image_urls" else set()
        stalled = (
            set(fault.indexes) if fault is not None and kind == "stalled_image_urls" else set()
        )
        dropped = (
            set(fault.indexes) if fault is not None and kind == "dropped_image_urls" else set()
        )
        files = (
            []
            if kind == "no_images"
            else [
                self._publish(
                    spec,
                    data,
                    arguments["sync_mode"],
                    index in broken,
                    index in stalled,
                    drops=(fault.hits or 1) if fault is not None and index in dropped else 0,
                )
                for index, (spec, data) in enumerate(zip(plan, encoded, strict=True))
            ]
        )
        result = {"images": files}
        self._complete(sub, _json(200, result), result=result)

    def _publish(
        self,
        spec: images.RenderSpec,
        data: bytes,
        sync_mode: bool,
        broken: bool,
        stalled: bool = False,
        drops: int = 0,
    ) -> dict[str, Any]:
        mime = images.MIME_BY_FORMAT[spec.output_format]
        file_name = f"{secrets.token_urlsafe(15)}.{images.EXTENSION_BY_FORMAT[spec.output_format]}"
        if sync_mode and not (broken or stalled or drops):
            url = images.data_uri(mime, data)
        else:
            path = f"/files/b/{secrets.token_hex(4)}/{file_name}"
            url = self.cdn_url + path
            if stalled:
                with self._lock:
                    self._stalled_files.add(path)
            elif not broken:
                with self._lock:
                    self._files[path] = _StoredFile(data, mime)
                    if drops:
                        self._drops_left[path] = drops
        return {
            "url": url,
            "content_type": mime,
            "file_name": file_name,
            "width": spec.width,
            "height": spec.height,
        }

    # --- edit inputs -----------------------------------------------------------------------

    def _fetch_input(self, url: str) -> bytes | None:
        """Bytes of an input URL the fake can reach: a data URI or one of its files."""
        if url.startswith("data:"):
            try:
                return images.parse_data_uri(url)[1]
            except images.DataURIError:
                return None
        parts = urlsplit(url)
        if parts.scheme != "https" or parts.hostname not in LOOPBACK_HOSTS:
            return None  # the fake has no internet; only its own files resolve
        if parts.port != self.main_port:
            return None
        with self._lock:
            stored = self._files.get(unquote(parts.path))
        return stored.data if stored is not None else None

    # --- REST (storage) -----------------------------------------------------------------

    def _rest(self, request: _Request) -> _Action:
        path, method = request.path, request.method
        if path == "/storage/auth/token" and method == "POST":
            if (denied := self._auth_problem(request)) is not None:
                return denied
            token = secrets.token_urlsafe(24)
            with self._lock:
                self._cdn_tokens[token] = _key_of(request)
            expires = datetime.now(UTC) + timedelta(hours=1)
            return _json(
                200,
                {
                    "token": token,
                    "token_type": "Bearer",
                    "base_url": self.cdn_url,
                    "expires_at": expires.isoformat(),
                },
            )
        if path == "/storage/upload/initiate" and method == "POST":
            if (denied := self._auth_problem(request)) is not None:
                return denied
            if (failed := self._upload_fault()) is not None:
                return failed
            return self._initiate_upload(request)
        if (match := _STORAGE_BLOB.fullmatch(path)) and method == "PUT":
            return self._finish_blob(request, match["bid"])
        return _error_reply(404, "Not Found")

    def _initiate_upload(self, request: _Request) -> _Action:
        try:
            spec = json.loads(request.body)
            content_type = str(spec.get("content_type") or "application/octet-stream")
            file_name = str(spec.get("file_name") or "upload.bin")
        except (ValueError, AttributeError):
            return _error_reply(422, "Expected a JSON body with file_name and content_type")
        blob_id = secrets.token_hex(8)
        with self._lock:
            self._pending_blobs[blob_id] = (file_name, content_type, _key_of(request))
        return _json(
            200,
            {
                "upload_url": f"{self.rest_url}/storage/upload/blob/{blob_id}",
                "file_url": self._file_url(blob_id, file_name),
            },
        )

    def _finish_blob(self, request: _Request, blob_id: str) -> _Action:
        with self._lock:
            pending = self._pending_blobs.pop(blob_id, None)
        if pending is None:
            return _error_reply(404, "Unknown upload")
        file_name, content_type, key = pending
        self._store_upload(
            request.body,
            request.headers.get("content-type") or content_type,
            file_name,
            blob_id,
            "storage",
            key,
        )
        return _json(200, {})

    def _file_url(self, file_id: str, file_name: str) -> str:
        return f"{self.cdn_url}/files/{file_id}/{quote(file_name)}"

    def _store_upload(
        self,
        data: bytes,
        content_type: str,
        file_name: str,
        file_id: str,
        via: Literal["cdn", "storage"],
        key: str,
    ) -> str:
        url = self._file_url(file_id, file_name)
        with self._lock:
            self._files[f"/files/{file_id}/{file_name}"] = _StoredFile(data, content_type)
            self._uploads.append(Upload(data, content_type, file_name, url, via, key))
        return url

    def _upload_fault(self) -> _Action | None:
        with self._lock:
            fault = self._upload_faults.popleft() if self._upload_faults else None
        return None if fault is None else self._transport_fault(fault, None)

    # --- CDN ----------------------------------------------------------------------------

    async def _cdn(self, request: _Request) -> _Action:
        if request.path == "/files/upload" and request.method == "POST":
            return self._cdn_upload(request)
        if request.method not in ("GET", "HEAD"):
            return _error_reply(405, "Method Not Allowed")
        with self._lock:
            stalled = request.path in self._stalled_files
            generation = self._generation
            drop = self._drops_left.get(request.path, 0) > 0
            if drop:
                self._drops_left[request.path] -= 1
        if drop:
            return _Drop()
        if stalled:
            await self._stall(generation)
            return _Drop()
        with self._lock:
            stored = self._files.get(request.path)
        if stored is None:
            return _error_reply(404, "Not Found")
        return _Reply(200, stored.data, stored.content_type)

    async def _stall(self, generation: int, limit: float = 600.0) -> None:
        """Hang until reset() (a new generation) or `limit` seconds, whichever is first."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            with self._lock:
                if self._generation != generation:
                    return
            await asyncio.sleep(0.1)

    def _cdn_upload(self, request: _Request) -> _Action:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            key = self._cdn_tokens.get(token)
        if scheme != "Bearer" or key is None:
            return _error_reply(401, "Invalid or missing CDN token")
        if (failed := self._upload_fault()) is not None:
            return failed
        content_type = request.headers.get("content-type") or "application/octet-stream"
        file_name = request.headers.get("x-fal-file-name") or (
            secrets.token_hex(8) + (mimetypes.guess_extension(content_type) or ".bin")
        )
        url = self._store_upload(
            request.body, content_type, file_name, secrets.token_hex(6), "cdn", key
        )
        return _json(
            200,
            {
                "access_url": url,
                "content_type": content_type,
                "file_name": file_name,
                "file_size": len(request.body),
            },
        )
