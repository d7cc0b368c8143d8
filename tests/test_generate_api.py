"""`/generate` through the real server and gradio_client, against the fake fal service.

Every assertion is on what the fake actually received, or on the files the
client actually got back.
"""

from __future__ import annotations

import json
import threading
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client
from PIL import Image

from tests.conftest import HOST_KEY, RunningApp, start_app, stop_app
from tests.fakefal import Fault

T2I = "fal-ai/gpt-image-1.5"
VISITOR_KEY = "visitor1-0000-4000-8000-000000000001:11111111111111111111111111111111"


def generate(api: Client, **overrides):
    values = {
        "prompt": "a lighthouse at dusk",
        "image_size": "1024x1024",
        "background": "auto",
        "quality": "high",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
        "fal_key": "",
    }
    values.update(overrides)
    return api.predict(**values, api_name="/generate")


def test_every_parameter_reaches_fal_under_its_seed_name(api, fake):
    gallery, record, status = generate(
        api,
        prompt="a red fox in snow, 35mm",
        image_size="1536x1024",
        background="transparent",
        quality="low",
        num_images=3,
        output_format="webp",
    )
    [sub] = fake.submissions
    assert sub.endpoint == T2I
    assert sub.arguments == {
        "prompt": "a red fox in snow, 35mm",
        "image_size": "1536x1024",
        "background": "transparent",
        "quality": "low",
        "num_images": 3,
        "output_format": "webp",
        "sync_mode": False,
    }
    assert sub.schema_errors == []
    assert sub.authorization == f"Key {HOST_KEY}"

    assert len(gallery) == 3
    for item in gallery:
        with Image.open(item["image"]) as image:
            assert image.format == "WEBP"  # as fal made it: not re-encoded
            assert image.size == (1536, 1024)
        assert "1536×1024 WEBP" in item["caption"]

    assert record["request_id"] == sub.request_id
    assert record["arguments"] == sub.arguments
    assert record["key"] == "the host's key"
    assert set(record["timings"]) == {"queued_s", "running_s", "fetching_s", "total_s"}
    assert HOST_KEY not in json.dumps(record)
    assert "3 images" in status and sub.request_id in status


def test_defaults_of_the_api_are_the_seeds_defaults(api, fake):
    api.predict(prompt="only a prompt", api_name="/generate")
    [sub] = fake.submissions
    assert sub.arguments == {
        "prompt": "only a prompt",
        "image_size": "1024x1024",
        "background": "auto",
        "quality": "high",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
    }


def test_sync_mode_images_arrive_as_data_uris_and_are_saved_as_sent(api, fake):
    gallery, record, _ = generate(api, sync_mode=True, output_format="jpeg", num_images=2)
    [sub] = fake.submissions
    assert sub.arguments["sync_mode"] is True
    assert len(gallery) == 2
    for item in gallery:
        with Image.open(item["image"]) as image:
            assert image.format == "JPEG"
    assert [img["url"] for img in record["images"]] == [None, None]


def test_a_callers_own_key_is_used_for_their_request(api, fake):
    _, record, _ = generate(api, fal_key=VISITOR_KEY)
    [sub] = fake.submissions
    assert sub.authorization == f"Key {VISITOR_KEY}"
    assert record["key"] == "your key"
    assert VISITOR_KEY not in json.dumps(record)


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        ({"background": "transparent", "output_format": "jpeg"}, "needs png or webp"),
        ({"prompt": "   "}, "prompt is empty"),
        ({"num_images": 9}, "num_images must be a whole number from 1 to 4."),
        # Out-of-choice values are refused by Gradio's own dropdowns, in its words.
        ({"image_size": "auto"}, "auto is not in the list of choices"),
        ({"quality": "ultra"}, "ultra is not in the list of choices"),
        ({"output_format": "gif"}, "gif is not in the list of choices"),
    ],
)
def test_requests_fal_would_refuse_are_never_sent(api, fake, overrides, phrase):
    with pytest.raises(Exception) as caught:
        generate(api, **overrides)
    assert phrase in str(caught.value)
    assert "Traceback" not in str(caught.value)
    assert fake.submissions == []


def test_a_refusal_from_fal_is_one_sentence_and_the_next_request_works(api, fake):
    fake.inject(Fault.content_policy())
    with pytest.raises(Exception) as caught:
        generate(api)
    assert "content policy" in str(caught.value)
    gallery, _, _ = generate(api)
    assert len(gallery) == 1


def test_progress_streams_queue_position_then_model_logs(api, fake):
    fake.queue_time = 0.8
    fake.latency = 1.2
    job = api.submit(
        prompt="progress please",
        image_size="1024x1024",
        background="auto",
        quality="high",
        num_images=1,
        output_format="png",
        sync_mode=False,
        fal_key="",
        api_name="/generate",
    )
    job.result(timeout=30)
    statuses = [out[2] for out in job.outputs()]
    queued = [i for i, s in enumerate(statuses) if "queue" in s]
    running = [i for i, s in enumerate(statuses) if "Generating" in s]
    assert queued and running and queued[0] < running[0]
    assert any("```" in statuses[i] for i in running), "the model's log lines are shown"
    assert statuses[-1].startswith("✅")


def test_requests_from_many_users_run_at_the_same_time(app_server, fake):
    users = 8
    # Distinct visitors behind a proxy (the app counts jobs per visitor), every client
    # connected before any calls: a client's start-up is no part of the test.
    clients = [
        Client(app_server.url, verbose=False, headers={"X-Forwarded-For": f"198.51.100.{n}"})
        for n in range(users)
    ]
    # The fake holds each request until all are running together: no window of time
    # for a loaded machine to miss, and one at a time never gets there.
    fake.gate(users)
    release = threading.Barrier(users)
    results: list[object] = []
    errors: list[BaseException] = []

    def one_user(n: int) -> None:
        try:
            release.wait(timeout=30)
            results.append(clients[n].predict(prompt=f"user {n}", api_name="/generate"))
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=one_user, args=(n,)) for n in range(users)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert errors == [] and len(results) == users
    # Gradio's default (one at a time per event) would give 1 here.
    assert fake.max_in_flight == users


def test_the_api_names_its_parameters_like_the_endpoint(app_server):
    with urllib.request.urlopen(app_server.url + "gradio_api/info") as response:
        info = json.load(response)
    params = info["named_endpoints"]["/generate"]["parameters"]
    assert [p["parameter_name"] for p in params] == [
        "prompt",
        "image_size",
        "background",
        "quality",
        "num_images",
        "output_format",
        "sync_mode",
        "fal_key",
    ]
    defaults = {p["parameter_name"]: p.get("parameter_default") for p in params}
    assert defaults["image_size"] == "1024x1024"
    assert defaults["quality"] == "high"
    assert defaults["fal_key"] == ""


def test_without_any_key_the_app_runs_in_demo_mode_and_says_how_to_add_one(fake, tmp_path: Path):
    app: RunningApp = start_app(tmp_path, FAL_KEY="")
    try:
        with urllib.request.urlopen(app.url + "config") as response:
            page = response.read().decode()
        assert "No key: add one" in page and "demo mode" in page
        client = Client(app.url, verbose=False)
        gallery, record, status = client.predict(
            prompt="hello", output_format="webp", image_size="1536x1024", api_name="/generate"
        )
        assert "Demo mode" in status
        assert record["key"] == "demo" and record["request_id"].startswith("demo-")
        with Image.open(gallery[0]["image"]) as image:
            assert (image.format, image.size) == ("WEBP", (1536, 1024))
        assert fake.submissions == [] and fake.http_log == [], "demo mode sends nothing"
        # A visitor's own key is used for real, even on a host without one.
        _, record, _ = client.predict(prompt="hello", fal_key=VISITOR_KEY, api_name="/generate")
        assert record["key"] == "your key"
        assert len(fake.submissions) == 1
    finally:
        stop_app(app)


def test_with_demo_mode_off_a_missing_key_is_one_sentence(fake, tmp_path: Path):
    app: RunningApp = start_app(tmp_path, FAL_KEY="", STUDIO_DEMO_MODE="false")
    try:
        with pytest.raises(Exception) as caught:
            Client(app.url, verbose=False).predict(prompt="hello", api_name="/generate")
        assert "No fal API key is set" in str(caught.value)
        assert fake.submissions == []
    finally:
        stop_app(app)
