"""Stop in a real browser: the request is cancelled at fal and the page is free at once."""

from __future__ import annotations

import pytest

from tests.fakefal import Fault

pytestmark = pytest.mark.browser

STATUS_INCLUDES = "document.querySelector('#t2i-status')?.innerText.includes({text!r})"


def test_stop_cancels_the_request_at_fal_and_the_page_is_usable_at_once(
    browser, app_server, fake, artifacts
):
    fake.inject(Fault.never_finish())
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    try:
        page.goto(app_server.url)
        page.fill("#t2i-prompt textarea", "a request that never finishes")
        page.click("#t2i-run")
        page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        [sub] = fake.wait_for_submissions(1)

        page.click("#t2i-stop")
        fake.wait_until(lambda: sub.cancelled, message="the cancel to reach fal")
        # The page says what happened, and no longer that it is generating.
        page.wait_for_function(STATUS_INCLUDES.format(text="Stopped"), timeout=5_000)
        page.wait_for_timeout(1_000)  # a late progress line must not overwrite it
        status = page.inner_text("#t2i-status")
        assert status.strip() == "⏹️ Stopped. The request was cancelled at fal."
        assert "Error" not in page.inner_text("#t2i-gallery"), "no bare Error over the results"
        page.screenshot(path=str(artifacts / "generate-stopped.png"))

        # Free at once: the next Generate runs and shows its image.
        page.fill("#t2i-prompt textarea", "the next request, right after Stop")
        page.click("#t2i-run")
        page.wait_for_function(STATUS_INCLUDES.format(text="✅"), timeout=30_000)
        page.locator("#t2i-gallery img").first.wait_for()
        page.wait_for_function(
            "[...document.querySelectorAll('#t2i-gallery img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        assert page.locator("#t2i-gallery img").count() == 1
        page.screenshot(path=str(artifacts / "generate-after-stop.png"))
    finally:
        page.close()

    first, second = fake.submissions
    assert first.cancelled and first.state == "COMPLETED"
    assert second.arguments["prompt"] == "the next request, right after Stop"
    assert second.state == "COMPLETED" and not second.cancelled


def test_stop_on_the_edit_tab_ends_that_run_only(browser, app_server, fake, artifacts):
    fake.inject(Fault.never_finish())
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Edit").click()
        page.click("#edit-load-example")  # the seed's prompt and a reference image
        page.locator("#edit-references img").first.wait_for()
        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('Generating')",
            timeout=20_000,
        )
        [sub] = fake.wait_for_submissions(1)
        page.click("#edit-stop")
        fake.wait_until(lambda: sub.cancelled, message="the cancel to reach fal")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('Stopped')",
            timeout=5_000,
        )
        assert "Error" not in page.inner_text("#edit-gallery")
        page.screenshot(path=str(artifacts / "edit-stopped.png"))
    finally:
        page.close()
    assert sub.endpoint == "fal-ai/gpt-image-1.5/edit"


def test_stop_on_the_compare_tab_keeps_what_finished_and_cancels_the_rest(
    browser, app_server, fake, artifacts
):
    fake.inject(Fault.never_finish())  # one of the three settings never finishes
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Compare").click()
        page.fill("#cmp-prompt textarea", "three qualities, one of them stuck")
        page.click("#cmp-run")  # low, medium and high at the first size
        page.wait_for_function(
            "document.querySelector('#cmp-status')?.innerText.includes('2 of 3 settings')",
            timeout=20_000,
        )
        [stuck] = [sub for sub in fake.wait_for_submissions(3) if sub.state != "COMPLETED"]
        page.click("#cmp-stop")
        fake.wait_until(lambda: stuck.cancelled, message="the cancel to reach fal")
        page.wait_for_function(
            "document.querySelector('#cmp-status')?.innerText.includes('Stopped')",
            timeout=5_000,
        )
        status = page.inner_text("#cmp-status")
        assert "2 of 3 settings had finished and are shown" in status
        page.wait_for_function(
            "[...document.querySelectorAll('#cmp-gallery img')]"
            ".filter(img => img.complete && img.naturalWidth > 0).length === 2",
            timeout=10_000,
        )
        assert "Error" not in page.inner_text("#cmp-gallery")
        page.screenshot(path=str(artifacts / "compare-stopped.png"))
    finally:
        page.close()
