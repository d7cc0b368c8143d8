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
    page = browser.new_page(viewport={"width": 1280, "height": 1100})
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
        for tab, language in [
            ("Python", "python"),
            ("JavaScript", "javascript"),
            ("cURL", "shell"),
        ]:
            page.get_by_role("tab", name=tab, exact=True).first.click()
            content = page.locator(f"#t2i-code-{language} .cm-content")
            content.wait_for()
            page.wait_for_function(
                f"document.querySelector('#t2i-code-{language} .cm-content')"
                "?.innerText.includes('fal-ai/gpt-image-1.5')"
            )
            code[language] = content.inner_text()
            assert page.locator(f"#t2i-code-{language} button[aria-label*='opy']").count() >= 1
    finally:
        page.close()

    [original] = fake.submissions
    for text in code.values():
        assert HOST_KEY not in text
    assert "curl -s -X POST https://queue.fal.run/fal-ai/gpt-image-1.5" in code["shell"]
    assert "fal.subscribe(" in code["javascript"]

    run_python(code["python"], tmp_path)

    copied = fake.submissions[1]
    assert copied.arguments == original.arguments
    assert copied.authorization == f"Key {SNIPPET_KEY}"
