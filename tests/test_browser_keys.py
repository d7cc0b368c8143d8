"""The key field in a real browser: 'remember' keeps it encrypted in that browser only."""

from __future__ import annotations

import pytest

from tests.conftest import start_app, stop_app

pytestmark = pytest.mark.browser

VISITOR_KEY = "ffff9999-0000-4000-8000-00000000000f:f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9"


def open_key_panel(page) -> None:
    """The key panel starts closed when the host has a key of its own."""
    page.wait_for_selector("#key-panel")
    if not page.is_visible("#fal-key input"):
        page.click("#key-panel .label-wrap")
    page.wait_for_selector("#fal-key input")


def test_remember_keeps_the_key_encrypted_in_this_browser(browser, fake, tmp_path, artifacts):
    app = start_app(tmp_path, STUDIO_BROWSER_SECRET="a host secret for tests")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        page.goto(app.url)
        open_key_panel(page)
        page.fill("#fal-key input", VISITOR_KEY)
        page.check("#remember-key input[type=checkbox]")
        page.wait_for_function(
            "document.querySelector('#key-status').innerText.includes('your key')"
        )
        page.wait_for_timeout(1000)
        stored = page.evaluate("JSON.stringify(Object.assign({}, window.localStorage))")
        assert "gpt-image-studio-fal-key" in stored, "the key is kept in this browser"
        assert VISITOR_KEY[:20] not in stored, "but not readable there: it is encrypted"

        page.reload()
        open_key_panel(page)
        page.wait_for_function(
            "document.querySelector('#key-status').innerText.includes('your key')",
            timeout=15_000,
        )
        assert page.input_value("#fal-key input") == VISITOR_KEY
        assert page.is_checked("#remember-key input[type=checkbox]")
        page.screenshot(path=str(artifacts / "key-remembered.png"))

        # Unticking forgets it.
        page.uncheck("#remember-key input[type=checkbox]")
        page.wait_for_timeout(1000)
        page.reload()
        open_key_panel(page)
        page.wait_for_timeout(1500)
        assert page.input_value("#fal-key input") == ""
    finally:
        context.close()
        stop_app(app)


def test_without_a_host_secret_remember_is_not_offered(browser, app_server):
    page = browser.new_page()
    try:
        page.goto(app_server.url)
        open_key_panel(page)
        assert page.locator("#remember-key").count() == 0 or not page.is_visible("#remember-key")
    finally:
        page.close()
