"""The one place that talks to fal: submit, follow the queue, fetch the images.

`ImageClient.stream(request, key)` is an async generator of `Progress` events
ending with `Finished(result)`. It uses `fal_client.AsyncClient(key=...)` (one
per key, never the module-level shared client that caches the first key it
saw), polls the queue itself so that it can report progress, keeps a deadline,
and cancels the request at fal when the deadline passes or the caller is
cancelled (the Stop button, a closed tab).
"""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import fal_client
import httpx

from backend.edits import EditDraft, needs_upload, send_inputs
from backend.errors import (
    Cancelled,
    ResultUnavailable,
    ServiceUnavailable,
    StudioError,
    deadline_exceeded,
    from_completed_error,
    from_http_status,
    from_transport_error,
    redact,
)
from backend.keys import KeyChoice
from backend.progress import (
    Fetching,
    Finished,
    Progress,
    Queued,
    Running,
    Submitted,
    Uploading,
)
from backend.results import fetch_images
from backend.schema import EditRequest, GenerationResult, TextToImageRequest, Timings
from backend.settings import Settings

# The progress types moved to backend.progress; importing them from here still works.
__all__ = [
    "Fetching",
    "Finished",
    "ImageClient",
    "Job",
    "Progress",
    "Queued",
    "Running",
    "Submitted",
    "Uploading",
    "until_stopped",
]

log = logging.getLogger("studio.fal")

T = TypeVar("T")
Request = TextToImageRequest | EditRequest
# What stream() takes: a ready request, or an edit whose images are still local.
Job = TextToImageRequest | EditRequest | EditDraft

# Clients kept per key: reusing one keeps its TLS connections warm; the cap
# bounds memory on a busy public Space with many visitors' keys.
_MAX_CACHED_CLIENTS = 256


class ImageClient:
    """Runs requests against fal's queue with per-call keys and a deadline."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._clients: OrderedDict[str, fal_client.AsyncClient] = OrderedDict()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        _point_uploads_at(settings)

    # -- clients -----------------------------------------------------------

    def _client_for(self, key: str) -> fal_client.AsyncClient:
        self._bind_loop()
        client = self._clients.get(key)
        if client is None:
            client = fal_client.AsyncClient(
                key=key, default_timeout=min(60.0, self._settings.request_timeout_s)
            )
            self._clients[key] = client
            if len(self._clients) > _MAX_CACHED_CLIENTS:
                # Dropping (not closing) is safe: a request still using it holds a reference.
                self._clients.popitem(last=False)
        else:
            self._clients.move_to_end(key)
        return client

    def http(self) -> httpx.AsyncClient:
        """The shared client that downloads fal's result files (no key sent)."""
        self._bind_loop()
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(60.0, connect=10.0),
                follow_redirects=True,
                limits=httpx.Limits(max_connections=64, max_keepalive_connections=32),
            )
        return self._http

    def _bind_loop(self) -> None:
        # httpx and fal_client's clients belong to the loop that made them.
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._clients.clear()
            self._http = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    # -- running a request -------------------------------------------------

    async def run(self, request: Job, key: KeyChoice) -> GenerationResult:
        """Run to completion, ignoring progress."""
        async for event in self.stream(request, key):
            if isinstance(event, Finished):
                return event.result
        raise ResultUnavailable()  # pragma: no cover - stream always finishes or raises

    async def stream(self, job: Job, key: KeyChoice) -> AsyncIterator[Progress]:
        started = time.monotonic()
        deadline = started + self._settings.request_timeout_s
        client = self._client_for(key.key)
        handle: Any = None
        completed = False  # once fal says COMPLETED there is nothing left to cancel
        try:
            if isinstance(job, EditDraft):
                limits = {
                    "inline_limit": self._settings.inline_limit_bytes,
                    "inline_budget": self._settings.inline_budget_bytes,
                }
                uploads = needs_upload(job, **limits)
                if uploads:
                    yield Uploading(uploads, time.monotonic() - started)
                request: Request = await _within(deadline, send_inputs(client, job, **limits))
            else:
                request = job
            arguments = request.to_arguments()
            endpoint = request.endpoint
            handle = await _within(deadline, client.submit(endpoint, arguments))
            request_id: str = handle.request_id
            log.info("submitted %s request %s (%s)", endpoint, request_id, key.source)
            yield Submitted(request_id, time.monotonic() - started)

            queued_until = running_since = time.monotonic()
            seen_running = False
            status: Any = None
            # Polls keep their own beat: the time the caller spends showing an event
            # (a round trip through Gradio) does not push every later poll back. Under
            # load, when an answer takes longer than the beat, half a beat of rest
            # still follows it, so slow answers do not mean back-to-back polls.
            beat = submitted = time.monotonic()
            while True:
                status = await _within(deadline, handle.status(with_logs=True))
                now = time.monotonic()
                if isinstance(status, fal_client.Queued):
                    queued_until = now
                    yield Queued(request_id, status.position, now - started)
                elif isinstance(status, fal_client.InProgress):
                    if not seen_running:
                        seen_running, running_since = True, now
                    yield Running(request_id, _log_lines(status.logs), now - started)
                elif isinstance(status, fal_client.Completed):
                    if not seen_running:
                        running_since = queued_until
                    break
                interval = _poll_interval(now - submitted, self._settings.poll_interval_s)
                beat = max(beat + interval, now + interval / 2)
                await _within(deadline, asyncio.sleep(max(0.0, beat - time.monotonic())))

            completed = True
            completed_at = time.monotonic()
            output = await _result_of(handle, status, deadline)
            images_json = output.get("images") if isinstance(output, dict) else None
            if not isinstance(images_json, list) or not images_json:
                raise ResultUnavailable(
                    "fal finished but sent no images. Try again, or change the prompt.",
                    detail=f"output without images: {str(output)[:200]}",
                )
            # Not cut off by _within: at the deadline the images that arrived are kept.
            # Started before the Fetching event is handed out, so the downloads run
            # while the caller shows it (a round trip through Gradio's event loop).
            fetching = asyncio.ensure_future(
                fetch_images(
                    self.http(),
                    images_json,
                    self._settings.results_dir / request_id,
                    stem=f"gpt-image-{request_id[:8]}",
                    time_left=max(0.0, deadline - time.monotonic()),
                )
            )
            try:
                yield Fetching(request_id, len(images_json), time.monotonic() - started)
                images, failures = await fetching
            finally:
                fetching.cancel()  # the caller went away (Stop): no download outlives it
            if not images:
                raise ResultUnavailable(
                    "fal finished, but none of its images could be downloaded. Try again.",
                    detail="; ".join(f.reason for f in failures),
                )
            finished_at = time.monotonic()
            result = GenerationResult(
                endpoint=endpoint,
                request_id=request_id,
                arguments=arguments,
                images=images,
                failures=failures,
                timings=Timings(
                    queued_s=running_since - started,
                    running_s=completed_at - running_since,
                    fetching_s=finished_at - completed_at,
                    total_s=finished_at - started,
                ),
                key_source=key.source,
                metrics=dict(getattr(status, "metrics", None) or {}),
            )
            log.info(
                "finished %s in %.2fs: %d image(s), %d failed%s",
                request_id,
                result.timings.total_s if result.timings else 0.0,
                len(images),
                len(failures),
                "".join(f"; image {f.index + 1}: {f.reason}" for f in failures),
            )
            yield Finished(result)
        except asyncio.CancelledError:
            # The user pressed Stop or went away: don't leave fal working (and billing).
            if handle is not None and not completed:
                await _cancel_quietly(handle)
                log.info("cancelled request %s at the user's request", handle.request_id)
            raise
        except Exception as exc:
            error = _as_studio_error(exc, self._settings.request_timeout_s, handle is not None)
            if handle is not None and not completed:
                # Given up (deadline, network, an error while polling): fal must stop too.
                await _cancel_quietly(handle)
            where = handle.request_id if handle is not None else "before submission"
            log.warning(
                "request %s failed: %s: %s",
                where,
                type(error).__name__,
                redact(error.detail or error.message, key.key),
            )
            if not isinstance(exc, _EXPECTED_FAILURES):
                log.error("unexpected failure:\n%s", redact(_traceback(exc), key.key))
            raise error from None


def _poll_interval(waited_s: float, shortest_s: float) -> float:
    """How long between status polls, `waited_s` after submitting.

    The shortest interval at first; then a tenth of the time waited so far, up
    to 1 s. Each poll costs CPU here (an HTTPS round trip: with 32 requests at
    once, polling was most of the app's work) and at fal; a tenth of the wait
    adds at most 5% to it on average, where a fixed 0.1 s would poll a
    60-second request 600 times.
    """
    return max(shortest_s, min(_LONGEST_POLL_S, waited_s / 10))


_LONGEST_POLL_S = 1.0


class _DeadlinePassed(Exception):
    pass


# Steps abandoned by `until_stopped`, finishing their cancel at fal in the background.
_ABANDONED: set[asyncio.Future[Any]] = set()


async def until_stopped(
    events: AsyncIterator[Progress], stop: asyncio.Event
) -> AsyncIterator[Progress]:
    """`events` (a `stream()`) until `stop` is set, then `Cancelled` at once.

    This is the Stop button: the step under way is cancelled, which makes
    `stream()` cancel the request at fal (see its CancelledError branch); that
    cancel finishes in the background, so the caller, and the page, are free
    immediately instead of after fal's answer.
    """
    sent = False
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while True:
            step = asyncio.ensure_future(_next(events))
            try:
                await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                _abandon(step)  # the caller went away: so does the request
                raise
            if not step.done():
                _abandon(step)
                if sent:
                    raise Cancelled()
                raise Cancelled("Stopped before anything was sent to fal.")
            event = step.result()
            if event is None:
                return
            sent = sent or not isinstance(event, Uploading)
            yield event
    finally:
        waiter.cancel()


async def _next(events: AsyncIterator[Progress]) -> Progress | None:
    """The next event, or None at the end (a task must not raise StopAsyncIteration)."""
    return await anext(events, None)


def _abandon(step: asyncio.Future[Any]) -> None:
    step.cancel()
    _ABANDONED.add(step)
    step.add_done_callback(_ABANDONED.discard)


async def _within(deadline: float, awaitable: Awaitable[T]) -> T:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        if asyncio.iscoroutine(awaitable):
            awaitable.close()
        raise _DeadlinePassed()
    try:
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the caller's
        # cancellation when the inner call finishes at the same moment.
        async with asyncio.timeout(remaining):
            return await awaitable
    except TimeoutError:
        raise _DeadlinePassed() from None


async def _cancel_quietly(handle: Any) -> None:
    """Ask fal to cancel; shielded so a cancelled caller still sends it."""
    try:
        await asyncio.shield(asyncio.wait_for(handle.cancel(), 10))
    except (Exception, asyncio.CancelledError) as exc:  # best effort: we are already failing
        log.info("cancel of %s not confirmed: %s", handle.request_id, type(exc).__name__)


async def _result_of(handle: Any, status: Any, deadline: float) -> Any:
    """The output of a COMPLETED request, or the error it completed with.

    On COMPLETED with an error the result is fetched anyway: a 422 there carries
    fal's `detail` list (what exactly was refused). A 5xx there only repeats the
    failure, and the status' own `error` says more.
    """
    try:
        output = await _within(deadline, _fetch_result(handle))
    except fal_client.client.FalClientHTTPError as exc:
        if status.error and (exc.status_code >= 500 or _is_cancel_error(status.error)):
            raise _completed_failure(status) from None
        raise
    if status.error:
        raise _completed_failure(status)
    return output


async def _fetch_result(handle: Any) -> Any:
    """One GET of the result, with fal_client's own retries and errors.

    `handle.get()` would first poll the status again, which we have just seen
    COMPLETED: a round trip (~50 ms) for nothing. These are the calls it then
    makes (fal-client 1.0.x), so retries and `FalClientHTTPError` stay the same.
    """
    response = await fal_client.client._async_maybe_retry_request(
        handle.client, "GET", handle.response_url, timeout=fal_client.client.QUEUE_POLL_TIMEOUT
    )
    return response.json()


def _completed_failure(status: Any) -> StudioError:
    if _is_cancel_error(status.error):
        return Cancelled(detail=f"completed as cancelled: {status.error}")
    return from_completed_error(status.error, status.error_type)


# Failures with a known meaning; anything else is a bug, logged with its traceback.
_EXPECTED_FAILURES = (
    StudioError,
    _DeadlinePassed,
    fal_client.client.FalClientHTTPError,
    httpx.HTTPError,
    OSError,
    ValueError,
    KeyError,
    TypeError,
)


def _as_studio_error(exc: Exception, timeout_s: float, submitted: bool) -> StudioError:
    """What the user is told about `exc`; its technical side goes to `detail`."""
    if isinstance(exc, StudioError):
        return exc
    if isinstance(exc, _DeadlinePassed):
        return deadline_exceeded(timeout_s, submitted=submitted)
    if isinstance(exc, fal_client.client.FalClientHTTPError):
        return from_http_status(exc.status_code, exc.message, exc.error_type)
    if isinstance(exc, (httpx.HTTPError, OSError)):
        return from_transport_error(exc)
    if isinstance(exc, (ValueError, KeyError, TypeError)):
        # A malformed answer: fal_client fails parsing it (not JSON, fields missing).
        return ServiceUnavailable(
            "fal sent an answer that could not be read. Try again in a moment.",
            detail=f"unreadable answer: {exc!r}"[:300],
        )
    return StudioError(detail=f"unexpected {type(exc).__name__}: {exc}"[:300])


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


def _log_lines(logs: list[dict[str, Any]] | None) -> tuple[str, ...]:
    return tuple(str(entry.get("message", "")) for entry in logs or [] if entry.get("message"))


def _is_cancel_error(error: str) -> bool:
    return "cancel" in str(error).lower()


def _point_uploads_at(settings: Settings) -> None:
    # fal_client reads these module globals at call time (see DESIGN.md).
    if settings.fal_rest_url:
        fal_client.client.REST_URL = settings.fal_rest_url.rstrip("/")
    if settings.fal_cdn_url:
        fal_client.client.CDN_URL = settings.fal_cdn_url.rstrip("/")
