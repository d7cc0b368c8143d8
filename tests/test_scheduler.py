"""The scheduler and visitor identity on their own: fair shares, the waiting line,
and X-Forwarded-For believed from trusted proxies only."""

from __future__ import annotations

import asyncio

import pytest

from backend import Settings, TextToImageRequest
from backend.errors import Cancelled, DeadlineExceeded
from backend.progress import Submitted, Waiting
from backend.scheduler import Scheduler, TooManyWaiting
from backend.service import Caller, RunService
from backend.visitors import TrustedProxies
from tests.conftest import HOST_KEY


async def hold(scheduler: Scheduler, visitor: str, started: list[str], release: asyncio.Event):
    async with scheduler.slot(visitor) as wait:
        await wait.granted()
        started.append(visitor)
        await release.wait()


async def test_while_there_is_room_every_call_starts_at_once():
    scheduler = Scheduler(capacity=32, max_waiting=64)
    started: list[str] = []
    release = asyncio.Event()
    tasks = [
        asyncio.create_task(hold(scheduler, "one-program", started, release)) for _ in range(32)
    ]
    await asyncio.sleep(0.05)
    assert len(started) == 32, "one visitor's 32 calls all run together"
    assert scheduler.running("one-program") == 32
    release.set()
    await asyncio.gather(*tasks)
    assert scheduler.running_total == 0


async def test_a_freed_slot_goes_to_the_visitor_with_the_fewest_runs():
    scheduler = Scheduler(capacity=2, max_waiting=64)
    started: list[str] = []
    releases = [asyncio.Event() for _ in range(12)]
    tasks = []
    for n in range(10):  # the greedy visitor fills the app and queues eight more
        tasks.append(asyncio.create_task(hold(scheduler, "greedy", started, releases[n])))
        await asyncio.sleep(0)
    for n in range(2):  # then a patient one arrives
        tasks.append(asyncio.create_task(hold(scheduler, "patient", started, releases[10 + n])))
        await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    assert started == ["greedy", "greedy"]
    releases[0].set()  # greedy has 1 running, patient 0: patient goes first
    await asyncio.sleep(0.01)
    assert started[-1] == "patient"
    releases[1].set()  # greedy 0 running, patient 1: greedy's oldest waiting call
    await asyncio.sleep(0.01)
    assert started[-1] == "greedy"
    releases[10].set()  # patient 0, greedy 1: patient's second call
    await asyncio.sleep(0.01)
    assert started[-1] == "patient"
    assert started.count("patient") == 2, "both of patient's calls ran before greedy's rest"
    for release in releases:
        release.set()
    await asyncio.gather(*tasks)
    assert started.count("greedy") == 10


async def test_waiting_calls_see_their_place_and_one_too_many_is_refused():
    scheduler = Scheduler(capacity=1, max_waiting=2)
    release = asyncio.Event()
    running = asyncio.create_task(hold(scheduler, "a", [], release))
    await asyncio.sleep(0)
    lines: dict[str, list[int]] = {"first": [], "second": []}

    async def wait_in_line(name: str) -> None:
        async with scheduler.slot("a") as wait:
            async for place in wait:
                lines[name].append(place.yours_ahead)

    first = asyncio.create_task(wait_in_line("first"))
    await asyncio.sleep(0)
    second = asyncio.create_task(wait_in_line("second"))
    await asyncio.sleep(0.01)
    assert (lines["first"][-1], lines["second"][-1]) == (0, 1)
    with pytest.raises(TooManyWaiting) as refused:
        async with scheduler.slot("a"):
            pass
    assert "2 runs waiting for a free slot, the most this app allows" in refused.value.message
    first.cancel()  # the one ahead is stopped: the second moves up
    await asyncio.sleep(0.01)
    assert lines["second"][-1] == 0
    release.set()
    await asyncio.gather(running, second)
    assert scheduler.running_total == 0 and scheduler.waiting_total == 0


async def test_a_cancelled_waiting_call_leaves_the_line_at_once():
    scheduler = Scheduler(capacity=1, max_waiting=64)
    release = asyncio.Event()
    running = asyncio.create_task(hold(scheduler, "a", [], release))
    await asyncio.sleep(0)
    started: list[str] = []
    stopped = asyncio.create_task(hold(scheduler, "b", started, asyncio.Event()))
    await asyncio.sleep(0.01)
    assert scheduler.waiting_total == 1
    stopped.cancel()  # Stop, a deadline or a closed connection
    await asyncio.sleep(0.01)
    assert scheduler.waiting_total == 0
    release.set()
    await running
    assert started == [] and scheduler.running_total == 0


PROXIES = TrustedProxies.of(["127.0.0.0/8", "10.0.0.0/8"])


@pytest.mark.parametrize(
    ("peer", "forwarded", "visitor"),
    [
        # Through trusted proxies: the right-most hop that is not one of them.
        ("127.0.0.1", "203.0.113.7", "203.0.113.7"),
        ("10.1.2.3", "203.0.113.7, 10.0.0.9", "203.0.113.7"),
        # A client's own entries on the left change nothing.
        ("127.0.0.1", "1.1.1.1, 203.0.113.7", "203.0.113.7"),
        ("127.0.0.1", "anything at all, 203.0.113.7", "203.0.113.7"),
        # A peer that is not a trusted proxy is the visitor, whatever it says.
        ("198.51.100.4", "1.1.1.1", "198.51.100.4"),
        ("198.51.100.4", "", "198.51.100.4"),
        # No header behind a trusted proxy: the proxy itself.
        ("127.0.0.1", "", "127.0.0.1"),
    ],
)
def test_the_visitor_is_the_right_most_hop_that_is_not_a_trusted_proxy(peer, forwarded, visitor):
    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    assert PROXIES.visitor(peer, headers) == visitor


class Forever:
    """An image generator whose requests never finish (a test's own, injected)."""

    async def stream(self, job, key):
        yield Submitted("forever", 0.0)
        await asyncio.Event().wait()


async def test_a_call_that_never_gets_a_slot_ends_at_the_deadline_and_leaves_the_line(tmp_path):
    settings = Settings(fal_key=HOST_KEY, results_dir=tmp_path, concurrency_limit=1)
    # Below the 5 s a host may set (model_copy skips that check): a test needs no longer.
    service = RunService(
        settings.model_copy(update={"request_timeout_s": 0.5}), fal=Forever(), demo=Forever()
    )
    endpoint = service.endpoints.text_to_image

    async def build():
        return TextToImageRequest.parse(prompt="p")

    async def consume(caller: Caller) -> list[object]:
        return [event async for event in service.run(endpoint, build, caller)]

    holder = asyncio.create_task(consume(Caller("198.51.100.1")))
    await asyncio.sleep(0.05)
    with pytest.raises(DeadlineExceeded) as caught:
        await consume(Caller("198.51.100.2"))
    assert "waited for a free slot and was never sent" in caught.value.message
    assert service.scheduler.waiting_total == 0 and service.scheduler.running_total == 1
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
    assert service.scheduler.running_total == 0


async def test_stop_frees_a_waiting_calls_place_and_says_nothing_was_sent(tmp_path):
    settings = Settings(fal_key=HOST_KEY, results_dir=tmp_path, concurrency_limit=1)
    service = RunService(settings, fal=Forever(), demo=Forever())
    endpoint = service.endpoints.text_to_image

    async def build():
        return TextToImageRequest.parse(prompt="p")

    seen: list[object] = []

    async def consume(caller: Caller) -> None:
        async for event in service.run(endpoint, build, caller):
            seen.append(event)

    holder = asyncio.create_task(consume(Caller("198.51.100.1")))
    await asyncio.sleep(0.05)
    waiting = asyncio.create_task(consume(Caller("198.51.100.2", session="page-2")))
    await asyncio.sleep(0.05)
    assert service.scheduler.waiting_total == 1
    assert any(isinstance(event, Waiting) for event in seen)
    service.stop("page-2", endpoint.tab)
    with pytest.raises(Cancelled) as caught:
        await waiting
    assert caught.value.message == "Stopped before anything was sent to fal."
    assert service.scheduler.waiting_total == 0
    holder.cancel()
    with pytest.raises(asyncio.CancelledError):
        await holder
