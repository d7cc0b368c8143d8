"""Accessibility in a real browser: axe-core over every tab, in light and dark mode.

axe-core is the npm package in tests/a11y (installed by .ci/run). A serious or
critical violation fails the test unless it is on ALLOWED: violations that sit in
Gradio's own markup, cannot be fixed from the app, and are tracked by a Gradio
issue (each listed in the README with that issue).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

AXE = Path(__file__).parent / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
TABS = ["Generate", "Edit", "Compare", "History"]

# (rule, a CSS selector fragment of the offending node): Gradio's markup, see the README.
ALLOWED: list[tuple[str, str]] = []


def violations(page) -> list[dict[str, str]]:
    if not AXE.exists():
        pytest.fail("axe-core is missing: cd tests/a11y && npm ci (see .ci/run)")
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    found = []
    for violation in result["violations"]:
        if violation["impact"] not in ("serious", "critical"):
            continue
        for node in violation["nodes"]:
            target = " ".join(str(part) for part in node["target"])
            if any(rule == violation["id"] and part in target for rule, part in ALLOWED):
                continue
            found.append(
                {
                    "rule": violation["id"],
                    "impact": violation["impact"],
                    "target": target,
                    "html": node["html"][:160],
                    "why": node.get("failureSummary", "")[:300],
                }
            )
    return found


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_every_tab_has_no_serious_or_critical_violation(browser, app_server, mode, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    problems = {}
    try:
        page.goto(f"{app_server.url}?__theme={mode}")
        page.wait_for_selector("#t2i-run")
        for tab in TABS:
            page.get_by_role("tab", name=tab).click()
            page.wait_for_timeout(800)
            found = violations(page)
            if found:
                problems[tab] = found
    finally:
        page.close()
    assert not problems, json.dumps(problems, indent=1)
