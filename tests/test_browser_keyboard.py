"""The keyboard in a real browser: Ctrl+Enter runs the current tab, Escape stops it."""

from __future__ import annotations

import pytest

from tests.fakefal import Fault

pytestmark = pytest.mark.browser

STATUS_INCLUDES = "document.querySelector('#{tab}-status')?.innerText.includes({text!r})"


def test_ctrl_enter_runs_the_current_tab_and_escape_stops_it(browser, app_server, fake, artifacts):
    fake.inject(Fault.never_finish())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_server.url)
        # The page's script runs once Gradio has loaded: press only after it has.
        page.wait_for_function("document.documentElement.dataset.studioShortcuts === 'on'")
        assert "Ctrl+Enter" in page.inner_text("#t2i-shortcuts"), "the hint is by the buttons"
        page.fill("#t2i-prompt textarea", "a request that never finishes")
        page.press("#t2i-prompt textarea", "Control+Enter")
        page.wait_for_function(STATUS_INCLUDES.format(tab="t2i", text="Generating"), timeout=30_000)
        [sub] = fake.wait_for_submissions(1)
        assert page.input_value("#t2i-prompt textarea") == "a request that never finishes"

        page.keyboard.press("Escape")
        fake.wait_until(lambda: sub.cancelled, message="the cancel to reach fal")
        page.wait_for_function(STATUS_INCLUDES.format(tab="t2i", text="Stopped"), timeout=5_000)

        # On the Edit tab, with the focus on no control at all, it runs the edit.
        page.get_by_role("tab", name="Edit").click()
        page.click("#edit-load-example")
        page.locator("#edit-references img").first.wait_for()
        page.evaluate("document.activeElement && document.activeElement.blur()")
        page.keyboard.press("Control+Enter")
        page.wait_for_function(STATUS_INCLUDES.format(tab="edit", text="✅"), timeout=30_000)
        page.screenshot(path=str(artifacts / "keyboard-edit.png"))
    finally:
        page.close()
    first, second = fake.submissions
    assert first.endpoint == "fal-ai/gpt-image-1.5" and first.cancelled
    assert second.endpoint == "fal-ai/gpt-image-1.5/edit" and not second.cancelled
    assert len(fake.submissions) == 2, "one run per Ctrl+Enter (the prompt did not submit too)"
