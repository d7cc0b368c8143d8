"""fal's status stream: requests follow it, fall back to polling when it fails, and
report the same progress either way (the real fal_client and ImageClient against
the fake, over HTTPS)."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path

import httpx
import pytest

from backend import (
    Fetching,
    Finished,
    ImageClient,
    Progress,
    Queued,
    Running,
    Settings,
    Submitted,
    TextToImageRequest,
    choose_key,
)
from backend.errors import Cancelled, DeadlineExceeded
from tests.fakefal import FakeFal, Fault

KEY = "cccccccc-0000-4000-8000-00000000000c:cccccccccccccccccccccccccccccccc"


def settings_for(tmp_path: Path, **overrides) -> Settings:
    values = {
        "fal_key": KEY,
        "results_dir": tmp_path,
        "request_timeout_s": 30,
        "poll_interval_s": 0.05,
        **overrides,
    }
    return Settings(**values)


@pytest.fixture
async def client(tmp_path: Path, fake):
    image_client = ImageClient(settings_for(tmp_path))
    yield image_client
    await image_client.aclose()


def request(prompt: str = "a quiet harbour", **values) -> TextToImageRequest:
    return TextToImageRequest.parse(prompt=prompt, **values)


def traffic(fake: FakeFal, request_id: str) -> dict[str, int]:
    """How the app asked about one request: streams, polls, result fetches."""
    counts = {"stream": 0, "poll": 0, "result": 0}
    for record in fake.http_log:
        if request_id not in record.path:
            continue
        if record.path.endswith("/status/stream"):
            counts["stream"] += 1
        elif record.path.endswith("/status"):
            counts["poll"] += 1
        elif record.method == "GET":
            counts["result"] += 1
    return counts


async def run(client: ImageClient, job=None) -> list[Progress]:
    return [e async for e in client.stream(job or request(), choose_key(KEY, None))]


async def until(fake: FakeFal, predicate, what: str) -> None:
    """Wait in a thread: the client's event loop (this one) keeps running."""
    await asyncio.to_thread(fake.wait_until, predicate, 10, what)


def request_id_of(events: list[Progress]) -> str:
    return next(e.request_id for e in events if isinstance(e, Submitted))


async def test_a_request_follows_one_stream_and_never_polls(client, fake):
    fake.queue_time = 0.3
    fake.latency = 0.4
    events = await run(client, request(num_images=2))
    assert isinstance(events[-1], Finished)
    rid = request_id_of(events)
    assert traffic(fake, rid) == {"stream": 1, "poll": 0, "result": 1}
    [stream] = [r for r in fake.http_log if r.path.endswith("/status/stream")]
    assert stream.query == {"logs": "1"} and stream.status == 200
    # Every status change of the request was an event on that stream.
    assert fake.stream_events >= 4  # queued (x3 positions), in progress..., completed
    kinds = [type(e) for e in events]
    assert kinds.index(Queued) < kinds.index(Running) < kinds.index(Fetching)


async def test_every_log_line_arrives_once_in_order(client, fake):
    fake.latency = 0.4
    events = await run(client, request(num_images=3))
    rid = request_id_of(events)
    sent = [entry["message"] for entry in fake.submission(rid).logs]
    running = [e for e in events if isinstance(e, Running)]
    for event in running:
        assert list(event.logs) == sent[: len(event.logs)], "the lines so far, none twice"
    assert any("Generating image 3 of 3" in line for line in running[-1].logs)


@pytest.mark.parametrize(
    ("fault", "streams"),
    [
        (Fault.stream_refused(), 2),
        (Fault.stream_breaks(after=1), 2),
        # Two tries of ours, each sent twice: aiohttp (under the adapter after the
        # submit) sends an idempotent GET again, once, when its connection drops
        # before any answer (RFC 9112, 9.3.1). An answer, even a broken one, is not.
        (Fault.drop_connection("stream"), 4),
    ],
    ids=["refused-404", "breaks-midway", "dropped"],
)
async def test_a_failing_stream_is_tried_once_more_then_polling_takes_over(
    client, fake, fault, streams
):
    fake.latency = 0.5
    fake.inject(fault)
    events = await run(client)
    assert isinstance(events[-1], Finished)
    counts = traffic(fake, request_id_of(events))
    assert counts["stream"] == streams
    assert counts["poll"] >= 1 and counts["result"] == 1


async def test_a_stream_that_breaks_once_is_reconnected_without_polling(client, fake):
    fake.latency = 0.5
    fake.inject(Fault.stream_breaks(after=1, hits=1))
    events = await run(client)
    assert isinstance(events[-1], Finished)
    assert traffic(fake, request_id_of(events)) == {"stream": 2, "poll": 0, "result": 1}


def shape(events: list[Progress]) -> list[str]:
    """The progress a user sees, without its timing: each kind of event in order
    (repeats of the same kind folded), and the log lines of the last Running."""
    kinds: list[str] = []
    for event in events:
        name = type(event).__name__
        if not kinds or kinds[-1] != name:
            kinds.append(name)
    return kinds


async def test_progress_is_the_same_with_the_stream_and_with_polls(tmp_path, fake):
    fake.queue_time = 0.45
    fake.latency = 0.6
    seen = {}
    for mode in ("stream", "poll"):
        client = ImageClient(settings_for(tmp_path / mode, status_stream=mode == "stream"))
        try:
            events = await run(client, request(num_images=2))
        finally:
            await client.aclose()
        rid = request_id_of(events)
        counts = traffic(fake, rid)
        assert (counts["stream"], counts["poll"] > 0) == (
            (1, False) if mode == "stream" else (0, True)
        )
        seen[mode] = events
    assert (
        shape(seen["stream"])
        == shape(seen["poll"])
        == [
            "Submitted",
            "Queued",
            "Running",
            "Fetching",
            "Finished",
        ]
    )
    for mode, events in seen.items():
        positions = [e.position for e in events if isinstance(e, Queued)]
        assert positions == sorted(positions, reverse=True), mode
        # Between changes the status is said again on the polls' beat, as polls did.
        assert sum(isinstance(e, Running) for e in events) >= 3, mode


async def test_stop_while_streaming_cancels_at_fal(client, fake):
    fake.inject(Fault.never_finish())
    events: list[Progress] = []

    async def consume():
        async for event in client.stream(request(), choose_key(KEY, None)):
            events.append(event)

    task = asyncio.ensure_future(consume())
    await until(fake, lambda: any(isinstance(e, Running) for e in events), "running")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    rid = request_id_of(events)
    await until(fake, lambda: fake.submission(rid).cancelled, "the cancel")
    assert traffic(fake, rid)["poll"] == 0


async def test_the_deadline_holds_while_streaming(tmp_path, fake):
    fake.inject(Fault.never_finish())
    client = ImageClient(settings_for(tmp_path, request_timeout_s=5))
    try:
        with pytest.raises(DeadlineExceeded):
            await run(client)
    finally:
        await client.aclose()
    [sub] = fake.submissions
    await until(fake, lambda: fake.submission(sub.request_id).cancelled, "the cancel")


async def test_a_cancelled_request_ends_as_stopped_on_the_stream(client, fake):
    fake.inject(Fault.never_finish())
    events: list[Progress] = []

    async def consume():
        async for event in client.stream(request(), choose_key(KEY, None)):
            events.append(event)

    task = asyncio.ensure_future(consume())
    await until(fake, lambda: len(fake.submissions) == 1, "the submission")
    rid = fake.submissions[0].request_id
    # Someone else (fal's dashboard, another process) cancels it at fal.
    async with httpx.AsyncClient(verify=fake.ssl_context()) as http:
        url = f"https://{fake.queue_host}/fal-ai/gpt-image-1.5/requests/{rid}/cancel"
        await http.put(url, headers={"Authorization": f"Key {KEY}"})
    with pytest.raises(Cancelled):
        await task


def test_the_fakes_stream_speaks_server_sent_events(fake):
    """What fal documents: text/event-stream, chunked, keep-alive, heartbeat
    comments while nothing changes, closed after COMPLETED."""
    fake.latency = 0.6
    fake.stream_heartbeat_s = 0.1
    context: ssl.SSLContext = fake.ssl_context()
    headers = {"Authorization": f"Key {KEY}"}
    with httpx.Client(verify=context, timeout=10) as http:
        submitted = http.post(
            f"https://{fake.queue_host}/fal-ai/gpt-image-1.5",
            headers=headers,
            json={"prompt": "a stream"},
        ).json()
        with http.stream(
            "GET", submitted["status_url"] + "/stream", params={"logs": "1"}, headers=headers
        ) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/event-stream")
            assert answer.headers.get("transfer-encoding") == "chunked"
            assert "content-length" not in answer.headers
            assert answer.headers.get("connection", "").lower() == "keep-alive"
            text = "".join(answer.iter_text())  # returns: the server closed it
    blocks = [block for block in text.split("\n\n") if block]
    heartbeats = [block for block in blocks if block.startswith(":")]
    data = [json.loads(block[len("data: ") :]) for block in blocks if block.startswith("data: ")]
    assert heartbeats, "comments while nothing changed"
    assert data[-1]["status"] == "COMPLETED" and "metrics" in data[-1]
    logged = [line["message"] for status in data for line in status.get("logs") or []]
    assert len(logged) == len(set(logged)), "each event carries only new log lines"
    assert logged[-1] == "Request completed"


async def test_a_stream_that_never_answers_gives_way_to_polls_at_the_call_timeout(tmp_path, fake):
    fake.latency = 0.3
    fake.inject(Fault.hang("stream"))
    client = ImageClient(settings_for(tmp_path, call_timeout_s=1.5))
    try:
        events = await run(client)
    finally:
        await client.aclose()
    assert isinstance(events[-1], Finished)
    counts = traffic(fake, request_id_of(events))
    assert counts["stream"] == 1, "not tried again: fal did not answer it at all"
    assert counts["poll"] >= 1 and counts["result"] == 1


async def test_finished_streams_give_their_connections_back(tmp_path, fake):
    """fal_client's pool holds 100 connections per key: streams that kept theirs after
    COMPLETED would starve the 101st request (found by the 128-call benchmark)."""
    fake.latency = 0.2
    client = ImageClient(settings_for(tmp_path, call_timeout_s=5))
    try:
        for wave in range(2):  # 120 requests on one key, more than the pool holds
            jobs = [
                client.run(request(f"wave {wave} #{i}"), choose_key(KEY, None)) for i in range(60)
            ]
            results = await asyncio.gather(*jobs)
            assert all(len(result.images) == 1 for result in results)
    finally:
        await client.aclose()
    assert sum(1 for r in fake.http_log if r.path.endswith("/status/stream")) == 120
