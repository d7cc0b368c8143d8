"""History that lasts: the real app process restarted, killed mid-run, a page reloaded
mid-run; real SQLite, a real browser, the fake fal service."""

from __future__ import annotations

import os
import signal
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from gradio_client import Client

from tests.conftest import RunningApp, free_port, start_app, stop_app
from tests.fakefal import Fault
from tests.test_browser_generate import choose
from tests.test_browser_history import generate, open_history

pytestmark = pytest.mark.browser

STATUS_INCLUDES = "document.querySelector('#t2i-status')?.innerText.includes({text!r})"
TOTAL_INCLUDES = "document.querySelector('#history-total')?.innerText.includes({text!r})"


def rows(app_dir: Path, query: str) -> list[tuple[Any, ...]]:
    """Read the app's database directly (its default place: ./studio-data)."""
    connection = sqlite3.connect(app_dir / "studio-data" / "studio.sqlite3")
    try:
        return connection.execute(query).fetchall()
    finally:
        connection.close()


def assert_outputs_agree(app_dir: Path) -> None:
    """No row points at a missing file; no image in outputs/ is without its row."""
    paths = {Path(path) for (path,) in rows(app_dir, "SELECT path FROM run_files")}
    missing = [path for path in paths if not path.is_file()]
    assert missing == [], f"rows point at missing files: {missing}"
    outputs = app_dir / "outputs"
    images = {p.resolve() for p in outputs.glob("*") if p.suffix != ".json"}
    assert images <= {p.resolve() for p in paths}, "a file in outputs/ has no row"


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    return tmp_path


def restart(app: RunningApp, app_dir: Path, *, kill: bool = False) -> RunningApp:
    """The same app, on the same address (the browser keeps its local storage)."""
    port = int(app.url.rstrip("/").rsplit(":", 1)[1])
    if kill:
        os.kill(app.process.pid, signal.SIGKILL)
        app.process.wait(timeout=10)
    else:
        stop_app(app)
    return start_app(app_dir, port=port)


def test_history_outlasts_a_restart_of_the_app(browser, fake, app_dir):
    app = start_app(app_dir, port=free_port())
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.goto(app.url)
        choose(page, "t2i-quality", "low")
        generate(page, "a lighthouse in fog, remembered")

        app = restart(app, app_dir)
        page.goto(app.url)
        open_history(page)
        page.wait_for_function(TOTAL_INCLUDES.format(text="1 run in this browser"))
        assert page.locator("#history .thumbnail-item").count() == 1
        assert "a lighthouse in fog" in page.inner_text("#history")
        page.locator("#history .thumbnail-item").first.click(position={"x": 10, "y": 10})
        page.wait_for_function(
            "document.querySelector('#t2i-prompt textarea').value"
            " === 'a lighthouse in fog, remembered'"
        )
        assert page.input_value("#t2i-quality input") == "low"
    finally:
        context.close()
        stop_app(app)
    [(status, request_id)] = rows(app_dir, "SELECT status, request_id FROM runs")
    assert (status, request_id) == ("finished", fake.submissions[0].request_id)
    assert_outputs_agree(app_dir)


def test_a_run_killed_mid_way_is_interrupted_and_its_result_can_be_fetched(
    browser, fake, app_dir, artifacts
):
    app = start_app(app_dir, port=free_port())
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    try:
        page = context.new_page()
        page.goto(app.url)
        choose(page, "t2i-quality", "low")
        # A first run that finishes, so the outputs folder has something to agree on.
        generate(page, "a finished run before the crash")
        fake.latency = 3.0
        page.fill("#t2i-prompt textarea", "a run the crash interrupts")
        page.click("#t2i-run")
        page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        interrupted = fake.submissions[-1]

        app = restart(app, app_dir, kill=True)
        assert_outputs_agree(app_dir)
        statuses = dict(rows(app_dir, "SELECT prompt, status FROM runs"))
        assert statuses == {
            "a finished run before the crash": "finished",
            "a run the crash interrupts": "interrupted",
        }
        [(request_id,)] = rows(app_dir, "SELECT request_id FROM runs WHERE status='interrupted'")
        assert request_id == interrupted.request_id
        # fal finishes it meanwhile (nobody asked it to stop).
        fake.wait_until(lambda: interrupted.state == "COMPLETED", 15, "the request to finish")
        assert not interrupted.cancelled

        page.goto(app.url)
        open_history(page)
        page.wait_for_selector("#history-interrupted", timeout=15_000)
        page.click("#history-interrupted input")
        page.get_by_role("option").filter(has_text="a run the crash interrupts").click()
        page.click("#history-fetch")
        page.wait_for_function(
            "document.querySelector('#history-status')?.innerText.includes('Fetched 1 image')",
            timeout=20_000,
        )
        page.wait_for_function(TOTAL_INCLUDES.format(text="2 runs in this browser"))
        page.wait_for_function("document.querySelectorAll('#history .thumbnail-item').length === 2")
        page.screenshot(path=str(artifacts / "history-fetched.png"), full_page=True)
    finally:
        context.close()
        stop_app(app)
    # Nothing was sent again: the result was fetched by its request id.
    assert [s.arguments["prompt"] for s in fake.submissions].count(
        "a run the crash interrupts"
    ) == 1
    statuses = dict(rows(app_dir, "SELECT prompt, status FROM runs"))
    assert statuses["a run the crash interrupts"] == "finished"
    assert_outputs_agree(app_dir)
    [(fal_url,)] = rows(
        app_dir,
        "SELECT fal_url FROM run_files JOIN runs ON runs.id = run_id"
        " WHERE prompt = 'a run the crash interrupts'",
    )
    assert fal_url.startswith(f"https://{fake.run_host}/")  # where fal served it


def test_a_reload_mid_run_lets_it_finish_and_the_reloaded_page_shows_it(
    browser, app_server, fake, artifacts
):
    fake.latency = 3.0
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.goto(app_server.url)
        choose(page, "t2i-quality", "low")
        page.fill("#t2i-prompt textarea", "a run that outlives its page")
        page.click("#t2i-run")
        page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        [sub] = fake.wait_for_submissions(1)

        page.reload()
        # The reloaded page follows the run (nothing clicked): progress, then its image.
        page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        page.wait_for_function(STATUS_INCLUDES.format(text="✅"), timeout=30_000)
        page.locator("#t2i-gallery img").first.wait_for()
        assert not sub.cancelled, "the reload cancelled the request at fal"
        open_history(page)
        page.wait_for_function(TOTAL_INCLUDES.format(text="1 run in this browser"))
        assert "a run that outlives its page" in page.inner_text("#history")
        page.screenshot(path=str(artifacts / "history-after-reload.png"), full_page=True)
    finally:
        context.close()
    assert sub.state == "COMPLETED" and not sub.cancelled


def test_stop_on_the_reloaded_page_still_cancels_at_fal(browser, app_server, fake):
    fake.inject(Fault.never_finish())
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = context.new_page()
        page.goto(app_server.url)
        page.fill("#t2i-prompt textarea", "a run stopped after a reload")
        page.click("#t2i-run")
        page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        [sub] = fake.wait_for_submissions(1)
        page.reload()
        page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        assert not sub.cancelled
        page.click("#t2i-stop")
        fake.wait_until(lambda: sub.cancelled, message="the cancel to reach fal")
        page.wait_for_function(STATUS_INCLUDES.format(text="Stopped"), timeout=5_000)
    finally:
        context.close()


def test_a_tab_closed_before_its_run_reached_fal_drops_it(browser, fake, app_dir):
    app = start_app(app_dir, STUDIO_CONCURRENCY_LIMIT="1")
    first = browser.new_context(viewport={"width": 1280, "height": 1000})
    second = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        # One slot, taken by a run that never finishes: the next run waits for it.
        fake.inject(Fault.never_finish())
        holder = first.new_page()
        holder.goto(app.url)
        holder.fill("#t2i-prompt textarea", "holds the only slot")
        holder.click("#t2i-run")
        [held] = fake.wait_for_submissions(1)
        waiter = second.new_page()
        waiter.goto(app.url)
        waiter.fill("#t2i-prompt textarea", "never reaches fal: its tab closes first")
        waiter.click("#t2i-run")
        waiter.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('Waiting')",
            timeout=15_000,
        )
        assert [p for (p,) in rows(app_dir, "SELECT prompt FROM runs")] == [
            "holds the only slot",
            "never reaches fal: its tab closes first",
        ] or len(rows(app_dir, "SELECT prompt FROM runs")) == 2
        waiter.close()
        # Once its page is gone, the waiting run leaves no trace...
        fake.wait_until(
            lambda: len(rows(app_dir, "SELECT id FROM runs")) == 1, 15, "the run to be dropped"
        )
        holder.click("#t2i-stop")
        fake.wait_until(lambda: held.cancelled, message="the cancel to reach fal")
        holder.fill("#t2i-prompt textarea", "after the slot is free")
        holder.click("#t2i-run")
        holder.wait_for_function(STATUS_INCLUDES.format(text="✅"), timeout=30_000)
    finally:
        first.close()
        second.close()
        stop_app(app)
    # ...and was never sent.
    prompts = [s.arguments["prompt"] for s in fake.submissions]
    assert prompts == ["holds the only slot", "after the slot is free"]
    assert dict(rows(app_dir, "SELECT prompt, status FROM runs")) == {
        "holds the only slot": "stopped",
        "after the slot is free": "finished",
    }


def test_many_runs_at_once_are_all_recorded_without_a_locked_database(app_server, fake):
    from concurrent.futures import ThreadPoolExecutor

    from gradio_client import Client

    prompts = [f"concurrent history {n}" for n in range(24)]
    fake.gate(24, timeout=10)  # all of them in progress together

    def one(prompt: str) -> str:
        client = Client(app_server.url, verbose=False)
        _, record, _ = client.predict(prompt=prompt, quality="low", api_name="/generate")
        return str(record["request_id"])

    with ThreadPoolExecutor(len(prompts)) as pool:
        request_ids = list(pool.map(one, prompts))
    app_dir = app_server.log_path.parent
    recorded = rows(
        app_dir,
        "SELECT prompt, status, request_id FROM runs WHERE prompt LIKE 'concurrent history %'",
    )
    assert sorted(recorded) == sorted(zip(prompts, ["finished"] * 24, request_ids, strict=True))
    assert "database is locked" not in app_server.log_text()
    assert_outputs_agree(app_dir)


def test_a_second_app_on_the_same_data_folder_leaves_the_first_ones_runs_alone(fake, app_dir):
    # `python app.py` twice in one folder: Gradio gives the second the next port, and
    # both use ./studio-data. The second must not take the first's run under way for
    # one a crash left (mark it interrupted, remove its half-saved files).
    # The first's request is held at fal until a second request runs beside it (the
    # fake's gate), so it is under way however long the second app takes to start.
    fake.gate(2, timeout=60)
    first = start_app(app_dir)
    try:
        job = Client(first.url, verbose=False).submit(
            prompt="a run the second app must leave alone", api_name="/generate"
        )
        fake.wait_for_submissions(1)
        second = start_app(app_dir)
        try:
            assert rows(app_dir, "SELECT status FROM runs") == [("running",)]
            assert "another app process is using the data folder" in second.log_text()
            # A run of the second app opens the gate: both finish.
            other = Client(second.url, verbose=False).submit(
                prompt="the second app's own run", api_name="/generate"
            )
            for call in (job, other):
                gallery, _, _ = call.result(timeout=60)
                assert len(gallery) == 1
        finally:
            stop_app(second)
    finally:
        stop_app(first)
    assert all(s.state == "COMPLETED" and not s.cancelled for s in fake.submissions)
    assert sorted(rows(app_dir, "SELECT status FROM runs")) == [("finished",), ("finished",)]
    assert_outputs_agree(app_dir)
