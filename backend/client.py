"""Running a request at fal: submit, follow the queue, fetch the images.

`ImageClient.stream(request, key)` is an async generator of `Progress` events
ending with `Finished(result)`. It reaches fal through backend/fal.py (a
client per key), follows the request on fal's status stream (polling when the
stream fails) so that it can report progress, keeps a deadline, and cancels
the request at fal when the deadline passes or the caller is cancelled (the
Stop button, a closed tab).

Every failure ends as a `StudioError`: fal's own failures as the sentence for
them; a bug here as `InternalError`, its traceback in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

import httpx

from backend import fal
from backend.edits import EditDraft, needs_upload, send_inputs
from backend.errors import (
    Cancelled,
    InternalError,
    ResultUnavailable,
    StudioError,
    deadline_exceeded,
    from_completed_error,
    from_http_status,
    no_answer,
    redact,
    stuck_in_queue,
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
from backend.results import fetch_images, shown_from_fal
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
]

log = logging.getLogger("studio.fal")

T = TypeVar("T")
Request = TextToImageRequest | EditRequest
# What stream() takes: a ready request, or an edit whose images are still local.
Job = TextToImageRequest | EditRequest | EditDraft


class ImageClient:
    """Runs requests against fal's queue with per-call keys and a deadline."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        # Each HTTP attempt gives up when a call would (`_call`); the whole request
        # is the deadline's.
        self._fal = fal.Clients(timeout_s=min(settings.call_timeout_s, settings.request_timeout_s))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: httpx.AsyncClient | None = None
        fal.point_uploads_at(settings.fal_rest_url, settings.fal_cdn_url)

    # -- clients -----------------------------------------------------------

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
        # An httpx client belongs to the loop that made it (fal.Clients does the same).
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._http = None

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        await self._fal.aclose()

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
        submission: fal.Submission | None = None
        completed = False  # once fal says COMPLETED there is nothing left to cancel
        try:
            client = self._fal.for_key(key.key)
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
            # fal drops the request itself if it has not started by the queue timeout,
            # even if this process is gone by then.
            submitting = client.submit(
                endpoint, arguments, start_timeout=self._settings.queue_timeout_s
            )
            # No watchdog here: with that header sent, fal_client does not retry a
            # submit that timed out (its _should_retry), so one attempt's timeout
            # (call_timeout_s) is the whole wait, while its retries of answers (a
            # 429 storm) still end in their own sentence.
            submission = await _within(deadline, submitting)
            request_id = submission.request_id
            log.info("submitted %s request %s (%s)", endpoint, request_id, key.source)
            yield Submitted(request_id, time.monotonic() - started)

            queued_until = running_since = submitted = time.monotonic()
            seen_running = False
            last: fal.Status | None = None
            # The statuses come from fal's status stream, or from polls if it fails
            # (`_watch`, in its own task). Between them the last one is said again on
            # the polls' old beat (no request): elapsed time stays live and the queue
            # timeout is kept, whichever mode is in use.
            statuses: asyncio.Queue[fal.Status | Exception] = asyncio.Queue()
            watcher = asyncio.ensure_future(self._watch(submission, deadline, submitted, statuses))
            try:
                while True:
                    interval = _poll_interval(
                        time.monotonic() - submitted, self._settings.poll_interval_s
                    )
                    item = await _next_or_none(statuses, deadline, interval)
                    if isinstance(item, Exception):
                        raise item
                    now = time.monotonic()
                    status = last = item or last
                    if status is None:
                        continue
                    if isinstance(status, fal.InQueue):
                        if now - submitted >= self._settings.queue_timeout_s:
                            raise _StuckInQueue()
                        queued_until = now
                        yield Queued(request_id, status.position, now - started)
                    elif isinstance(status, fal.InProgress):
                        if not seen_running:
                            seen_running, running_since = True, now
                        yield Running(request_id, status.logs, now - started)
                    else:
                        done = status
                        if not seen_running:
                            running_since = queued_until
                        break
            except BaseException:
                watcher.cancel()
                await asyncio.gather(watcher, return_exceptions=True)
                raise
            # After COMPLETED the watcher ends by itself, closing its stream: it is
            # awaited, not cancelled, since a cancel in the middle of closing a
            # response leaves its connection taken in the pool for good.
            await watcher

            completed = True
            completed_at = time.monotonic()
            output = await self._result_of(submission, done, deadline)
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
                shown = shown_from_fal(images_json, self._settings.fal_cdn_url)
                yield Fetching(request_id, len(images_json), time.monotonic() - started, shown)
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
                metrics=done.metrics,
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
            if submission is not None and not completed:
                await _cancel_quietly(submission)
                log.info("cancelled request %s at the user's request", submission.request_id)
            raise
        except Exception as exc:
            error = self._as_studio_error(exc, submitted=submission is not None)
            if submission is not None and not completed:
                # Given up (deadline, network, an error while polling): fal must stop too.
                await _cancel_quietly(submission)
            where = submission.request_id if submission is not None else "before submission"
            log.warning(
                "request %s failed: %s: %s",
                where,
                type(error).__name__,
                redact(error.detail or error.message, key.key),
            )
            if isinstance(error, InternalError):
                log.error("unexpected failure:\n%s", redact(_traceback(exc), key.key))
            raise error from None

    async def _watch(
        self,
        submission: fal.Submission,
        deadline: float,
        submitted: float,
        out: asyncio.Queue[fal.Status | Exception],
    ) -> None:
        """Put each status of the request into `out`, up to COMPLETED; a failure too.

        First fal's status stream (one connection for the whole wait); if it is
        refused, breaks, or ends before COMPLETED, one more stream; then polls, as
        before the stream existed, for the rest of this request.
        """
        try:
            if self._settings.status_stream:
                for attempt in (1, 2):
                    try:
                        statuses = submission.statuses(
                            with_logs=True,
                            open_s=self._settings.call_timeout_s,
                            idle_s=STREAM_IDLE_S,
                        )
                        async with contextlib.aclosing(statuses):
                            async for status in statuses:
                                out.put_nowait(status)
                                if isinstance(status, fal.Completed):
                                    return
                    except fal.StreamFailed as exc:
                        # A stream fal does not answer at all is not tried again: the
                        # polls that follow are bounded like any call, and say so.
                        last_try = attempt == 2 or exc.unanswered
                        then = "polling instead" if last_try else "reconnecting"
                        log.info(
                            "status stream of %s %s; %s", submission.request_id, exc.reason, then
                        )
                        if last_try:
                            break
            # Polls keep their own beat: under load, when an answer takes longer than
            # the beat, half a beat of rest still follows it, so slow answers do not
            # mean back-to-back polls.
            beat = time.monotonic()
            while True:
                status = await self._call(deadline, submission.status(), "status")
                out.put_nowait(status)
                if isinstance(status, fal.Completed):
                    return
                now = time.monotonic()
                interval = _poll_interval(now - submitted, self._settings.poll_interval_s)
                beat = max(beat + interval, now + interval / 2)
                await asyncio.sleep(max(0.0, beat - time.monotonic()))
        except Exception as exc:  # handed to the request, which says it in a sentence
            out.put_nowait(exc)

    async def _call(self, deadline: float, call: Awaitable[T], name: str) -> T:
        """A status or result call, within the request's deadline and within
        `call_timeout_s` of its own, fal_client's retries included: fal_client waits
        up to 120 s per attempt there and retries timeouts, so a hang would
        otherwise take many minutes to surface."""
        limit = self._settings.call_timeout_s
        if deadline - time.monotonic() <= limit:
            return await _within(deadline, call)
        try:
            async with asyncio.timeout(limit):
                return await call
        except TimeoutError:
            raise _NoAnswer(name) from None

    async def _result_of(
        self, submission: fal.Submission, done: fal.Completed, deadline: float
    ) -> Any:
        """The output of a COMPLETED request, or the error it completed with.

        On COMPLETED with an error the result is fetched anyway: a 422 there carries
        fal's `detail` list (what exactly was refused). A 5xx there only repeats the
        failure, and the status' own `error` says more.
        """
        try:
            output = await self._call(deadline, submission.result(), "result")
        except fal.FalHTTPError as exc:
            if done.error and (exc.status_code >= 500 or _is_cancel_error(done.error)):
                raise _completed_failure(done) from None
            raise
        if done.error:
            raise _completed_failure(done)
        return output

    def _as_studio_error(self, exc: Exception, *, submitted: bool) -> StudioError:
        """What the user is told about `exc`; its technical side goes to `detail`.

        fal's failures arrive as StudioErrors (backend/fal.py reads them: unreadable
        answers, network trouble) or as `FalHTTPError`; our own time limits as
        `_DeadlinePassed`, `_NoAnswer` and `_StuckInQueue`. Anything else is a bug of
        ours, and says so: calling it fal's fault would send the user to retry what
        will fail again.
        """
        settings = self._settings
        if isinstance(exc, StudioError):
            return exc
        if isinstance(exc, _DeadlinePassed):
            return deadline_exceeded(settings.request_timeout_s, submitted=submitted)
        if isinstance(exc, _NoAnswer):
            return no_answer(exc.call, settings.call_timeout_s, submitted=submitted)
        if isinstance(exc, _StuckInQueue):
            return stuck_in_queue(settings.queue_timeout_s)
        if isinstance(exc, fal.FalHTTPError):
            return from_http_status(exc.status_code, exc.detail, exc.error_type)
        return InternalError(detail=f"unexpected {type(exc).__name__}: {exc}"[:300])


async def _next_or_none(
    queue: asyncio.Queue[fal.Status | Exception], deadline: float, wait_s: float
) -> fal.Status | Exception | None:
    """The next item of `queue`, or None after `wait_s` without one; the deadline
    raises `_DeadlinePassed`."""
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise _DeadlinePassed()
    try:
        async with asyncio.timeout(min(wait_s, remaining)):
            return await queue.get()
    except TimeoutError:
        if time.monotonic() >= deadline:
            raise _DeadlinePassed() from None
        return None


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
# Silence on a status stream (fal sends a heartbeat comment every 15 s) after which
# it counts as broken: two heartbeats missed, and some slack.
STREAM_IDLE_S = 40.0


class _DeadlinePassed(Exception):
    pass


class _NoAnswer(Exception):
    """One call to fal got no answer within `call_timeout_s`."""

    def __init__(self, call: str) -> None:
        super().__init__(call)
        self.call = call


class _StuckInQueue(Exception):
    """The request was still in fal's queue at `queue_timeout_s`."""


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


async def _cancel_quietly(submission: fal.Submission) -> None:
    """Ask fal to cancel; shielded so a cancelled caller still sends it."""
    try:
        await asyncio.shield(asyncio.wait_for(submission.cancel(), 10))
    except (Exception, asyncio.CancelledError) as exc:  # best effort: we are already failing
        log.info("cancel of %s not confirmed: %s", submission.request_id, type(exc).__name__)


def _completed_failure(done: fal.Completed) -> StudioError:
    if _is_cancel_error(done.error):
        return Cancelled(detail=f"completed as cancelled: {done.error}")
    return from_completed_error(done.error, done.error_type)


def _traceback(exc: BaseException) -> str:
    return "".join(traceback.format_exception(exc)).rstrip()


def _is_cancel_error(error: Any) -> bool:
    return "cancel" in str(error).lower()
