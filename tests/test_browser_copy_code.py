"""Copy as code in a real browser: a run's Details panel shows the request it sent,
and the Python shown there, run as it is, sends fal the same body."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import HOST_KEY
from tests.test_browser_generate import choose
from tests.test_copy_as_code import SNIPPET_KEY, run_python

pytestmark = pytest.mark.browser


def test_the_details_panel_offers_the_request_as_code(
    browser, app_server, fake, tmp_path: Path
) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 1100},
        permissions=["clipboard-read", "clipboard-write"],
    )
    page = context.new_page()
    try:
        page.goto(app_server.url)
        page.fill("#t2i-prompt textarea", "a lighthouse in fog, linocut")
        choose(page, "t2i-quality", "low")
        choose(page, "t2i-background", "opaque")
        page.click("#t2i-run")
        page.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('✅')", timeout=30_000
        )
        page.get_by_text("Details").first.click()
        code = {}
        for language in ("python", "javascript", "shell"):
            page.locator(f"#t2i-code-{language} pre").wait_for()
            # What a person gets: the block's copy button, then the clipboard.
            page.locator(f"#t2i-code-{language} button.copy_code_button").click()
            code[language] = page.evaluate("navigator.clipboard.readText()")
            shown = page.locator(f"#t2i-code-{language} pre").inner_text()
            assert code[language].strip() == shown.strip()
    finally:
        context.close()

    [original] = fake.submissions
    for text in code.values():
        assert HOST_KEY not in text
    assert "curl -s -X POST https://queue.fal.run/fal-ai/gpt-image-1.5" in code["shell"]
    assert "fal.subscribe(" in code["javascript"]

    run_python(code["python"], tmp_path)

    copied = fake.submissions[1]
    assert copied.arguments == original.arguments
    assert copied.authorization == f"Key {SNIPPET_KEY}"
