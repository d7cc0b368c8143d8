"""Shared fairly and safely, through the real server, the real fal_client and the fake:
parallel calls are served (not refused), slots are shared between visitors in
turn, a waiting line with its place shown, identities from trusted proxies only,
hangs and stuck queues said in seconds, and a daily budget on the host's key."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from backend import fal
from tests.conftest import HOST_KEY, RunningApp, start_app, stop_app
from tests.fakefal import FakeFal, Fault

OWN_KEY = "dddd4444-0000-4000-8000-00000000000d:d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4d4"


def client_from(url: str, forwarded: str | None = None) -> Client:
    # The tests reach the app from loopback, a trusted proxy by default: the
    # X-Forwarded-For they send is what a proxy in front of the app would.
    headers = {"X-Forwarded-For": forwarded} if forwarded else None
    return Client(url, verbose=False, headers=headers)


def run_together(calls: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, released together; their results (or errors)."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def one(index: int) -> None:
        barrier.wait()
        try:
            results[index] = calls[index]()
        except BaseException as exc:  # collected: the test looks at each outcome
            results[index] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


def test_32_simultaneous_calls_from_one_address_all_run_together(app_server, fake):
    fake.latency = 3.0
    clients = [client_from(app_server.url) for _ in range(32)]  # connected before the start
    calls = [
        lambda c=c, n=n: c.predict(prompt=f"burst {n}", quality="low", api_name="/generate")
        for n, c in enumerate(clients)
    ]
    results = run_together(calls)
    failures = [r for r in results if isinstance(r, BaseException)]
    assert failures == [], failures[:3]
    assert len(fake.submissions) == 32
    assert fake.max_in_flight == 32, "all 32 were at fal at the same time, none refused"


@pytest.fixture(scope="module")
def small_app(fake_service: FakeFal, tmp_path_factory) -> Iterator[RunningApp]:
    """Room for two runs at a time, and two waiting per visitor."""
    app = start_app(
        tmp_path_factory.mktemp("small"),
        STUDIO_CONCURRENCY_LIMIT="2",
        STUDIO_MAX_WAITING_PER_VISITOR="2",
    )
    yield app
    stop_app(app)


def test_under_saturation_two_visitors_share_slots_in_turn(small_app, fake):
    fake.latency = 1.0
    greedy = client_from(small_app.url, "203.0.113.1")
    patient = client_from(small_app.url, "203.0.113.2")
    jobs = [
        greedy.submit(prompt=f"greedy {n}", quality="low", api_name="/generate") for n in range(4)
    ]
    fake.wait_for_submissions(2)  # greedy holds both slots; two of its calls wait
    later = [
        patient.submit(prompt=f"patient {n}", quality="low", api_name="/generate") for n in range(2)
    ]
    for job in [*jobs, *later]:
        job.result(timeout=60)
    order = [sub.arguments["prompt"].split()[0] for sub in fake.submissions]
    assert order.count("greedy") == 4 and order.count("patient") == 2
    # First come, first served would run greedy's four first. Fair shares give the
    # first freed slot to whoever has fewer runs under way: the patient visitor,
    # though two of greedy's calls were waiting before it came.
    assert order[:3] == ["greedy", "greedy", "patient"], order
    # A call that waited said so, with its place.
    said = [str(out[2]) for job in jobs[2:] for out in job.outputs() if out and out[2]]
    assert any("Waiting: the app is busy;" in line and "ahead" in line for line in said), said


def test_past_the_waiting_line_a_sentence_and_spoofed_hops_change_nothing(small_app, fake):
    fake.latency = 3.0
    # One visitor (203.0.113.9) behind the proxy, claiming a new address each time.
    spoofs = [client_from(small_app.url, f"{n}.{n}.{n}.{n}, 203.0.113.9") for n in range(1, 6)]
    jobs = [c.submit(prompt=f"spoof {n}", api_name="/generate") for n, c in enumerate(spoofs[:4])]
    fake.wait_for_submissions(2)  # two running, two waiting: the line is full
    with pytest.raises(Exception) as refused:
        spoofs[4].predict(prompt="one too many", api_name="/generate")
    message = str(refused.value)
    assert "You already have 2 runs waiting for a free slot, the most this app allows" in message
    # Another visitor is not held to the first one's line.
    other = client_from(small_app.url, "203.0.113.10").submit(prompt="other", api_name="/generate")
    for job in [*jobs, other]:
        job.result(timeout=60)
    prompts = {sub.arguments["prompt"] for sub in fake.submissions}
    assert "one too many" not in prompts and "other" in prompts
    assert len(prompts) == 5


@pytest.mark.timeout(45)
def test_a_hung_submit_ends_in_a_sentence_and_the_next_call_is_served(api, fake):
    fake.inject(Fault.hang("submit"))
    with pytest.raises(Exception) as caught:
        api.predict(prompt="into the void", api_name="/generate")
    assert "fal did not answer in time" in str(caught.value)
    [hung] = fake.submissions
    assert hung.start_timeout == 90.0, "fal is told to drop it if it has not started in 90 s"
    api.predict(prompt="and again", api_name="/generate")
    assert fake.submissions[-1].state == "COMPLETED"


@pytest.mark.timeout(45)
def test_a_hung_status_poll_ends_in_a_sentence_and_the_request_is_cancelled(api, fake):
    fake.latency = 60.0
    fake.inject(Fault.hang("status"))
    with pytest.raises(Exception) as caught:
        api.predict(prompt="silent status", api_name="/generate")
    assert "fal gave no usable answer for 15 seconds" in str(caught.value)
    assert "cancelled at fal" in str(caught.value)
    [sub] = fake.submissions
    fake.wait_until(lambda: sub.cancelled, 10, "the cancel")


@pytest.fixture(scope="module")
def impatient_app(fake_service: FakeFal, tmp_path_factory) -> Iterator[RunningApp]:
    app = start_app(tmp_path_factory.mktemp("impatient"), STUDIO_QUEUE_TIMEOUT="5")
    yield app
    stop_app(app)


def test_a_request_stuck_in_falls_queue_is_cancelled_at_the_queue_timeout(impatient_app, fake):
    fake.queue_time = 60.0
    fake.honour_request_timeout = False  # as if fal ignored the header: we still give up
    with pytest.raises(Exception) as caught:
        client_from(impatient_app.url).predict(prompt="stuck", api_name="/generate")
    assert "did not start the request within 5 seconds" in str(caught.value)
    [sub] = fake.submissions
    assert sub.start_timeout == 5.0, "X-Fal-Request-Timeout carries the same bound"
    fake.wait_until(lambda: sub.cancelled, 10, "the cancel")
    cancels = [r for r in fake.http_log if r.method == "PUT" and r.path.endswith("/cancel")]
    assert len(cancels) == 1


async def test_the_fake_drops_a_request_that_did_not_start_within_its_header(fake):
    fake.queue_time = 8.0
    client = fal.Clients(timeout_s=10).for_key(HOST_KEY)
    # fal_client takes more than 1 s only.
    submission = await client.submit("fal-ai/gpt-image-1.5", {"prompt": "p"}, start_timeout=2)
    status: fal.Status = await submission.status()
    while not isinstance(status, fal.Completed):
        status = await submission.status()
    assert status.error_type == "request_timeout"
    [sub] = fake.submissions
    assert sub.timed_out and not sub.cancelled


@pytest.fixture
def budget_app(fake_service: FakeFal, tmp_path: Path) -> Iterator[tuple[RunningApp, Path]]:
    data = tmp_path / "data"
    (tmp_path / "app").mkdir()
    app = start_app(tmp_path / "app", STUDIO_HOST_KEY_BUDGET_USD="0.03", STUDIO_DATA_DIR=str(data))
    yield app, data
    stop_app(app)


def test_a_daily_budget_on_the_hosts_key_charges_refunds_refuses_and_lasts(
    budget_app, fake, tmp_path
):
    app, data = budget_app
    visitor = client_from(app.url, "203.0.113.50")
    cheap = {"prompt": "p", "quality": "low", "api_name": "/generate"}  # ≈ $0.009 each
    visitor.predict(**cheap)
    fake.inject(Fault.http_error("submit", 500))
    with pytest.raises(Exception, match="internal error"):
        visitor.predict(**cheap)  # failed: refunded
    visitor.predict(**cheap)
    visitor.predict(**cheap)  # three charged: $0.027 of $0.03 (only if the failure was refunded)
    sent = len(fake.submissions)
    with pytest.raises(Exception) as refused:
        visitor.predict(**cheap)
    assert "would cost ≈ $0.009" in str(refused.value)
    assert "$0.003 of your $0.030 a day on the host's key is left" in str(refused.value)
    assert len(fake.submissions) == sent, "refused before anything was sent"
    # Their own key is not counted; another visitor has a budget of their own.
    visitor.predict(**cheap, fal_key=OWN_KEY)
    client_from(app.url, "203.0.113.51").predict(**cheap)

    # After a restart the ledger is still there.
    stop_app(app)
    (tmp_path / "again").mkdir()
    again = start_app(
        tmp_path / "again", STUDIO_HOST_KEY_BUDGET_USD="0.03", STUDIO_DATA_DIR=str(data)
    )
    try:
        sent = len(fake.submissions)
        with pytest.raises(Exception, match="would cost"):
            client_from(again.url, "203.0.113.50").predict(**cheap)
        assert len(fake.submissions) == sent
    finally:
        stop_app(again)


@pytest.mark.browser
def test_the_page_shows_what_is_left_of_the_budget(budget_app, fake, browser):
    app, _ = budget_app
    client_from(app.url).predict(prompt="p", quality="low", api_name="/generate")
    page = browser.new_page()
    try:
        page.goto(app.url)
        page.wait_for_function(
            "document.querySelector('#budget-status')?.innerText.includes('of your $0.030 today')",
            timeout=15_000,
        )
        text = page.inner_text("#budget-status")
    finally:
        page.close()
    # The page's visitor is the same loopback address the API call came from.
    assert "$0.021 of your $0.030 today" in text
