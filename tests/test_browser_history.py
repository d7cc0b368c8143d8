"""History and saved parameters in a real browser."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from tests.test_browser_generate import choose

pytestmark = pytest.mark.browser


def open_history(page) -> None:
    if not page.is_visible("#history"):
        page.get_by_role("tab", name="History").click()
    page.wait_for_selector("#history")


def generate(page, prompt: str) -> None:
    """Run a generation and wait for ITS result (the status names a new request)."""
    before = page.inner_text("#t2i-status")
    page.fill("#t2i-prompt textarea", prompt)
    page.click("#t2i-run")
    page.wait_for_function(
        "([old]) => { const t = document.querySelector('#t2i-status')?.innerText || '';"
        " return t.includes('✅') && t !== old; }",
        arg=[before],
        timeout=30_000,
    )


def test_history_restores_a_runs_prompt_and_parameters_even_after_a_reload(
    browser, app_server, fake, artifacts
):
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    try:
        page.goto(app_server.url)
        choose(page, "t2i-quality", "low")
        choose(page, "t2i-image-size", "1536x1024")
        choose(page, "t2i-output-format", "webp")
        generate(page, "first: a fox in snow")
        choose(page, "t2i-quality", "high")
        choose(page, "t2i-image-size", "1024x1024")
        generate(page, "second: a heron at dusk")

        page.reload()  # history lives on the server, per browser
        open_history(page)
        page.wait_for_function(
            "document.querySelector('#history-total')?.innerText.includes('2 runs')"
        )
        # low 1536x1024 $0.013 + high 1024x1024 $0.133, plus ~$0.0001 of prompt tokens.
        assert page.inner_text("#history-total").strip() == (
            "2 runs in this browser · session total $0.15 · today $0.15"
        )
        thumbnails = page.locator("#history .thumbnail-item")
        assert thumbnails.count() == 2
        thumbnails.nth(1).click()  # newest first: the second one is the fox
        page.wait_for_function(
            "document.querySelector('#t2i-prompt textarea').value === 'first: a fox in snow'"
        )
        assert page.input_value("#t2i-quality input") == "low"
        assert page.input_value("#t2i-image-size input") == "1536x1024"
        assert page.input_value("#t2i-output-format input") == "webp"
        page.screenshot(path=str(artifacts / "history.png"), full_page=True)
    finally:
        context.close()


def test_parameters_load_back_from_a_saved_image(browser, app_server, fake, tmp_path):
    outputs = app_server.log_path.parent / "outputs"  # the app saves beside itself
    before = set(outputs.glob("*.png")) if outputs.exists() else set()
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    try:
        page.goto(app_server.url)
        choose(page, "t2i-background", "transparent")
        choose(page, "t2i-quality", "medium")
        generate(page, "a glass marble, studio light")
        # The images are shown first, then kept with their parameters (the event ends
        # once they are).
        fake.wait_until(
            lambda: len(set(outputs.glob("*.png")) - before) >= 1, 15, "the image to be kept"
        )
        saved = sorted(set(outputs.glob("*.png")) - before)
        assert len(saved) == 1
        info = json.loads(Image.open(saved[0]).info["gpt-image-studio"])
        assert info["parameters"]["prompt"] == "a glass marble, studio light"
        assert info["request_id"] == fake.submissions[-1].request_id

        page.reload()
        assert page.input_value("#t2i-quality input") == "high"
        open_history(page)
        page.set_input_files("#load-parameters input[type=file]", str(saved[0]))
        page.wait_for_function(
            "document.querySelector('#t2i-prompt textarea').value.includes('glass marble')",
            timeout=15_000,
        )
        assert page.input_value("#t2i-background input") == "transparent"
        assert page.input_value("#t2i-quality input") == "medium"
        assert "Loaded the prompt" in page.inner_text("#load-status")
    finally:
        page.close()


def test_two_browsers_never_see_each_others_history(browser, app_server, fake):
    prompts = ["browser one: a red kite", "browser two: a blue whale"]
    contexts = [browser.new_context(viewport={"width": 1280, "height": 1100}) for _ in prompts]
    try:
        pages = [context.new_page() for context in contexts]
        for page, prompt in zip(pages, prompts, strict=True):
            page.goto(app_server.url)
            choose(page, "t2i-quality", "low")
            generate(page, prompt)
        for page, own, other in ((pages[0], *prompts), (pages[1], *prompts[::-1])):
            page.reload()  # what the server keeps for this browser, not what the page held
            open_history(page)
            page.wait_for_function(
                "document.querySelector('#history-total')?.innerText.includes('in this browser')"
            )
            assert page.inner_text("#history-total").strip() == (
                "1 run in this browser · session total $0.009 · today $0.009"
            )
            thumbnails = page.locator("#history .thumbnail-item")
            assert thumbnails.count() == 1
            assert other not in page.inner_text("body"), "another browser's run is listed"
            # A lone thumbnail is drawn large, its centre outside the gallery's box:
            # click inside its corner.
            thumbnails.first.click(position={"x": 10, "y": 10})
            page.wait_for_function(
                "([own]) => document.querySelector('#t2i-prompt textarea').value === own",
                arg=[own],
            )
    finally:
        for context in contexts:
            context.close()


def test_a_comparison_in_the_page_is_in_this_browsers_history(browser, app_server, fake):
    # Each setting of a comparison is a run of its own; from the page, they belong to
    # the browser like any run (not only to the host's "All runs").
    context = browser.new_context(viewport={"width": 1280, "height": 1100})
    page = context.new_page()
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Compare").click()
        prompt = "compared: a paper boat on a pond"
        page.fill("#cmp-prompt textarea", prompt)
        page.click("#cmp-run")  # low, medium and high at the first size
        page.wait_for_function(
            "document.querySelector('#cmp-status')?.innerText.includes('3 of 3 settings')",
            timeout=30_000,
        )
        # Copy as code: the request each setting sent, headed by its setting.
        page.locator("#cmp-details").get_by_text("Details").click()
        page.locator("#cmp-code-python pre").first.wait_for()
        python = page.inner_text("#cmp-code-python")
        for quality in ("low", "medium", "high"):
            assert f"{quality} · 1024x1024" in python
        assert python.count("fal_client.subscribe(") == 3, python

        open_history(page)
        page.wait_for_function(
            "document.querySelector('#history-total')?.innerText.includes('3 runs')",
            timeout=10_000,
        )
        assert page.inner_text("#history-total").startswith("3 runs in this browser")
        thumbnails = page.locator("#history .thumbnail-item")
        assert thumbnails.count() == 3
        # Marked as one comparison, not as a batch.
        marks = {thumbnails.nth(i).inner_text().split(" · ")[0] for i in range(3)}
        assert len(marks) == 1 and marks.pop().startswith("▦ compare "), marks
        sent = {sub.arguments["quality"] for sub in fake.submissions}
        assert sent == {"low", "medium", "high"}
        assert all(sub.arguments["prompt"] == prompt for sub in fake.submissions)
    finally:
        context.close()
