"""Fair shares of the app's capacity: every call runs at once while there is room,
and when there is none, each freed slot goes to the visitor with the fewest runs.

- Work-conserving: while fewer than `capacity` runs are under way, a call starts
  at once, whoever sends it (one program's 32 simultaneous calls run together).
- At capacity, calls wait. A freed slot goes to the waiting visitor with the
  fewest runs under way (the earliest waiter among equals), and within a visitor
  to its oldest call: 100 calls from one visitor never make another wait behind
  them all.
- A visitor may have at most `max_waiting` calls waiting; one more is refused in
  a sentence. Nothing else is ever refused.
- A waiting call that is cancelled (Stop, a deadline, a closed connection) leaves
  the line at once.

Everything runs on the event loop: no locks, no threads.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from backend.errors import StudioError


class TooManyWaiting(StudioError):
    default_message = (
        "You already have the most runs waiting that this app allows. "
        "Wait for some to finish (or stop some), then try again."
    )


@dataclass(frozen=True)
class Place:
    """Where a waiting call stands."""

    yours_ahead: int  # this visitor's calls waiting before this one
    running: int  # this visitor's calls running now
    waiting: int  # every call waiting, all visitors


@dataclass(eq=False)
class _Ticket:
    visitor: str
    order: int
    granted: asyncio.Event = field(default_factory=asyncio.Event)


class Scheduler:
    def __init__(self, capacity: int, max_waiting: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.max_waiting = max_waiting
        self._running: dict[str, int] = defaultdict(int)
        self._waiting: dict[str, deque[_Ticket]] = defaultdict(deque)
        self._orders = itertools.count()
        self._changed = asyncio.Event()  # set (and replaced) whenever the line moves

    @property
    def running_total(self) -> int:
        return sum(self._running.values())

    @property
    def waiting_total(self) -> int:
        return sum(len(line) for line in self._waiting.values())

    def running(self, visitor: str) -> int:
        return self._running.get(visitor, 0)

    @asynccontextmanager
    async def slot(self, visitor: str) -> AsyncIterator[_Wait]:
        """Hold a slot for a run. Entering may wait; iterate the value to follow
        the wait (`async for place in wait`), or `await wait.granted()`."""
        ticket = self._enter(visitor)
        wait = _Wait(self, ticket)
        try:
            yield wait
        finally:
            self._leave(ticket)

    def place_of(self, ticket: _Ticket) -> Place:
        line = self._waiting.get(ticket.visitor, deque())
        ahead = next((i for i, t in enumerate(line) if t is ticket), 0)
        return Place(ahead, self.running(ticket.visitor), self.waiting_total)

    # -- the line --------------------------------------------------------------------

    def _enter(self, visitor: str) -> _Ticket:
        ticket = _Ticket(visitor, next(self._orders))
        if self.running_total < self.capacity and not self.waiting_total:
            self._start(ticket)
            return ticket
        line = self._waiting[visitor]
        if self.max_waiting and len(line) >= self.max_waiting:
            if not line:
                del self._waiting[visitor]
            plural = "run" if self.max_waiting == 1 else "runs"
            raise TooManyWaiting(
                f"You already have {len(line)} {plural} waiting for a free slot, the most "
                "this app allows. Wait for some to finish (or stop some), then try again."
            )
        line.append(ticket)
        self._moved()
        return ticket

    def _leave(self, ticket: _Ticket) -> None:
        if ticket.granted.is_set():
            left = self._running[ticket.visitor] - 1
            if left:
                self._running[ticket.visitor] = left
            else:
                del self._running[ticket.visitor]
        else:
            # Cancelled while waiting (Stop, a deadline, a closed tab): out of line at once.
            line = self._waiting.get(ticket.visitor)
            if line is not None and ticket in line:
                line.remove(ticket)
                if not line:
                    del self._waiting[ticket.visitor]
        self._fill()
        self._moved()

    def _fill(self) -> None:
        """Give free slots to the waiting visitors with the fewest runs under way."""
        while self.running_total < self.capacity and self._waiting:
            visitor = min(self._waiting, key=lambda v: (self.running(v), self._waiting[v][0].order))
            line = self._waiting[visitor]
            ticket = line.popleft()
            if not line:
                del self._waiting[visitor]
            self._start(ticket)

    def _start(self, ticket: _Ticket) -> None:
        self._running[ticket.visitor] += 1
        ticket.granted.set()

    def _moved(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()


class _Wait:
    """A call's wait for its slot."""

    def __init__(self, scheduler: Scheduler, ticket: _Ticket) -> None:
        self._scheduler = scheduler
        self._ticket = ticket

    @property
    def started(self) -> bool:
        return self._ticket.granted.is_set()

    async def granted(self) -> None:
        await self._ticket.granted.wait()

    def __aiter__(self) -> AsyncIterator[Place]:
        return self._places()

    async def _places(self) -> AsyncIterator[Place]:
        """The call's place each time the line moves, until its slot is granted."""
        while not self.started:
            yield self._scheduler.place_of(self._ticket)
            changed = asyncio.ensure_future(self._scheduler._changed.wait())
            granted = asyncio.ensure_future(self._ticket.granted.wait())
            try:
                await asyncio.wait({changed, granted}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                changed.cancel()
                granted.cancel()
