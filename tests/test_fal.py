"""backend/fal.py, the app's only door to fal_client, against the fake.

These tests also watch what fal.py builds on in fal_client and could change in
an upgrade without an error anywhere: how `AsyncRequestHandle.get()` waits for
COMPLETED, and the module globals that say where uploads go.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect

import fal_client
import pytest

from backend import TextToImageRequest, fal
from tests.fakefal import FakeFal, Fault

KEY = "aaaaaaaa-0000-4000-8000-00000000000a:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def arguments(prompt: str = "a quiet harbour") -> tuple[str, dict[str, object]]:
    request = TextToImageRequest.parse(prompt=prompt, quality="low")
    return request.endpoint, request.to_arguments()


async def test_the_result_of_a_completed_request_is_one_get_and_no_status_poll(fake: FakeFal):
    """`Submission.result()` lets fal_client's `handle.get()` do only its result GET,
    by telling it through `status()` that the request is COMPLETED. Here every
    status poll would fail with a 500: if a new fal_client's `get()` asked the
    status some other way, the poll would reach the fake and this would fail."""
    fake.inject(Fault.http_error("status", 500, "a status poll: get() asked fal again"))
    client = fal.Clients(timeout_s=30).for_key(KEY)
    submission = await client.submit(*arguments())
    [sub] = fake.submissions
    await asyncio.to_thread(fake.wait_until, lambda: sub.state == "COMPLETED", 10, "completion")

    output = await submission.result()

    assert len(output["images"]) == 1
    calls = [h for h in fake.http_log if h.role == "queue" and sub.request_id in h.path]
    assert [(h.method, h.path.endswith("/status")) for h in calls] == [("GET", False)], (
        "exactly one GET of the result, and no status poll"
    )


def test_fal_clients_request_handle_still_has_what_result_builds_on():
    """The shape `_SeenCompleted` relies on; a change here needs fal.py looked at again
    (mypy checks the override's signature, this checks it at run time too)."""
    handle = fal_client.AsyncRequestHandle
    assert dataclasses.is_dataclass(handle)
    names = {f.name for f in dataclasses.fields(handle) if f.init}
    assert {"request_id", "response_url", "status_url", "cancel_url", "client"} <= names
    status = inspect.signature(handle.status).parameters
    assert list(status) == ["self", "with_logs"]
    assert status["with_logs"].kind is inspect.Parameter.KEYWORD_ONLY
    get = inspect.signature(handle.get).parameters
    assert all(p.default is not p.empty for name, p in get.items() if name != "self"), (
        "get() is called with no arguments"
    )


async def test_a_completed_status_carries_metrics_and_logs_are_plain_lines(fake: FakeFal):
    fake.latency = 0.3
    client = fal.Clients(timeout_s=30).for_key(KEY)
    submission = await client.submit(*arguments())
    seen: list[fal.Status] = []
    while not seen or not isinstance(seen[-1], fal.Completed):
        seen.append(await submission.status())
        await asyncio.sleep(0.05)
    running = [s for s in seen if isinstance(s, fal.InProgress)]
    assert running and all(isinstance(line, str) for s in running for line in s.logs)
    done = seen[-1]
    assert isinstance(done, fal.Completed)
    assert done.error is None and "inference_time" in done.metrics


async def test_uploads_go_where_point_uploads_at_says(fake: FakeFal):
    """conftest sent uploads to the fake with `point_uploads_at`: they arrive there
    (if fal_client stopped reading its REST_URL / CDN_URL globals when uploading,
    they would go to fal's own hosts, unreachable from here)."""
    assert fake.rest_url == fal_client.client.REST_URL
    assert fake.cdn_url == fal_client.client.CDN_URL
    client = fal.Clients(timeout_s=30).for_key(KEY)
    url = await client.upload(b"\x89PNG not really", "image/png", "x.png")
    [upload] = fake.uploads
    assert url == upload.url and url.startswith(fake.cdn_url)
    assert upload.file_name == "x.png"


def test_encode_makes_a_data_uri():
    assert fal.encode(b"abc", "image/png") == "data:image/png;base64,YWJj"


async def test_clients_keep_one_client_per_key_up_to_the_cap():
    clients = fal.Clients(timeout_s=30, cap=2)
    a, b = clients.for_key("a"), clients.for_key("b")
    assert clients.for_key("a") is a  # a is now the most recently used
    clients.for_key("c")  # over the cap: b, the least recently used, goes
    assert clients.for_key("a") is a
    assert clients.for_key("b") is not b


async def test_an_http_error_keeps_fals_status_detail_and_type(fake: FakeFal):
    fake.inject(Fault.http_error("submit", 422, [{"msg": "no"}], "validation_error"))
    client = fal.Clients(timeout_s=30).for_key(KEY)
    with pytest.raises(fal.FalHTTPError) as caught:
        await client.submit(*arguments())
    assert caught.value.status_code == 422
    assert caught.value.detail == [{"msg": "no"}]
    assert caught.value.error_type == "validation_error"
