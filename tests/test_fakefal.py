"""Tests of the fal fake itself, driven through the real fal_client.

fal_client freezes its hosts at import time, so the fake (and its env) must exist
before `import fal_client`: `shared_fake()` does that, or adopts the ports that an
earlier import already points at.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.fakefal import (
    EDIT,
    TEXT_TO_IMAGE,
    FakeFal,
    Fault,
    mask_image,
    reserve_ports,
    shared_fake,
    solid_image,
)
from tests.fakefal.images import RenderSpec, closest_size, parse_data_uri, render
from tests.fakefal.schema import EDIT_SCHEMA, TEXT_TO_IMAGE_SCHEMA, blocking

# Before fal_client is imported. If fal_client already points somewhere a fake cannot
# serve, this raises and the module errors at collection: loudly, never a silent skip
# of every test below.
FAKE = shared_fake()

import fal_client  # noqa: E402
from fal_client import Completed, FalClientHTTPError, InProgress, Queued  # noqa: E402

from backend.fal import point_uploads_at  # noqa: E402

pytestmark = pytest.mark.timeout(60)

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def fake():
    FAKE.reset()
    FAKE.latency = 0.05
    # Storage token and uploads: fal_client reads their hosts when it uploads.
    point_uploads_at(FAKE.rest_url, FAKE.cdn_url)
    yield FAKE
    assert FAKE.internal_errors == []


@pytest.fixture
def no_retry_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    """fal_client backs off up to ~30 s over 10 attempts; the count is what matters."""
    monkeypatch.setattr(fal_client.client, "_get_retry_delay", lambda *args, **kwargs: 0.0)


_ASYNC_CLIENTS: list[fal_client.AsyncClient] = []


def client(key: str = "test-key") -> fal_client.AsyncClient:
    _ASYNC_CLIENTS.append(fal_client.AsyncClient(key=key))
    return _ASYNC_CLIENTS[-1]


@pytest.fixture(autouse=True)
async def _close_async_clients():
    """fal_client never closes its httpx clients; close them in the test's loop."""
    yield
    while _ASYNC_CLIENTS:
        made = _ASYNC_CLIENTS.pop()
        if "_client" in made.__dict__:
            await (await made._client).aclose()


@pytest.fixture
def sync_client():
    """SyncClient factory; closes the httpx clients fal_client never closes."""
    made: list[fal_client.SyncClient] = []

    def make(key: str = "test-key") -> fal_client.SyncClient:
        made.append(fal_client.SyncClient(key=key))
        return made[-1]

    yield make
    for each in made:
        if "_client" in each.__dict__:
            each._client.close()


def open_image(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def detail_of(error: FalClientHTTPError) -> list[dict[str, Any]]:
    """fal's 422 `detail` list: fal_client puts it in `message` (typed str!) as is."""
    detail: Any = error.message
    assert isinstance(detail, list), detail
    return detail


def result_gets(fake: FakeFal) -> list[Any]:
    return [
        h
        for h in fake.http_log
        if h.role == "queue"
        and h.method == "GET"
        and "/requests/" in h.path
        and not h.path.endswith("/status")
    ]


# --- the happy paths -----------------------------------------------------------------


@pytest.mark.asyncio
async def test_subscribe_reports_queue_positions_then_logs_then_real_images(fake):
    fake.queue_time = 0.3
    fake.latency = 0.3
    events: list[Any] = []
    result = await client().subscribe(
        TEXT_TO_IMAGE,
        {"prompt": "a lighthouse at dusk", "num_images": 2, "image_size": "1536x1024"},
        with_logs=True,
        on_queue_update=events.append,
    )

    positions = [e.position for e in events if isinstance(e, Queued)]
    assert positions and positions == sorted(positions, reverse=True)
    first_progress = next(i for i, e in enumerate(events) if isinstance(e, InProgress))
    assert all(isinstance(e, Queued) for e in events[:first_progress])
    messages = [
        log["message"]
        for e in events
        if isinstance(e, InProgress | Completed)
        for log in e.logs or []
    ]
    assert "Generating image 1 of 2" in messages
    assert isinstance(events[-1], Completed) and events[-1].error is None
    # The time the fake says the model ran is the time it recorded, not a guess.
    (sub,) = fake.submissions
    assert sub.started_at is not None and sub.finished_at is not None
    ran = round(sub.finished_at - sub.started_at, 3)
    assert events[-1].metrics["inference_time"] == ran

    assert [(i["width"], i["height"], i["content_type"]) for i in result["images"]] == [
        (1536, 1024, "image/png")
    ] * 2
    pictures = [open_image(fake.download(i["url"])) for i in result["images"]]
    assert [(p.format, p.size) for p in pictures] == [("PNG", (1536, 1024))] * 2
    assert pictures[0].tobytes() != pictures[1].tobytes()  # differ per index

    (sub,) = fake.submissions
    assert (sub.endpoint, sub.via, sub.state, sub.cancelled) == (
        TEXT_TO_IMAGE,
        "queue",
        "COMPLETED",
        False,
    )
    assert sub.authorization == "Key test-key"
    assert sub.arguments == {
        "prompt": "a lighthouse at dusk",
        "num_images": 2,
        "image_size": "1536x1024",
    }
    assert sub.schema_errors == []


@pytest.mark.asyncio
async def test_edit_with_uploaded_png_data_uri_and_mask(fake):
    fal = client()
    photo = solid_image(300, 200, (10, 120, 200))
    photo_url = await fal.upload(photo, "image/png", "photo.png")
    mask_url = await fal.upload(mask_image(300, 200, (100, 50, 199, 149)), "image/png", "mask.png")
    second = fal_client.encode(solid_image(64, 64, output_format="jpeg"), "image/jpeg")

    handle = await fal.submit(
        EDIT,
        {
            "prompt": "put a hat on it",
            "image_urls": [photo_url, second],
            "mask_image_url": mask_url,
            "image_size": "auto",
            "background": "transparent",
            "output_format": "webp",
            "input_fidelity": "low",
        },
    )
    # The queue's URLs drop the /edit path.
    assert handle.status_url.endswith(f"/fal-ai/gpt-image-1.5/requests/{handle.request_id}/status")
    assert "/edit" not in handle.response_url + handle.cancel_url
    result = await handle.get()

    (image,) = result["images"]
    assert (image["width"], image["height"], image["content_type"]) == (1536, 1024, "image/webp")
    picture = open_image(fake.download(image["url"]))
    assert (picture.format, picture.mode, picture.size) == ("WEBP", "RGBA", (1536, 1024))
    assert picture.getchannel("A").getpixel((0, 0)) == 0  # a transparent area

    (sub,) = fake.submissions
    inputs = [(d.role, d.index, d.format, d.width, d.height) for d in sub.decoded_inputs]
    assert inputs == [
        ("image", 0, "PNG", 300, 200),
        ("image", 1, "JPEG", 64, 64),
        ("mask", 0, "PNG", 300, 200),
    ]
    assert sub.decoded_inputs[0].data == photo
    alpha = sub.decoded_inputs[2].to_pil().getchannel("A")
    assert alpha.getpixel((150, 100)) == 0 and alpha.getpixel((5, 5)) == 255

    assert [(u.file_name, u.content_type, u.via, u.key) for u in fake.uploads] == [
        ("photo.png", "image/png", "cdn", "test-key"),  # the key its CDN token came from
        ("mask.png", "image/png", "cdn", "test-key"),
    ]
    roles = {(h.role, h.method, h.path) for h in fake.http_log}
    assert ("rest", "POST", "/storage/auth/token") in roles
    assert ("cdn", "POST", "/files/upload") in roles


@pytest.mark.asyncio
async def test_edit_auto_size_follows_the_first_image(fake):
    tall = fal_client.encode(solid_image(200, 320), "image/png")
    result = await client().subscribe(
        EDIT, {"prompt": "p", "image_urls": [tall], "output_format": "jpeg"}
    )
    (image,) = result["images"]
    assert (image["width"], image["height"]) == (1024, 1536)
    assert open_image(fake.download(image["url"])).format == "JPEG"
    assert closest_size(1000, 1000) == (1024, 1024)


@pytest.mark.asyncio
async def test_sync_mode_returns_data_uris(fake):
    result = await client().subscribe(
        TEXT_TO_IMAGE,
        {"prompt": "p", "sync_mode": True, "output_format": "webp", "image_size": "1024x1536"},
    )
    (image,) = result["images"]
    mime, data = parse_data_uri(image["url"])
    assert mime == "image/webp"
    assert open_image(data).size == (1024, 1536)


def test_direct_run_with_sync_client(fake, sync_client):
    result = sync_client("sync-key").run(TEXT_TO_IMAGE, {"prompt": "p", "output_format": "jpeg"})
    (image,) = result["images"]
    assert open_image(fake.download(image["url"])).size == (1024, 1024)
    (sub,) = fake.submissions
    assert (sub.via, sub.state, sub.authorization) == ("run", "COMPLETED", "Key sync-key")
    assert fake.http_log[0].role == "run"


@pytest.mark.asyncio
async def test_authorization_is_recorded_per_submission(fake):
    await asyncio.gather(
        client("alice").subscribe(TEXT_TO_IMAGE, {"prompt": "a"}),
        client("bob").subscribe(TEXT_TO_IMAGE, {"prompt": "b"}),
    )
    assert {(s.arguments["prompt"], s.authorization) for s in fake.submissions} == {
        ("a", "Key alice"),
        ("b", "Key bob"),
    }


@pytest.mark.asyncio
async def test_five_simultaneous_requests_are_in_flight_together(fake):
    fake.gate(5)  # held until all five run together: no window of time to miss
    results = await asyncio.gather(
        *(client().subscribe(TEXT_TO_IMAGE, {"prompt": str(i)}) for i in range(5))
    )
    assert len(results) == 5
    assert fake.max_in_flight == 5


# --- validation --------------------------------------------------------------------------


BAD_BODIES = [
    pytest.param(
        TEXT_TO_IMAGE,
        {"prompt": "p", "num_images": True},
        "num_images",
        "int_type",
        id="bool-num-images",
    ),
    pytest.param(
        TEXT_TO_IMAGE,
        {"prompt": "p", "num_images": 5},
        "num_images",
        "less_than_equal",
        id="five-images",
    ),
    pytest.param(
        TEXT_TO_IMAGE, {"prompt": "p", "quality": "ultra"}, "quality", "enum", id="bad-enum"
    ),
    pytest.param(
        TEXT_TO_IMAGE,
        {"prompt": "p", "background": "transparent", "output_format": "jpeg"},
        "background",
        "value_error",
        id="jpeg-transparent",
    ),
    pytest.param(TEXT_TO_IMAGE, {"num_images": 1}, "prompt", "missing", id="missing-prompt"),
    pytest.param(
        TEXT_TO_IMAGE,
        {"prompt": "p", "image_size": "auto"},
        "image_size",
        "enum",
        id="auto-size-text-to-image",
    ),
    pytest.param(
        TEXT_TO_IMAGE, {"prompt": "x" * 32_001}, "prompt", "string_too_long", id="long-prompt"
    ),
    pytest.param(
        EDIT, {"prompt": "p", "image_urls": []}, "image_urls", "too_short", id="no-images"
    ),
    pytest.param(
        EDIT,
        {"prompt": "p", "image_urls": ["data:,x"] * 17},
        "image_urls",
        "too_long",
        id="seventeen-images",
    ),
    pytest.param(
        EDIT,
        {"prompt": "p", "image_urls": ["https://example.com/a.png"]},
        "image_urls",
        "file_download_error",
        id="unreachable-url",
    ),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("endpoint", "body", "field", "error_type"), BAD_BODIES)
async def test_queue_accepts_bad_bodies_and_the_result_is_a_422(
    fake, endpoint, body, field, error_type
):
    events: list[Any] = []
    with pytest.raises(FalClientHTTPError) as caught:
        await client().subscribe(endpoint, body, on_queue_update=events.append)
    assert caught.value.status_code == 422
    detail = detail_of(caught.value)
    assert (detail[0]["loc"][:2], detail[0]["type"]) == (["body", field], error_type)
    assert {"loc", "msg", "type", "input"} <= set(detail[0])
    # The submit itself was accepted; the failure shows on COMPLETED.
    assert isinstance(events[-1], Completed) and events[-1].error
    (sub,) = fake.submissions
    assert sub.state == "COMPLETED" and sub.result_status == 422


def test_direct_run_answers_422_at_once(fake, sync_client):
    with pytest.raises(FalClientHTTPError) as caught:
        sync_client("k").run(TEXT_TO_IMAGE, {"prompt": "p", "num_images": 0})
    assert caught.value.status_code == 422
    assert detail_of(caught.value)[0]["type"] == "greater_than_equal"


@pytest.mark.asyncio
async def test_mask_must_match_the_first_image(fake):
    fal = client()
    image = await fal.upload(solid_image(300, 200), "image/png", "a.png")
    mask = await fal.upload(mask_image(200, 200, (0, 0, 10, 10)), "image/png", "m.png")
    with pytest.raises(FalClientHTTPError) as caught:
        await fal.subscribe(EDIT, {"prompt": "p", "image_urls": [image], "mask_image_url": mask})
    assert caught.value.status_code == 422
    assert detail_of(caught.value)[0]["type"] == "mask_size_mismatch"
    assert [d.role for d in fake.submissions[0].decoded_inputs] == ["image", "mask"]


@pytest.mark.asyncio
async def test_extra_fields_are_recorded_but_not_refused(fake):
    result = await client().subscribe(
        TEXT_TO_IMAGE, {"prompt": "p", "seed": 3, "input_fidelity": "low"}
    )
    assert len(result["images"]) == 1
    (sub,) = fake.submissions
    assert sub.extra_fields == ["seed", "input_fidelity"]
    assert {item["type"] for item in sub.schema_errors} == {"extra_forbidden"}


def test_schema_rules_without_the_network():
    valid = {
        "prompt": "p",
        "image_size": "1024x1536",
        "background": "opaque",
        "quality": "low",
        "num_images": 4,
        "output_format": "webp",
        "sync_mode": False,
    }
    assert TEXT_TO_IMAGE_SCHEMA.validate(valid) == []
    assert (
        EDIT_SCHEMA.validate(
            {
                "prompt": "p",
                "image_urls": ["u"],
                "mask_image_url": None,
                "input_fidelity": "high",
                "image_size": "auto",
            }
        )
        == []
    )
    errors = EDIT_SCHEMA.validate(
        {"prompt": 3, "image_urls": ["ok", 7], "sync_mode": "yes", "num_images": 2.0}
    )
    assert [(e["loc"], e["type"]) for e in blocking(errors)] == [
        (["body", "prompt"], "string_type"),
        (["body", "image_urls", 1], "string_type"),
        (["body", "num_images"], "int_type"),
        (["body", "sync_mode"], "bool_type"),
    ]
    assert TEXT_TO_IMAGE_SCHEMA.validate([1])[0]["type"] == "model_attributes_type"
    assert TEXT_TO_IMAGE_SCHEMA.with_defaults({"prompt": "p"})["image_size"] == "1024x1024"
    assert EDIT_SCHEMA.with_defaults({"prompt": "p"})["image_size"] == "auto"


# --- auth, routing, cancel -------------------------------------------------------------


@pytest.mark.asyncio
async def test_unaccepted_key_gets_401(fake):
    fake.accepted_keys = {"good-key"}
    with pytest.raises(FalClientHTTPError) as caught:
        await client("bad-key").subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert caught.value.status_code == 401
    assert isinstance(caught.value.message, str) and caught.value.message
    assert fake.submissions == []
    assert len((await client("good-key").subscribe(TEXT_TO_IMAGE, {"prompt": "p"}))["images"]) == 1


@pytest.mark.asyncio
async def test_upload_with_an_unaccepted_key_ends_in_401(fake):
    # The v3 token fetch fails with a bare httpx.HTTPStatusError; fal_client then
    # falls back to REST storage, whose 401 is what the caller sees.
    fake.accepted_keys = {"good-key"}
    with pytest.raises(FalClientHTTPError) as caught:
        await client("bad-key").upload(b"x", "text/plain", "x.txt")
    assert caught.value.status_code == 401
    paths = [(h.path, h.status) for h in fake.http_log]
    assert paths == [("/storage/auth/token", 401), ("/storage/upload/initiate", 401)]


def test_raw_protocol_details(fake):
    base = f"https://{fake.queue_host}"
    with httpx.Client(verify=fake.ssl_context(), headers={"Authorization": "Key k"}) as http:
        assert (
            httpx.post(
                f"{base}/{TEXT_TO_IMAGE}", json={"prompt": "p"}, verify=fake.ssl_context()
            ).status_code
            == 401
        )
        unknown = http.post(f"{base}/fal-ai/flux/dev", json={"prompt": "p"})
        assert unknown.status_code == 404 and "detail" in unknown.json()
        submitted = http.post(f"{base}/{EDIT}", json={"prompt": "p", "image_urls": ["x"]}).json()
        assert submitted["queue_position"] == 0
        assert "/edit/" not in submitted["status_url"]
        status = http.get(submitted["status_url"], params={"logs": False}).json()
        assert status["status"] in ("IN_PROGRESS", "COMPLETED") and status["logs"] is None
        fake.wait_until(lambda: fake.submissions[0].state == "COMPLETED")
        with_logs = http.get(submitted["status_url"], params={"logs": 1}).json()
        assert with_logs["logs"] and with_logs["error"]
        assert http.put(f"{base}/fal-ai/gpt-image-1.5/requests/nope/cancel").status_code == 404
        assert http.get(f"{fake.cdn_url}/files/none/x.png").status_code == 404
        uploaded = http.post(
            f"{fake.rest_url}/storage/upload/initiate?storage_type=gcs",
            json={"file_name": "a.txt", "content_type": "text/plain"},
        ).json()
        assert http.put(uploaded["upload_url"], content=b"abc").status_code == 200
        head = http.head(uploaded["file_url"])
        assert (head.status_code, head.headers["content-length"]) == (200, "3")
        assert head.headers["content-type"] == "text/plain"


@pytest.mark.asyncio
async def test_result_before_completion_is_400(fake):
    fake.latency = 1.0
    fal = client()
    handle = await fal.submit(TEXT_TO_IMAGE, {"prompt": "p"})
    async with httpx.AsyncClient(
        verify=fake.ssl_context(), headers={"Authorization": "Key k"}
    ) as http:
        early = await http.get(handle.response_url)
    assert early.status_code == 400
    assert early.json() == {"detail": "Request is still in progress"}


@pytest.mark.asyncio
async def test_a_gate_holds_requests_until_enough_run_together(fake):
    fake.latency = 0.0
    fake.gate(2, timeout=600)
    fal = client()
    held = await fal.submit(TEXT_TO_IMAGE, {"prompt": "first"})
    await asyncio.to_thread(fake.wait_until, lambda: fake.in_flight == 1)
    assert isinstance(await held.status(), InProgress), "held, with no latency to wait"
    await fal.subscribe(TEXT_TO_IMAGE, {"prompt": "second"})
    assert len((await held.get())["images"]) == 1
    assert fake.max_in_flight == 2
    # Open now: the next request is not held.
    await fal.subscribe(TEXT_TO_IMAGE, {"prompt": "third"})


@pytest.mark.asyncio
async def test_a_gate_that_is_never_reached_opens_at_its_timeout(fake):
    fake.gate(5, timeout=0.2)
    assert len((await client().subscribe(TEXT_TO_IMAGE, {"prompt": "alone"}))["images"]) == 1
    assert fake.max_in_flight == 1


@pytest.mark.asyncio
async def test_cancel_a_never_finishing_request(fake):
    fake.inject(Fault.never_finish())
    fal = client()
    handle = await fal.submit(TEXT_TO_IMAGE, {"prompt": "p"})
    fake.wait_until(lambda: fake.submissions[0].state == "IN_PROGRESS")
    await asyncio.sleep(0.2)
    assert isinstance(await handle.status(), InProgress)

    await handle.cancel()
    status = await handle.status(with_logs=True)
    while not isinstance(status, Completed):
        status = await handle.status(with_logs=True)
    assert (status.error, status.error_type) == ("Request was cancelled", "client_cancelled")
    with pytest.raises(FalClientHTTPError) as caught:
        await handle.get()
    assert (caught.value.status_code, caught.value.error_type) == (499, "client_cancelled")
    with pytest.raises(FalClientHTTPError) as again:
        await handle.cancel()
    assert again.value.status_code == 400  # ALREADY_COMPLETED
    (sub,) = fake.submissions
    assert sub.cancelled and sub.state == "COMPLETED"


@pytest.mark.asyncio
async def test_client_timeout_cancels_a_never_finishing_request(fake):
    fake.inject(Fault.never_finish())
    with pytest.raises(fal_client.FalClientTimeoutError):
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"}, client_timeout=1.5)
    (sub,) = fake.submissions
    fake.wait_until(lambda: sub.state == "COMPLETED")
    assert sub.cancelled


@pytest.mark.asyncio
async def test_run_timeout_is_retried_and_the_hung_request_cancelled(fake, no_retry_delay):
    # Surprise: fal_client retries a client-side read timeout on run(), which
    # starts the model again; the fake cancels the first one on disconnect.
    fake.inject(Fault.never_finish())
    result = await client().run(TEXT_TO_IMAGE, {"prompt": "p"}, timeout=1.0)
    assert len(result["images"]) == 1
    first, second = fake.wait_for_submissions(2)
    fake.wait_until(lambda: first.state == "COMPLETED")
    assert first.cancelled and not second.cancelled


# --- faults ----------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_submit_503_with_error_type_is_not_retried(fake):
    fake.inject(
        Fault.http_error(
            "submit", 503, detail="No runner available", error_type="runner_unavailable"
        )
    )
    with pytest.raises(FalClientHTTPError) as caught:
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    error = caught.value
    assert (error.status_code, error.message, error.error_type) == (
        503,
        "No runner available",
        "runner_unavailable",
    )
    assert "x-fal-request-id" in error.response_headers
    assert [s.state for s in fake.submissions] == ["REJECTED"]


@pytest.mark.asyncio
async def test_submit_429_is_retried_transparently(fake, no_retry_delay):
    fake.inject(Fault.http_error("submit", 429, detail="Too many requests"))
    result = await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert len(result["images"]) == 1
    assert [s.state for s in fake.submissions] == ["REJECTED", "COMPLETED"]


@pytest.mark.asyncio
async def test_nginx_looking_502_is_retried(fake, no_retry_delay):
    fake.inject(Fault.http_error("submit", 502, ingress=True), times=2)
    await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert [s.state for s in fake.submissions] == ["REJECTED", "REJECTED", "COMPLETED"]


@pytest.mark.asyncio
@pytest.mark.parametrize("where", ["status", "result"])
async def test_5xx_on_status_or_result_raises(fake, where):
    fake.inject(Fault.http_error(where, 500, detail="boom"))
    with pytest.raises(FalClientHTTPError) as caught:
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert (caught.value.status_code, caught.value.message) == (500, "boom")


@pytest.mark.asyncio
async def test_complete_with_error(fake):
    fake.inject(Fault.complete_with_error("GPU fell over", "runner_server_error"))
    events: list[Any] = []
    with pytest.raises(FalClientHTTPError) as caught:
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"}, on_queue_update=events.append)
    assert (caught.value.status_code, caught.value.message, caught.value.error_type) == (
        500,
        "GPU fell over",
        "runner_server_error",
    )
    assert (events[-1].error, events[-1].error_type) == ("GPU fell over", "runner_server_error")


@pytest.mark.asyncio
async def test_content_policy(fake):
    fake.inject(Fault.content_policy())
    with pytest.raises(FalClientHTTPError) as caught:
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert caught.value.status_code == 422
    (item,) = detail_of(caught.value)
    assert item["loc"] == ["body", "prompt"]
    assert item["type"] == "content_policy_violation"
    assert "content policy" in item["msg"]


@pytest.mark.asyncio
async def test_malformed_result_raises_json_error(fake):
    fake.inject(Fault.malformed_result())
    with pytest.raises(json.JSONDecodeError):
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})


@pytest.mark.asyncio
async def test_truncated_result_is_retried_then_raises(fake, no_retry_delay):
    fake.inject(Fault.truncated_result())
    with pytest.raises(httpx.RemoteProtocolError):
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert len(result_gets(fake)) == 10  # fal_client's MAX_ATTEMPTS


@pytest.mark.asyncio
async def test_one_truncated_result_is_hidden_by_the_retry(fake, no_retry_delay):
    fake.inject(Fault.truncated_result(hits=1))
    result = await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert len(result["images"]) == 1
    assert len(result_gets(fake)) == 2


@pytest.mark.asyncio
async def test_dropped_result_connection_is_retried_then_raises(fake, no_retry_delay):
    fake.inject(Fault.drop_connection("result"))
    with pytest.raises(httpx.RemoteProtocolError):
        await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    gets = result_gets(fake)
    assert len(gets) == 10 and {g.status for g in gets} == {None}


@pytest.mark.asyncio
async def test_dropped_submit_is_retried(fake, no_retry_delay):
    fake.inject(Fault.drop_connection("submit"))
    await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    assert [s.state for s in fake.submissions] == ["REJECTED", "COMPLETED"]


@pytest.mark.asyncio
async def test_no_images(fake):
    fake.inject(Fault.no_images())
    assert await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p", "num_images": 3}) == {
        "images": []
    }


@pytest.mark.asyncio
async def test_broken_image_urls(fake):
    fake.inject(Fault.broken_image_urls([1]))
    result = await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p", "num_images": 2})
    first, second = (image["url"] for image in result["images"])
    assert open_image(fake.download(first)).size == (1024, 1024)
    with pytest.raises(httpx.HTTPStatusError) as caught:
        fake.download(second)
    assert caught.value.response.status_code == 404


@pytest.mark.asyncio
async def test_dropped_image_urls_lose_the_connection_then_serve(fake):
    fake.inject(Fault.dropped_image_urls([0], hits=2))
    result = await client().subscribe(TEXT_TO_IMAGE, {"prompt": "p"})
    [url] = (image["url"] for image in result["images"])
    for _ in range(2):
        with pytest.raises(httpx.RemoteProtocolError):
            fake.download(url)
    assert open_image(fake.download(url)).size == (1024, 1024)
    files = [h for h in fake.http_log if h.path.startswith("/files/")]
    assert [h.status for h in files] == [None, None, 200]


@pytest.mark.asyncio
async def test_slow_adds_latency_to_one_request(fake):
    # What happened, not how long it took: the slowed request is still working when
    # the next one, submitted after it, has finished.
    fake.inject(Fault.slow(600))
    fal = client()
    slowed = await fal.submit(TEXT_TO_IMAGE, {"prompt": "slowed"})
    result = await fal.subscribe(TEXT_TO_IMAGE, {"prompt": "next"})
    assert len(result["images"]) == 1
    first, second = fake.submissions  # the fault went to the first submit
    assert (first.fault, second.fault) == (Fault.slow(600), None)
    assert (first.state, second.state) == ("IN_PROGRESS", "COMPLETED")
    await slowed.cancel()
    await asyncio.to_thread(fake.wait_until, lambda: first.state == "COMPLETED")
    assert first.cancelled


@pytest.mark.asyncio
async def test_one_failed_upload_falls_back_to_storage(fake):
    # Surprise: fal_client.upload() falls back from the v3 CDN to REST storage.
    fake.inject(Fault.http_error("upload", 500, detail="cdn down"))
    url = await client("storage-key").upload(b"hello", "text/plain", "hello.txt")
    assert fake.download(url) == b"hello"
    (upload,) = fake.uploads
    assert (upload.via, upload.file_name, upload.key) == ("storage", "hello.txt", "storage-key")


@pytest.mark.asyncio
async def test_two_failed_uploads_raise(fake):
    fake.inject(Fault.http_error("upload", 500, detail="storage down"), times=2)
    with pytest.raises(FalClientHTTPError) as caught:
        await client().upload(b"hello", "text/plain", "hello.txt")
    assert (caught.value.status_code, caught.value.message) == (500, "storage down")
    assert fake.uploads == []


@pytest.mark.asyncio
async def test_dropped_upload_is_retried_on_the_cdn(fake, no_retry_delay):
    fake.inject(Fault.drop_connection("upload"))
    await client().upload(b"x", "application/octet-stream", "x.bin")
    posts = [h for h in fake.http_log if h.path == "/files/upload"]
    assert [p.status for p in posts] == [None, 200]
    assert [u.via for u in fake.uploads] == ["cdn"]


def test_reset_clears_records_faults_and_knobs(fake, sync_client):
    fake.reset()
    defaults = (fake.latency, fake.queue_time, fake.accepted_keys)
    fake.inject(Fault.no_images(), times=3)
    fake.latency, fake.queue_time, fake.accepted_keys = 0.01, 0.01, {"x"}
    sync_client("x").run(TEXT_TO_IMAGE, {"prompt": "p"}, timeout=20)
    assert fake.max_in_flight == 1
    fake.reset()
    assert (fake.submissions, fake.http_log, fake.pending_faults) == ([], [], [])
    assert (fake.latency, fake.queue_time, fake.accepted_keys) == defaults
    assert fake.max_in_flight == 0


# --- lifecycle, images, CLI ------------------------------------------------------------


def test_start_stop_restart_on_the_same_ports(tmp_path):
    queue_sock, main_sock = reserve_ports()
    ports = (queue_sock.getsockname()[1], main_sock.getsockname()[1])
    other = FakeFal(sockets=(queue_sock, main_sock), workdir=tmp_path, latency=0.01)
    assert (other.queue_port, other.main_port) == ports
    assert other.ca_pem_path.is_file() and other.env()["SSL_CERT_FILE"] == str(other.ca_pem_path)
    for _ in range(3):
        with other:
            response = httpx.get(f"{other.cdn_url}/files/x/y.png", verify=other.ssl_context())
            assert response.status_code == 404
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{other.cdn_url}/files/x/y.png", verify=other.ssl_context())
    other.close()


def test_render_makes_the_size_asked_for_and_varies():
    assert open_image(render(RenderSpec("large", 0, 1536, 1024, "png"))).size == (1536, 1024)
    a, b = (render(RenderSpec(prompt, 0, 64, 64, "png")) for prompt in ("cat", "dog"))
    assert open_image(a).tobytes() != open_image(b).tobytes()
    transparent = open_image(render(RenderSpec("t", 0, 64, 64, "png", transparent=True)))
    assert transparent.mode == "RGBA" and transparent.getchannel("A").getextrema() == (0, 255)


ADOPTION_SCRIPTS = {
    # A conftest started its own FakeFal and exported env before importing fal_client.
    "adopts-running-fake": """
from tests.fakefal import FakeFal, shared_fake
import os
mine = FakeFal()
os.environ.update(mine.env())
mine.start()
import fal_client
assert shared_fake() is mine
print("ok")
""",
    # fal_client was imported pointing at ports nobody serves yet.
    "starts-on-fal-client-ports": """
from tests.fakefal import FakeFal, shared_fake
import os
probe = FakeFal()
os.environ.update(probe.env())
ports = (probe.queue_port, probe.main_port)
probe.close()
import fal_client
fake = shared_fake()
assert (fake.queue_port, fake.main_port) == ports and fake.running
result = fal_client.SyncClient(key="k").run("fal-ai/gpt-image-1.5", {"prompt": "p"})
assert len(result["images"]) == 1
print("ok")
""",
    # fal_client was imported with the real hosts: no fake can help.
    "refuses-real-hosts": """
import os
for name in ("FAL_RUN_HOST", "FAL_QUEUE_RUN_HOST"):
    os.environ.pop(name, None)
import fal_client
from tests.fakefal import shared_fake
try:
    shared_fake()
except RuntimeError as exc:
    assert "fal_client was imported before" in str(exc)
    print("ok")
""",
}


@pytest.mark.parametrize("script", ADOPTION_SCRIPTS.values(), ids=ADOPTION_SCRIPTS.keys())
def test_shared_fake_when_fal_client_is_imported_first(script):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FAL_", "SSL_CERT"))}
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_cli_prints_env_then_ready_and_stops_on_sigterm(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.fakefal", "--latency", "0.01", "--workdir", str(tmp_path)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        env: dict[str, str] = {}
        for line in process.stdout:
            line = line.strip()
            if line == "ready":
                break
            assert line.startswith("export ")
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value
        assert set(env) == {
            "FAL_RUN_HOST",
            "FAL_QUEUE_RUN_HOST",
            "SSL_CERT_FILE",
            "FAL_REST_URL",
            "FAL_CDN_URL",
        }
        trust = ssl.create_default_context(cafile=env["SSL_CERT_FILE"])
        with httpx.Client(verify=trust) as http:
            submitted = http.post(
                f"https://{env['FAL_QUEUE_RUN_HOST']}/{TEXT_TO_IMAGE}",
                json={"prompt": "p"},
                headers={"Authorization": "Key k"},
            )
            assert submitted.status_code == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def test_the_fakes_sockets_say_tcp_so_asyncio_turns_nagle_off():
    """With proto 0, asyncio leaves Nagle on and some replies wait 40 ms for an ACK."""
    import socket

    from tests.fakefal.server import _bind

    with _bind(0) as sock:
        assert sock.proto == socket.IPPROTO_TCP
