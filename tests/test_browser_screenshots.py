"""Screenshots of every tab in use, in light mode, dark mode and on a phone, for the
README, against the fake fal service. They go to test-artifacts/screenshots/, so a
test run leaves the repository as it was; `pytest --update-screenshots` writes the
README's own, in tests/screenshots/.

Each tab is shown after a run: Generate with its image, Edit with an image dropped
on the canvas, a stroke and the composited result with its leak map, Compare with
its grid, History with those runs. The checks are what the pictures claim to show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_browser_canvas import drop_file, photo, wait_for_canvas
from tests.test_browser_workflow import paint_stroke

pytestmark = pytest.mark.browser

README_SCREENSHOTS = Path(__file__).parent / "screenshots"
DONE = "document.querySelector('#{tab}-status')?.innerText.includes({text!r})"
MODES: dict[str, dict[str, Any]] = {
    "light": {"viewport": {"width": 1280, "height": 1000}},
    "dark": {"viewport": {"width": 1280, "height": 1000}},
    "phone": {
        "viewport": {"width": 390, "height": 844},
        "device_scale_factor": 2,
        "has_touch": True,
    },
}


@pytest.fixture
def screenshots(request: pytest.FixtureRequest, artifacts: Path) -> Path:
    if request.config.getoption("--update-screenshots"):
        return README_SCREENSHOTS
    folder = artifacts / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


def shoot(page, folder: Path, name: str, mode: str) -> None:
    """The whole page on a desktop; on a phone, what the screen shows from the top."""
    page.wait_for_timeout(600)  # images decoded, progress bars gone
    path = folder / f"{name}-{mode}.png"
    if mode == "phone":
        page.evaluate("window.scrollTo(0, 0)")
        page.screenshot(path=str(path), timeout=120_000)
    else:
        # Chromium draws a long page in software here: it can take a while.
        page.screenshot(path=str(path), full_page=True, timeout=120_000)
    assert path.stat().st_size > 10_000


@pytest.mark.timeout(600)
@pytest.mark.parametrize("mode", list(MODES))
def test_every_tab_in_use(browser, app_server, fake, mode, tmp_path, screenshots):
    context = browser.new_context(**MODES[mode])
    page = context.new_page()
    theme = "dark" if mode == "dark" else "light"
    try:
        page.goto(f"{app_server.url}?__theme={theme}")
        page.fill("#t2i-prompt textarea", "a lighthouse on a cliff at dusk, watercolor")
        page.click("#t2i-run")
        page.wait_for_function(DONE.format(tab="t2i", text="✅"), timeout=30_000)
        page.locator("#t2i-gallery img").first.wait_for()
        shoot(page, screenshots, "generate", mode)

        page.get_by_role("tab", name="Edit").click()
        page.fill("#edit-prompt textarea", "put a small red kite in the sky")
        canvas = page.locator("#edit-canvas canvas").first
        canvas.scroll_into_view_if_needed()
        drop_file(page, "#edit-canvas", photo(tmp_path / "photo.png"))
        wait_for_canvas(page, canvas, (250, 200, 40))
        paint_stroke(page)
        page.locator("#edit-keep input[type=checkbox]").check()
        page.click("#edit-run")
        page.wait_for_function(DONE.format(tab="edit", text="🧩"), timeout=60_000)
        assert page.locator("#edit-gallery img").count() == 3  # fal's, composited, leak map
        shoot(page, screenshots, "edit", mode)

        page.get_by_role("tab", name="Compare").click()
        page.fill("#cmp-prompt textarea", "a red fox in fresh snow")
        page.click("#cmp-run")
        page.wait_for_function(DONE.format(tab="cmp", text="✅"), timeout=60_000)
        shoot(page, screenshots, "compare", mode)

        page.get_by_role("tab", name="History").click()
        # The runs above (Generate, Edit, Compare's settings) listed with thumbnails.
        page.locator("#history img").first.wait_for(timeout=30_000)
        shoot(page, screenshots, "history", mode)
    finally:
        context.close()
