"""One core per endpoint's run, and the two thin ways to call it: the page and the API.

`run_outputs` turns the run service's progress into what the result panel shows:
status lines while it runs, then the images, their record and a sentence. The
page's wrapper ends a failure quietly (its sentence is already in the status
line) and hands the browser its history id; the API's wrapper raises the same
sentence as `gr.Error`, which programs receive as an exception.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import gradio as gr

from backend.endpoints import Endpoint
from backend.schema import GenerationResult
from backend.service import (
    Caller,
    Cancelled,
    Fetching,
    Finished,
    InternalError,
    Progress,
    RunService,
    StudioError,
    Waiting,
    closing,
)
from ui.progress import describe_error, describe_progress, describe_result

log = logging.getLogger("studio.ui")

# A streamed status update at most this often: elapsed time stays live without
# flooding many browsers with a message per queue poll.
_STATUS_EVERY_S = 0.4
# API callers get a status line when something changes (the state, the place in
# fal's queue, a new log line), and one with only the elapsed time newer at most
# this often: each line is a round trip through Gradio's queue (processing, an
# event-stream message to the caller), most of what the app spends per request
# under a burst, and programs rarely show a ticking clock.
_API_STATUS_EVERY_S = 2.0

# While a run is under way, its results area is empty (None), not left as it was
# with gr.skip(): for each skip Gradio builds a fresh copy of the component and its
# config for the session (18 ms on the event loop, and memory kept per session).
# The previous results stay in the History panel.
CLEARED = (None, None)

Outputs = tuple[Any, Any, str]
Build = Callable[[], Awaitable[Any]]


def caller_of(
    service: RunService,
    request: gr.Request | None,
    fal_key: str | None,
    *,
    browser_id: str = "",
    page: bool = False,
) -> Caller:
    """Who is asking: their address (for their share), their page session (for
    its Stop button), their browser (for its history) and their key."""
    if request is None:
        return Caller("local", fal_key=fal_key or "")
    client = getattr(request, "client", None)
    return service.caller(
        getattr(client, "host", None),
        dict(request.headers),
        session=(request.session_hash or "") if page else None,
        browser_id=browser_id,
        fal_key=fal_key,
    )


async def run_outputs(
    service: RunService,
    endpoint: Endpoint,
    build: Build,
    caller: Caller,
    *,
    in_page: bool = False,
    finished: list[GenerationResult] | None = None,
) -> AsyncIterator[Outputs]:
    """Status lines as the run goes, then (images, record, sentence).

    `in_page`: results hosted on fal's media hosts are shown from there (the
    browser fetches them in one hop), as soon as fal has them. For the API the
    images stay the app's own files: gradio_client downloads every file output
    through this server, which does not serve other hosts' URLs. API callers find
    fal's URLs in the record.

    `finished`, if given, receives the run's result: a page handler that adds
    extras (the Edit tab's composite) reads the app's own copies from it.

    A failure yields its sentence, then raises StudioError. A bug of ours is
    logged with its traceback and said as such, never passed off as fal's.
    """
    events = service.run(endpoint, build, caller)
    cdn = service.settings.fal_cdn_url
    async for outputs in shown(events, endpoint.tab, cdn, in_page=in_page, finished=finished):
        yield outputs


async def shown(
    events: AsyncIterator[Progress],
    tab: str,
    cdn: str | None,
    *,
    in_page: bool = False,
    finished: list[GenerationResult] | None = None,
) -> AsyncIterator[Outputs]:
    """A run's events as the result panel shows them (see `run_outputs`)."""
    last_sent = 0.0
    last_said: Any = None  # the last line sent, its elapsed time aside (API only)
    every = _STATUS_EVERY_S if in_page else _API_STATUS_EVERY_S
    try:
        # Closed as soon as this ends: the run's saving of outputs, and its slot,
        # end with the event, not whenever the generator is collected.
        async with closing(events):
            async for event in events:
                if isinstance(event, Finished):
                    result = event.result
                    if finished is not None:
                        finished.append(result)
                    gallery = [
                        (image.shown_at(cdn) if in_page else image.path, image.caption())
                        for image in result.images
                    ]
                    yield gallery, result.record(), describe_result(result)
                    return
                if in_page and isinstance(event, Fetching) and event.shown:
                    # Results in one hop: the browser fetches them from fal's CDN now,
                    # while the app downloads its own copies.
                    last_sent = time.monotonic()
                    first_look = [(image.url, image.caption) for image in event.shown]
                    yield first_look, None, describe_progress(event, shown=True)
                    continue
                now = time.monotonic()
                said = None if in_page else dataclasses.replace(event, elapsed_s=0.0)
                if (
                    now - last_sent >= every
                    or isinstance(event, Waiting)
                    or (not in_page and said != last_said)
                ):
                    last_sent, last_said = now, said
                    yield *CLEARED, describe_progress(event)
    except StudioError as exc:
        stopped = isinstance(exc, Cancelled)
        yield *CLEARED, f"⏹️ {exc.message}" if stopped else describe_error(exc.message)
        raise
    except Exception as exc:
        log.exception("a run of %s failed on our side", tab)
        error = InternalError()
        yield *CLEARED, describe_error(error.message)
        raise error from exc


def wire_resume(demo: gr.Blocks, service: RunService, tab: str, panel: Any, shared: Any) -> None:
    """A reopened page follows this browser's run under way in `tab` (it went on
    while no page was open), with live progress, then its results; History is
    refreshed once it has ended. A page with no such run gets no update at all."""
    history_outputs = len(shared.history_outputs)

    async def resume(
        browser_id: str, search: str, tab_filter: str, everyone: bool, request: gr.Request
    ) -> AsyncIterator[Any]:
        """(`shared.history_inputs`: the browser's id, then the History tab's filters.)"""
        runs = service.live_runs(browser_id, tab)
        unchanged = (gr.skip(),) * history_outputs
        if not runs:
            # One update that changes nothing: a generator that yields nothing would
            # end with every output set to None (History's total cleared).
            yield (gr.skip(),) * 3 + unchanged
            return
        live = runs[-1]
        yield *CLEARED, f"⏳ Still running from before: {live.prompt[:80]}", *unchanged
        events = service.follow(live.run_id, request.session_hash)
        try:
            cdn = service.settings.fal_cdn_url
            async for outputs in shown(events, tab, cdn, in_page=True):
                yield *outputs, *unchanged
        except StudioError:
            pass
        history = await shared.show_history(browser_id, search, tab_filter, everyone)
        yield (*(gr.skip(),) * 3, *history)

    demo.load(
        resume,
        shared.history_inputs,
        [*panel.outputs(), *shared.history_outputs],
        api_visibility="private",
        show_progress="hidden",
    )


async def for_api(outputs: AsyncIterator[Outputs]) -> AsyncIterator[Outputs]:
    """The public API: the same outputs, a failure raised as its sentence."""
    try:
        async for item in outputs:
            yield item
    except StudioError as exc:
        raise gr.Error(exc.message, print_exception=False) from None


async def for_page(outputs: AsyncIterator[Outputs], browser_id: str) -> AsyncIterator[Any]:
    """The page: the same outputs plus the browser's history id with the results.

    A failure ends quietly: its sentence is already in the status line (a raised
    error would stamp a bare "Error" over the results)."""
    sent = False
    try:
        async for gallery, record, status in outputs:
            # A skip is cheap here: the browser id is state, not a component. It is
            # sent with the first update: the run is in this browser's history from
            # its start, and a page reloaded mid-run finds it by that id.
            yield gallery, record, status, gr.skip() if sent else browser_id
            sent = True
    except StudioError:
        return


def wire_stop(button: gr.Button, service: RunService, tab: str) -> None:
    """Stop ends the page's run in `tab` itself: it ends at once with a "Stopped"
    line and the request is cancelled at fal. (Not Gradio's `cancels=`: a cancelled
    event sometimes ends as failed in the browser, stamping a bare "Error" on the
    page.) queue=False: it never waits in line."""

    def stop(request: gr.Request) -> None:
        service.stop(request.session_hash, tab)

    button.click(stop, None, None, api_visibility="private", queue=False)
