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


def test_stop_in_one_page_cancels_only_that_pages_run(browser, app_server, fake, artifacts):
    # Two tabs of one browser: two page sessions with the same browser id, so Stop must
    # follow the page session (not the browser, nor the visitor's address).
    stopped_prompt, finishing_prompt = "page A: a run to stop", "page B: a run that finishes"
    fake.inject(Fault.never_finish(), prompt=stopped_prompt)
    # Long enough to be still running when A's Stop reaches fal, with room to spare.
    fake.inject(Fault.slow(10), prompt=finishing_prompt)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        a, b = context.new_page(), context.new_page()
        for page, prompt in ((a, stopped_prompt), (b, finishing_prompt)):
            page.goto(app_server.url)
            page.fill("#t2i-prompt textarea", prompt)
            page.click("#t2i-run")
        for page in (a, b):
            page.wait_for_function(STATUS_INCLUDES.format(text="Generating"), timeout=15_000)
        by_prompt = {sub.arguments["prompt"]: sub for sub in fake.wait_for_submissions(2)}
        stopped, finishing = by_prompt[stopped_prompt], by_prompt[finishing_prompt]

        a.click("#t2i-stop")
        fake.wait_until(lambda: stopped.cancelled, message="A's cancel to reach fal")
        a.wait_for_function(STATUS_INCLUDES.format(text="Stopped"), timeout=5_000)
        assert not finishing.cancelled, "A's Stop cancelled B's run at fal"
        assert finishing.state == "IN_PROGRESS", (
            "B's run must still be running when A's Stop is done, for this test to mean anything"
        )

        b.wait_for_function(STATUS_INCLUDES.format(text="✅"), timeout=60_000)
        b.wait_for_function(
            "[...document.querySelectorAll('#t2i-gallery img')]"
            ".filter(img => img.complete && img.naturalWidth > 0).length === 1"
        )
        assert "Stopped" not in b.inner_text("#t2i-status")
        assert a.inner_text("#t2i-status").strip() == (
            "⏹️ Stopped. The request was cancelled at fal."
        )
        b.screenshot(path=str(artifacts / "stop-isolation-other-page.png"))
    finally:
        context.close()

    assert finishing.state == "COMPLETED" and not finishing.cancelled
    assert finishing.result is not None and len(finishing.result["images"]) == 1
    cancels = [h.path for h in fake.http_log if h.method == "PUT" and h.path.endswith("/cancel")]
    assert cancels == [f"/fal-ai/gpt-image-1.5/requests/{stopped.request_id}/cancel"]
