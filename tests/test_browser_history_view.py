"""The History tab in a real browser: search, delete (with the files), export (a zip
that Load parameters reads back)."""

from __future__ import annotations

import json
import sqlite3
import zipfile
from pathlib import Path

import pytest

from tests.conftest import start_app, stop_app
from tests.test_browser_generate import choose
from tests.test_browser_history import generate, open_history

pytestmark = pytest.mark.browser

THUMBS = "#history .thumbnail-item"


def kept_files(app_dir: Path) -> dict[str, list[Path]]:
    connection = sqlite3.connect(app_dir / "studio-data" / "studio.sqlite3")
    try:
        rows = connection.execute(
            "SELECT prompt, path FROM runs LEFT JOIN run_files ON runs.id = run_id"
        ).fetchall()
    finally:
        connection.close()
    files: dict[str, list[Path]] = {}
    for prompt, path in rows:
        files.setdefault(prompt, []).extend([Path(path)] if path else [])
    return files


def test_search_delete_and_export_then_load_parameters_back(browser, fake, tmp_path, artifacts):
    app = start_app(tmp_path)
    context = browser.new_context(viewport={"width": 1280, "height": 1200}, accept_downloads=True)
    try:
        page = context.new_page()
        page.goto(app.url)
        choose(page, "t2i-quality", "low")
        choose(page, "t2i-output-format", "jpeg")
        generate(page, "a grey heron at dawn")
        choose(page, "t2i-output-format", "png")
        generate(page, "a red fox in snow")
        choose(page, "t2i-quality", "medium")
        generate(page, "a red kite over hills")
        files = kept_files(tmp_path)
        assert all(path.is_file() for paths in files.values() for path in paths)

        open_history(page)
        page.wait_for_function(f"document.querySelectorAll('{THUMBS}').length === 3")
        # Search by prompt text (Enter runs it).
        page.fill("#history-search textarea, #history-search input", "red")
        page.press("#history-search textarea, #history-search input", "Enter")
        page.wait_for_function(f"document.querySelectorAll('{THUMBS}').length === 2")
        assert "heron" not in page.inner_text("#history")
        assert "2 shown" in page.inner_text("#history-total")

        # Delete the fox: its row and its file go.
        fox = page.locator(THUMBS).filter(has_text="a red fox")
        fox.first.dispatch_event("click")
        page.get_by_role("tab", name="History").click()  # the click restored it into Generate
        page.click("#history-delete")
        page.wait_for_function(
            "document.querySelector('#history-status')?.innerText.includes('Deleted')"
        )
        page.wait_for_function(f"document.querySelectorAll('{THUMBS}').length === 1")
        assert "a red fox in snow" not in kept_files(tmp_path)
        assert not any(path.exists() for path in files["a red fox in snow"])
        assert all(path.exists() for path in files["a grey heron at dawn"])

        # The thumbnails are small copies; Send to edit sends the run's own image.
        size = page.evaluate(f"document.querySelector('{THUMBS} img').naturalWidth")
        assert size <= 320
        page.locator(THUMBS).filter(has_text="a red kite").first.dispatch_event("click")
        page.get_by_role("tab", name="History").click()
        page.get_by_role("button", name="Send selected to edit").click()
        page.wait_for_function(
            "document.querySelector('#edit-references img')?.naturalWidth === 1024",
            timeout=15_000,
        )
        page.get_by_role("tab", name="History").click()

        # Export the kite and the heron.
        page.fill("#history-search textarea, #history-search input", "")
        page.press("#history-search textarea, #history-search input", "Enter")
        page.wait_for_function(f"document.querySelectorAll('{THUMBS}').length === 2")
        for prompt in ("a red kite", "a grey heron"):
            page.click("#history-export-choice input")
            page.get_by_role("option").filter(has_text=prompt).click()
        page.keyboard.press("Escape")
        page.click("#history-export")
        page.wait_for_function(
            "document.querySelector('#history-status')?.innerText.includes('2 runs exported')"
        )
        with page.expect_download() as download:
            page.locator("#history-export-file a").first.click()
        archive_path = tmp_path / "export.zip"
        download.value.save_as(archive_path)
        page.screenshot(path=str(artifacts / "history-tab.png"), full_page=True)

        with zipfile.ZipFile(archive_path) as archive:
            names = set(archive.namelist())
            manifest = json.loads(archive.read("runs.json"))
            archive.extract("runs.json", tmp_path)
        prompts = [run["parameters"]["prompt"] for run in manifest["runs"]]
        assert sorted(prompts) == ["a grey heron at dawn", "a red kite over hills"]
        for run in manifest["runs"]:
            assert run["images"] and set(run["images"]) <= names
            assert run["request_id"] in {s.request_id for s in fake.submissions}
        jpeg = next(n for n in names if n.endswith((".jpg", ".jpeg")))
        assert jpeg + ".json" in names  # a JPEG keeps its record beside it
        assert "host0000" not in json.dumps(manifest)

        # Load parameters reads the JSON back (its first run) into its tab.
        page.set_input_files("#load-parameters input[type=file]", str(tmp_path / "runs.json"))
        first = manifest["runs"][0]["parameters"]
        page.wait_for_function(
            "([p]) => document.querySelector('#t2i-prompt textarea').value === p",
            arg=[first["prompt"]],
            timeout=15_000,
        )
        assert page.input_value("#t2i-quality input") == first["quality"]
        assert page.input_value("#t2i-output-format input") == first["output_format"]
    finally:
        context.close()
        stop_app(app)


def test_all_runs_shows_every_browsers_runs_locally(browser, app_server, fake):
    prompts = ["all runs: a kestrel", "all runs: a badger"]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 1100}) for _ in prompts]
    try:
        pages = [context.new_page() for context in contexts]
        for page, prompt in zip(pages, prompts, strict=True):
            page.goto(app_server.url)
            choose(page, "t2i-quality", "low")
            generate(page, prompt)
        page = pages[1]
        open_history(page)
        page.wait_for_function(
            "document.querySelector('#history-total')?.innerText.includes('in this browser')"
        )
        assert "kestrel" not in page.inner_text("#history")
        page.click("#history-all input")
        page.wait_for_function(
            "document.querySelector('#history-total')?.innerText.includes('on this machine')"
        )
        page.wait_for_function("document.querySelector('#history').innerText.includes('kestrel')")
        assert "badger" in page.inner_text("#history")
    finally:
        for context in contexts:
            context.close()
