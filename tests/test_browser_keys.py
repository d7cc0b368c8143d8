"""The key field in a real browser: 'remember' keeps it encrypted in that browser only."""

from __future__ import annotations

import json

import pytest

from tests.conftest import start_app, stop_app
from tests.test_keys_and_hosting import fragments

pytestmark = pytest.mark.browser

VISITOR_KEY = "ffff9999-0000-4000-8000-00000000000f:f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9f9"
# The length of what this browser keeps for the key (encrypted), 0 if nothing.
STORED = "(window.localStorage.getItem('gpt-image-studio-fal-key') || '').length"
# What is encrypted when the key is remembered. Encrypted text is never shorter than
# what it encrypts (nothing is compressed): a stored value shorter than this cannot
# hold the key, and the forgotten state (an empty key) is.
REMEMBERED = json.dumps({"key": VISITOR_KEY}, separators=(",", ":"))


def is_restore(request) -> bool:
    """The page's load event that hands the server what the browser kept for the key."""
    return request.url.endswith("/gradio_api/run/predict") and '"data":[{"key":' in (
        request.post_data or ""
    )


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
        page.wait_for_function(f"({STORED}) > {len(REMEMBERED)}")
        stored = page.evaluate("JSON.stringify(Object.assign({}, window.localStorage))")
        assert "gpt-image-studio-fal-key" in stored, "the key is kept in this browser"
        leaked = [part for part in fragments(VISITOR_KEY) if part in stored]
        assert leaked == [], "but not readable there: it is encrypted"

        page.reload()
        open_key_panel(page)
        page.wait_for_function(
            "document.querySelector('#key-status').innerText.includes('your key')",
            timeout=15_000,
        )
        assert page.input_value("#fal-key input") == VISITOR_KEY
        assert page.is_checked("#remember-key input[type=checkbox]")
        page.screenshot(path=str(artifacts / "key-remembered.png"))

        # Unticking forgets it: wait until what is stored is too short to hold it.
        page.uncheck("#remember-key input[type=checkbox]")
        page.wait_for_function(f"({STORED}) < {len(REMEMBERED)}")
        # After a reload, the page restores what the browser kept: nothing.
        with page.expect_request(is_restore) as restore:
            page.reload()
        assert json.loads(restore.value.post_data or "")["data"] == [{"key": ""}]
        restore.value.response()  # its answer has arrived, and changed nothing
        open_key_panel(page)
        assert page.input_value("#fal-key input") == ""
        assert not page.is_checked("#remember-key input[type=checkbox]")
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
