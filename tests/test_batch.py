"""Batch runs: the prompt list and CSV rules, `/batch` through gradio_client, and the
Batch area in a real browser; the real server against the fake fal service."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from backend.batch import batch_jobs
from backend.endpoints import ENDPOINTS
from backend.errors import InvalidInput
from tests.fakefal import Fault

GENERATE = ENDPOINTS.text_to_image
BASE = {
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "low",
    "num_images": 1,
    "output_format": "png",
    "sync_mode": False,
}


def jobs(text: str, max_items: int = 100) -> list[dict[str, Any]]:
    return [job.model_dump() for job in batch_jobs(text, BASE, GENERATE, max_items=max_items)]


# --- the rules -------------------------------------------------------------------------


def test_one_prompt_per_line_blank_lines_and_spaces_ignored():
    made = jobs("  a red fox  \n\n\t\na blue heron, at dusk\n   \nthird one\n")
    assert [job["prompt"] for job in made] == ["a red fox", "a blue heron, at dusk", "third one"]
    assert all({k: job[k] for k in BASE} == BASE for job in made)


def test_csv_columns_override_the_current_parameters_for_their_row():
    made = jobs(
        "prompt,quality,num_images,background\n"
        '"a fox, in snow",high,2,\n'
        "a heron,,,transparent\n"
        ",high,,\n"  # no prompt: skipped
        '"a multi-line\nprompt",medium,,\n'
    )
    assert [(j["prompt"], j["quality"], j["num_images"], j["background"]) for j in made] == [
        ("a fox, in snow", "high", 2, "auto"),
        ("a heron", "low", 1, "transparent"),
        ("a multi-line\nprompt", "medium", 1, "auto"),
    ]


def test_a_csv_with_only_a_prompt_column():
    assert [j["prompt"] for j in jobs("Prompt\none\ntwo\n")] == ["one", "two"]


@pytest.mark.parametrize(
    ("text", "sentence"),
    [
        ("", "There are no prompts in the batch"),
        ("  \n\n \t", "There are no prompts in the batch"),
        ("prompt,quality\n", "There are no prompts in the batch"),
        ("prompt,qualty\na fox,high\n", "a column named 'qualty', which is not a parameter"),
        ("prompt,quality\na fox,ultra\n", "Line 2: quality"),
        ("prompt,num_images\na fox,9\n", "Line 2: num_images"),
    ],
)
def test_mistakes_refuse_the_whole_batch_in_a_sentence(text, sentence):
    with pytest.raises(InvalidInput) as caught:
        jobs(text)
    assert sentence in caught.value.message
    assert caught.value.message.endswith("Nothing was sent.")


def test_a_batch_over_the_limit_is_refused():
    with pytest.raises(InvalidInput, match="at most 2 at once"):
        jobs("a\nb\nc", max_items=2)


# --- /batch through gradio_client ---------------------------------------------------


def batch(api: Client, prompts: str, **overrides):
    values = {
        "prompts": prompts,
        "image_size": "1536x1024",
        "background": "opaque",
        "quality": "low",
        "num_images": 1,
        "output_format": "jpeg",
        "fal_key": "",
        **overrides,
    }
    return api.predict(**values, api_name="/batch")


def test_three_prompts_become_three_requests_with_the_batch_parameters(api, fake):
    gallery, records, status = batch(api, "a red fox\n\n  a blue heron  \na green frog\n")
    prompts = ["a red fox", "a blue heron", "a green frog"]
    assert sorted(s.arguments["prompt"] for s in fake.submissions) == sorted(prompts)
    for sub in fake.submissions:
        assert sub.arguments == {
            "prompt": sub.arguments["prompt"],
            "image_size": "1536x1024",
            "background": "opaque",
            "quality": "low",
            "num_images": 1,
            "output_format": "jpeg",
            "sync_mode": False,
        }
    # One record per prompt, in the order given, each with its own request id.
    assert [r["prompt"] for r in records] == prompts
    assert [r["status"] for r in records] == ["done"] * 3
    by_prompt = {s.arguments["prompt"]: s.request_id for s in fake.submissions}
    assert [r["request_id"] for r in records] == [by_prompt[p] for p in prompts]
    assert "key" in records[0] and "host0000" not in str(records)
    assert len(gallery) == 3 and all(Path(item["image"]).exists() for item in gallery)
    assert status.startswith("✅ Batch finished: all 3 done")


def test_csv_columns_override_parameters_through_the_api(api, fake):
    _, records, _ = batch(api, "prompt,quality,num_images\nfirst,high,2\nsecond,,\n")
    by_prompt = {s.arguments["prompt"]: s.arguments for s in fake.submissions}
    assert (by_prompt["first"]["quality"], by_prompt["first"]["num_images"]) == ("high", 2)
    assert (by_prompt["second"]["quality"], by_prompt["second"]["num_images"]) == ("low", 1)
    assert [len(r["images"]) for r in records] == [2, 1]


def test_an_empty_list_is_refused_with_nothing_sent(api, fake):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as caught:
        batch(api, "\n   \n")
    assert "There are no prompts in the batch" in str(caught.value)
    assert fake.submissions == []


def test_the_batch_runs_with_bounded_concurrency(fake, tmp_path):
    from tests.conftest import start_app, stop_app

    app = start_app(tmp_path, STUDIO_BATCH_CONCURRENCY="2")
    try:
        fake.latency = 0.6
        fake.gate(3, timeout=3.0)  # three at once would open it: two never do
        _, records, _ = batch(Client(app.url, verbose=False), "\n".join("abcde"))
    finally:
        stop_app(app)
    assert [r["status"] for r in records] == ["done"] * 5
    assert fake.max_in_flight == 2


# --- the Batch area in a real browser -------------------------------------------------

STATUS_INCLUDES = "document.querySelector('#t2i-batch-status')?.innerText.includes({text!r})"


@pytest.mark.browser
def test_the_page_shows_count_and_cost_then_runs_the_batch(browser, app_server, fake, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(app_server.url)
        page.get_by_text("Batch: many prompts at once").click()
        page.fill("#t2i-batch-prompts textarea", "one fox\n\ntwo herons\nthree frogs")
        page.wait_for_function(
            "document.querySelector('#t2i-batch-summary')?.innerText.includes('3 prompts')"
        )
        # Quality high at 1024x1024 ($0.133 each, plus a little for the prompt's tokens).
        assert "estimated cost $0.40" in page.inner_text("#t2i-batch-summary")
        assert fake.submissions == []
        page.click("#t2i-batch-run")
        page.wait_for_function(STATUS_INCLUDES.format(text="Batch finished"), timeout=30_000)
        page.wait_for_function(
            "document.querySelectorAll('#t2i-batch-gallery .thumbnail-item, "
            "#t2i-batch-gallery img').length >= 3"
        )
        assert "all 3 done" in page.inner_text("#t2i-batch-status")
        page.screenshot(path=str(artifacts / "batch.png"), full_page=True)
    finally:
        page.close()
    assert sorted(s.arguments["prompt"] for s in fake.submissions) == [
        "one fox",
        "three frogs",
        "two herons",
    ]
    assert {s.arguments["quality"] for s in fake.submissions} == {"high"}


@pytest.mark.browser
def test_stop_halfway_keeps_the_finished_ones_and_cancels_the_rest(browser, fake, tmp_path):
    from tests.conftest import start_app, stop_app

    app = start_app(tmp_path)
    fake.inject(Fault.never_finish(), prompt="never finishes")
    page = browser.new_page(viewport={"width": 1280, "height": 1400})
    try:
        page.goto(app.url)
        page.get_by_text("Batch: many prompts at once").click()
        page.fill("#t2i-batch-prompts textarea", "first\nnever finishes\nthird")
        page.click("#t2i-batch-run")
        fake.wait_until(
            lambda: sum(s.state == "COMPLETED" for s in fake.submissions) == 2,
            20,
            "two requests to finish",
        )
        [stuck] = [s for s in fake.submissions if s.arguments["prompt"] == "never finishes"]
        page.wait_for_function(STATUS_INCLUDES.format(text="2 of 3 done"), timeout=15_000)
        page.click("#t2i-batch-stop")
        fake.wait_until(lambda: stuck.cancelled, message="the cancel to reach fal")
        page.wait_for_function(STATUS_INCLUDES.format(text="Batch stopped"), timeout=15_000)
        assert "2 of 3 finished and kept" in page.inner_text("#t2i-batch-status")
        assert page.locator("#t2i-batch-gallery img").count() == 2
    finally:
        page.close()
        stop_app(app)
    connection = sqlite3.connect(tmp_path / "studio-data" / "studio.sqlite3")
    try:
        runs = connection.execute("SELECT prompt, status, batch_id FROM runs").fetchall()
    finally:
        connection.close()
    assert {prompt: status for prompt, status, _ in runs} == {
        "first": "finished",
        "never finishes": "stopped",
        "third": "finished",
    }
    assert len({batch_id for _, _, batch_id in runs}) == 1, "one batch in history"


@pytest.mark.browser
def test_a_batch_goes_on_through_a_reload_and_the_new_page_follows_and_stops_it(
    browser, fake, tmp_path
):
    # Two at a time and five prompts: at the reload, some have not been sent yet (the
    # first two take 1.5 s at fal, the last never ends). They are sent all the same,
    # the reopened page shows the batch's table, and its Stop batch ends the one that
    # never finishes.
    from tests.conftest import start_app, stop_app

    app = start_app(tmp_path, STUDIO_BATCH_CONCURRENCY="2")
    fake.latency = 1.5
    fake.inject(Fault.never_finish(), prompt="e never finishes")
    prompts = ["a fox", "b heron", "c frog", "d owl", "e never finishes"]
    context = browser.new_context(viewport={"width": 1280, "height": 1400})
    page = context.new_page()
    try:
        page.goto(app.url)
        page.get_by_text("Batch: many prompts at once").click()
        page.fill("#t2i-batch-prompts textarea", "\n".join(prompts))
        page.click("#t2i-batch-run")
        fake.wait_for_submissions(2)
        page.wait_for_function(STATUS_INCLUDES.format(text="of 5 done"), timeout=15_000)
        page.reload()
        # The reopened page opens the area on the same batch, still going.
        page.wait_for_function(STATUS_INCLUDES.format(text="of 5 done"), timeout=15_000)
        assert page.is_visible("#t2i-batch-status")
        fake.wait_until(
            lambda: sum(s.state == "COMPLETED" for s in fake.submissions) == 4,
            30,
            "the four that finish to finish",
        )
        page.wait_for_function(STATUS_INCLUDES.format(text="4 of 5 done"), timeout=15_000)
        [stuck] = [s for s in fake.submissions if s.arguments["prompt"] == "e never finishes"]
        page.click("#t2i-batch-stop")
        fake.wait_until(lambda: stuck.cancelled, message="the cancel to reach fal")
        page.wait_for_function(STATUS_INCLUDES.format(text="Batch stopped"), timeout=15_000)
        assert "4 of 5 finished and kept" in page.inner_text("#t2i-batch-status")
        # History, refreshed once the batch ended, counts its four finished runs.
        page.get_by_role("tab", name="History").click()
        page.wait_for_function(
            "document.querySelector('#history-total')?.innerText.includes('4 runs')",
            timeout=10_000,
        )
    finally:
        context.close()
        stop_app(app)
    assert sorted(s.arguments["prompt"] for s in fake.submissions) == prompts
    assert [s.arguments["prompt"] for s in fake.submissions if s.cancelled] == ["e never finishes"]
