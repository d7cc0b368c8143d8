"""The Generate tab in a real browser: type, change every control, click, see images."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def choose(page, elem_id: str, value: str) -> None:
    """Pick a value in a Gradio dropdown the way a person does: open it, click the option."""
    page.click(f"#{elem_id} input")
    page.get_by_role("option", name=value, exact=True).click()
    assert page.input_value(f"#{elem_id} input") == value


def test_generate_tab_sends_every_chosen_value_and_shows_the_images(
    browser, app_server, fake, artifacts
):
    fake.queue_time = 0.5
    fake.latency = 1.0
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
    try:
        page.goto(app_server.url)
        page.fill("#t2i-prompt textarea", "a watercolor hummingbird over a lily pond")
        choose(page, "t2i-image-size", "1024x1536")
        choose(page, "t2i-background", "opaque")
        choose(page, "t2i-quality", "medium")
        choose(page, "t2i-output-format", "jpeg")
        slider_number = page.locator("#t2i-num-images input[type=number]")
        slider_number.fill("2")
        slider_number.press("Enter")
        page.check("#t2i-sync-mode input[type=checkbox]")
        page.click("#t2i-run")

        # Live progress appears while fal works.
        page.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('Generating')",
            timeout=15_000,
        )
        page.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('✅')", timeout=30_000
        )
        images = page.locator("#t2i-gallery img")
        images.first.wait_for()
        assert images.count() == 2
        page.wait_for_function(
            "[...document.querySelectorAll('#t2i-gallery img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        natural = images.first.evaluate("img => [img.naturalWidth, img.naturalHeight]")
        assert natural == [1024, 1536]
        assert "1024×1536 JPEG" in page.inner_text("#t2i-gallery")
        page.screenshot(path=str(artifacts / "generate-tab.png"), full_page=True)
    finally:
        page.close()

    [sub] = fake.submissions
    assert sub.arguments == {
        "prompt": "a watercolor hummingbird over a lily pond",
        "image_size": "1024x1536",
        "background": "opaque",
        "quality": "medium",
        "num_images": 2,
        "output_format": "jpeg",
        "sync_mode": True,
    }


def test_an_impossible_combination_is_explained_in_the_page(browser, app_server, fake, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(app_server.url)
        page.fill("#t2i-prompt textarea", "a glass marble")
        choose(page, "t2i-background", "transparent")
        choose(page, "t2i-output-format", "jpeg")
        page.click("#t2i-run")
        page.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('needs png or webp')",
            timeout=15_000,
        )
        page.screenshot(path=str(artifacts / "generate-error.png"))
    finally:
        page.close()
    assert fake.submissions == []
