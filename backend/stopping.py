"""The Stop button, for any stream of events: stop at once, cancel what was under way.

A run's events come from an async generator that owns requests at fal. Stopping
cancels the step under way, which makes the generator cancel its requests at
fal (its CancelledError branch); that cancel finishes in the background, so the
caller, and the page, are free at once instead of after fal's answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from backend.errors import Cancelled
from backend.progress import Uploading, Waiting

E = TypeVar("E")

# Steps abandoned by `until_stopped`, finishing their cancel at fal in the background.
_ABANDONED: set[asyncio.Future[Any]] = set()


async def until_stopped(
    events: AsyncIterator[E],
    stop: asyncio.Event,
) -> AsyncIterator[E]:
    """`events` until `stop` is set, then `Cancelled` at once.

    Any event but `Waiting` (for a slot here) and `Uploading` shows that something
    was sent to fal: stopped before one, the sentence says nothing was sent.
    """
    sent = False
    abandoned = False
    waiter = asyncio.ensure_future(stop.wait())
    try:
        while True:
            step = asyncio.ensure_future(_next(events))
            try:
                await asyncio.wait({step, waiter}, return_when=asyncio.FIRST_COMPLETED)
            except asyncio.CancelledError:
                abandoned = True
                _abandon(step)  # the caller went away: so does the request
                raise
            if not step.done():
                abandoned = True
                _abandon(step)
                if sent:
                    raise Cancelled()
                raise Cancelled("Stopped before anything was sent to fal.")
            done, event = step.result()
            if done:
                return
            sent = sent or not isinstance(event, Waiting | Uploading)
            yield event
    finally:
        waiter.cancel()
        if not abandoned:
            # Ended or left early (a caller that has its result): `events` is
            # closed now, so whatever it holds (a slot, a request) goes at once.
            # An abandoned step closes it itself as its cancellation unwinds.
            await aclose(events)


@asynccontextmanager
async def closing(events: AsyncIterator[E]) -> AsyncIterator[AsyncIterator[E]]:
    """`events`, closed when the block ends, however it ends (contextlib.aclosing for
    any async iterator: an async generator left early is otherwise only closed
    whenever it is garbage-collected)."""
    try:
        yield events
    finally:
        await aclose(events)


async def aclose(events: AsyncIterator[Any]) -> None:
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()


async def _next(events: AsyncIterator[E]) -> tuple[bool, Any]:
    """(True, None) at the end, else (False, event): a task must not raise
    StopAsyncIteration, and None may be an event."""
    try:
        return False, await anext(events)
    except StopAsyncIteration:
        return True, None


def _abandon(step: asyncio.Future[Any]) -> None:
    step.cancel()
    _ABANDONED.add(step)
    step.add_done_callback(_ABANDONED.discard)
