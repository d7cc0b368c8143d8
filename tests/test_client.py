"""`backend.ImageClient` through the real fal_client, over HTTPS, against the fake."""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend import (
    Fetching,
    Finished,
    ImageClient,
    Queued,
    Running,
    Settings,
    Submitted,
    TextToImageRequest,
    choose_key,
)
from backend.edits import draft_edit
from backend.errors import (
    DeadlineExceeded,
    InternalError,
    KeyRejected,
    RequestRefused,
    ResultUnavailable,
    ServiceUnavailable,
    UnreadableAnswer,
)
from backend.images import prepare_image
from backend.masks import Mask
from tests.fakefal import FakeFal, Fault
from tests.fakefal.records import RecordedHTTP

KEY_A = "aaaaaaaa-0000-4000-8000-00000000000a:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
KEY_B = "bbbbbbbb-0000-4000-8000-00000000000b:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(fal_key=KEY_A, results_dir=tmp_path, request_timeout_s=30, poll_interval_s=0.05)


@pytest.fixture
async def client(settings: Settings, fake):
    image_client = ImageClient(settings)
    yield image_client
    await image_client.aclose()


def request(**values) -> TextToImageRequest:
    return TextToImageRequest.parse(prompt=values.pop("prompt", "a quiet harbour"), **values)


async def test_stream_reports_each_stage_then_the_result(client, fake):
    fake.queue_time = 0.4
    fake.latency = 0.5
    events = [e async for e in client.stream(request(num_images=2), choose_key(KEY_A, None))]
    kinds = [type(e) for e in events]
    assert kinds[0] is Submitted
    assert kinds.index(Queued) < kinds.index(Running) < kinds.index(Fetching)
    assert kinds[-1] is Finished
    running = [e for e in events if isinstance(e, Running)]
    assert any(e.logs for e in running)
    result = events[-1].result
    assert [img.width for img in result.images] == [1024, 1024]
    for img in result.images:
        with Image.open(img.path) as opened:
            assert opened.format == "PNG"
    assert result.timings.total_s >= result.timings.running_s > 0


async def test_each_call_uses_its_own_key_even_when_interleaved(client, fake):
    fake.latency = 0.3
    runs = [
        client.run(request(prompt=f"{name} {n}"), choose_key(key, None))
        for n in range(4)
        for name, key in (("a", KEY_A), ("b", KEY_B))
    ]
    await asyncio.gather(*runs)
    assert len(fake.submissions) == 8
    for sub in fake.submissions:
        expected = KEY_A if sub.arguments["prompt"].startswith("a ") else KEY_B
        assert sub.authorization == f"Key {expected}"


async def test_the_deadline_ends_a_request_that_never_finishes_and_cancels_it(settings, fake):
    client = ImageClient(settings.model_copy(update={"request_timeout_s": 1.5}))
    fake.inject(Fault.never_finish())
    with pytest.raises(DeadlineExceeded) as caught:
        await client.run(request(), choose_key(KEY_A, None))
    assert "cancelled at fal" in caught.value.message
    [sub] = fake.submissions
    assert sub.cancelled
    await client.aclose()


async def test_a_cancelled_caller_cancels_the_request_at_fal(client, fake):
    fake.inject(Fault.never_finish())
    task = asyncio.create_task(client.run(request(), choose_key(KEY_A, None)))
    await asyncio.to_thread(fake.wait_for_submissions, 1)
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    [sub] = fake.submissions
    assert sub.cancelled


async def test_images_that_arrive_are_kept_when_others_fail(client, fake):
    fake.inject(Fault.broken_image_urls([1, 3]))
    result = await client.run(request(num_images=4), choose_key(KEY_A, None))
    assert len(result.images) == 2
    assert [f.index for f in result.failures] == [1, 3]
    assert all("404" in f.reason for f in result.failures)


async def test_a_result_without_images_is_a_clear_failure(client, fake):
    fake.inject(Fault.no_images())
    with pytest.raises(ResultUnavailable) as caught:
        await client.run(request(), choose_key(KEY_A, None))
    assert "no images" in caught.value.message


async def test_a_rejected_key_says_to_check_it(client, fake):
    fake.inject(Fault.http_error("submit", 401, detail="Invalid key"))
    with pytest.raises(KeyRejected):
        await client.run(request(), choose_key(KEY_A, None))


async def test_a_body_fal_refuses_gives_its_reasons(client, fake):
    # Sent unvalidated on purpose (model_construct skips our checks) to see fal's 422.
    bad = TextToImageRequest.model_construct(
        prompt="p",
        image_size="512x512",  # type: ignore[arg-type]  # not a size fal offers: on purpose
        background="auto",
        quality="high",
        num_images=1,
        output_format="png",
        sync_mode=False,
    )
    with pytest.raises(RequestRefused) as caught:
        await client.run(bad, choose_key(KEY_A, None))
    assert "image_size" in caught.value.message


async def test_an_unreadable_answer_is_reported_not_raised_raw(client, fake):
    fake.inject(Fault.malformed_result())
    with pytest.raises(ServiceUnavailable) as caught:
        await client.run(request(), choose_key(KEY_A, None))
    assert "could not be read" in caught.value.message
    assert isinstance(caught.value, UnreadableAnswer)
    assert caught.value.detail.startswith("unreadable answer: JSONDecodeError(")


# ---- errors that tell the truth: fal's unreadable answers, and our own bugs --------------

UNREADABLE = "fal sent an answer that could not be read. Try again in a moment."
INTERNAL = "Something went wrong on our side; the details are in the server log."


def png_bytes(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fault", "where"),
    [
        pytest.param(Fault.malformed_answer("submit"), "submit", id="submit-not-json"),
        pytest.param(Fault.fields_missing("submit"), "submit", id="submit-fields-missing"),
        pytest.param(Fault.malformed_answer("status"), "status", id="status-not-json"),
        pytest.param(Fault.fields_missing("status"), "status", id="status-fields-missing"),
        # A result is any JSON: one without images is ResultUnavailable (tested above).
        pytest.param(Fault.malformed_answer("result"), "result", id="result-not-json"),
        pytest.param(Fault.malformed_answer("upload"), "upload", id="upload-not-json"),
        pytest.param(Fault.fields_missing("upload"), "upload", id="upload-fields-missing"),
    ],
)
async def test_an_answer_fal_client_cannot_read_is_unreadable_wherever_it_comes(
    settings, fake, caplog, fault, where
):
    """Not JSON, or JSON without the fields fal_client reads, at each call to fal."""
    client = ImageClient(settings.model_copy(update={"inline_limit_bytes": 0}))  # all uploaded
    # An upload is tried at fal's CDN, then at its REST storage: both answer so.
    fake.inject(fault, times=2 if where == "upload" else 1)
    job = draft_edit([prepare_image(png_bytes(64, 48))], None, prompt="p")
    caplog.set_level(logging.INFO, logger="studio")
    try:
        with pytest.raises(UnreadableAnswer) as caught:
            await client.run(job, choose_key(KEY_A, None))
    finally:
        await client.aclose()
    assert caught.value.message == UNREADABLE
    assert caught.value.detail.startswith("unreadable answer: ")
    assert caught.value.detail.endswith(f"(to the {where})")
    assert "unreadable answer" in caplog.text
    assert "unexpected failure" not in caplog.text and "Traceback" not in caplog.text
    if where == "upload":
        assert fake.submissions == [], "no request without its image"
    if where == "status":
        [sub] = fake.submissions
        await asyncio.to_thread(fake.wait_until, lambda: sub.cancelled, 10, "the cancel")


class _MaskThatBreaks(Mask):
    """A test double: a mask whose PNG encoding fails, as a bug of ours would."""

    @property
    def png(self) -> bytes:
        raise RuntimeError(f"the mask encoder broke (with {KEY_A} in its message)")


async def test_a_bug_of_ours_is_an_internal_error_with_its_traceback_in_the_log(
    client, fake, caplog
):
    """A RuntimeError in our code is not blamed on fal (nor is a ValueError or
    KeyError, as they were): one sentence, and the traceback, without the key, in the log."""
    edit = np.zeros((48, 64), dtype=bool)
    edit[10:20, 10:20] = True
    job = draft_edit([prepare_image(png_bytes(64, 48))], _MaskThatBreaks(edit), prompt="p")
    caplog.set_level(logging.INFO, logger="studio")
    with pytest.raises(InternalError) as caught:
        await client.run(job, choose_key(KEY_A, None))
    assert caught.value.message == INTERNAL
    assert "RuntimeError" in caught.value.detail
    [logged] = [r for r in caplog.records if "unexpected failure" in r.getMessage()]
    assert logged.levelno == logging.ERROR
    text = logged.getMessage()
    assert "Traceback (most recent call last)" in text
    assert "in png" in text and "RuntimeError: the mask encoder broke" in text
    assert KEY_A not in caplog.text and "[key]" in text
    assert fake.submissions == [], "nothing was sent"


async def test_network_trouble_ends_in_a_sentence_after_fal_clients_own_retries(
    client, fake, monkeypatch
):
    # fal_client retries a dropped connection 10 times with back-off; zero the
    # back-off (fal_client's, not ours) so the test takes no half a minute.
    import fal_client

    monkeypatch.setattr(fal_client.client, "_get_retry_delay", lambda *a, **k: 0)
    fake.inject(Fault.drop_connection("submit"), times=10)  # every retry is a new submit
    with pytest.raises(ServiceUnavailable) as caught:
        await client.run(request(), choose_key(KEY_A, None))
    assert "network trouble" in caught.value.message
    submits = [h for h in fake.http_log if h.role == "queue" and h.method == "POST"]
    assert len(submits) == 10, "fal_client's retries are used, with no second loop of ours"
    assert fake.submissions[-1].state == "REJECTED"


def _queue_calls(fake: FakeFal, request_id: str) -> list[RecordedHTTP]:
    """The fake's log of status and result GETs for one request, in arrival order."""
    base = f"/requests/{request_id}"
    return [h for h in fake.http_log if h.role == "queue" and h.method == "GET" and base in h.path]


async def test_after_completed_the_result_is_one_get_with_no_extra_status_poll(client, fake):
    """fal_client's handle.get() polls the status once more before fetching; we don't."""
    fake.latency = 0.3
    result = await client.run(request(), choose_key(KEY_A, None))
    [sub] = fake.submissions
    calls = _queue_calls(fake, result.request_id)
    results = [h for h in calls if not h.path.endswith(("/status", "/status/stream"))]
    assert len(results) == 1, "exactly one GET of the response URL"
    assert calls[-1] is results[0], "no status poll after the result"
    assert sub.finished_at is not None
    polls_after = [h for h in calls if h.path.endswith("/status") and h.time >= sub.finished_at]
    assert len(polls_after) <= 1, "only the poll that saw COMPLETED"


async def test_the_single_result_get_keeps_fal_clients_retries(client, fake):
    """A gateway 503 or a truncated answer to the result GET is retried, as handle.get() did."""
    fake.inject(Fault.http_error("result", 503, ingress=True, hits=1))
    first = await client.run(request(), choose_key(KEY_A, None))
    assert len(first.images) == 1
    fake.inject(Fault.truncated_result(hits=1))
    second = await client.run(request(), choose_key(KEY_A, None))
    assert len(second.images) == 1
    for done in (first, second):
        gets = [
            h
            for h in _queue_calls(fake, done.request_id)
            if not h.path.endswith(("/status", "/status/stream"))
        ]
        assert len(gets) == 2, "one failed attempt, then fal_client's retry"


@pytest.mark.parametrize(
    ("waited", "expected"),
    [(0.0, 0.1), (0.5, 0.1), (2.0, 0.2), (5.0, 0.5), (10.0, 1.0), (60.0, 1.0)],
)
def test_polls_space_out_as_a_request_runs_long(waited, expected):
    """A tenth of the time waited, between the shortest interval and 1 s: a
    60-second request is polled about 70 times, not 600."""
    from backend.client import _poll_interval

    assert _poll_interval(waited, 0.1) == pytest.approx(expected)
    assert _poll_interval(waited, 2.0) == 2.0  # a host's longer interval always wins
