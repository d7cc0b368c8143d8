"""Demo mode as a newcomer sees it: no key anywhere, every control usable, nothing sent."""

from __future__ import annotations

import pytest

from tests.conftest import start_app, stop_app
from tests.test_browser_generate import choose

pytestmark = pytest.mark.browser


def test_a_newcomer_without_a_key_gets_labelled_placeholders(browser, fake, tmp_path, artifacts):
    app = start_app(tmp_path, FAL_KEY="")
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    try:
        page.goto(app.url)
        assert "demo mode" in page.inner_text("#key-status")
        page.fill("#t2i-prompt textarea", "a red fox in the snow, watercolor")
        choose(page, "t2i-image-size", "1536x1024")
        page.click("#t2i-run")
        page.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('Demo mode')",
            timeout=30_000,
        )
        page.wait_for_function(
            "[...document.querySelectorAll('#t2i-gallery img')]"
            ".some(img => img.complete && img.naturalWidth === 1536)"
        )
        page.screenshot(path=str(artifacts / "demo-mode.png"))
    finally:
        page.close()
        stop_app(app)
    assert fake.http_log == [], "demo mode sends nothing, not even to the fake"
