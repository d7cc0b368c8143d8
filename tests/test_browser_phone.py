"""The page on a phone (390 px wide): no sideways scrolling, a usable canvas, and the
run button in sight wherever the page is scrolled."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TABS = [("Generate", "t2i"), ("Edit", "edit"), ("Compare", "cmp")]


def in_view(page, selector: str) -> bool:
    box = page.locator(selector).bounding_box()
    return (
        box is not None
        and box["x"] >= 0
        and box["y"] >= 0
        and box["x"] + box["width"] <= PHONE["width"]
        and box["y"] + box["height"] <= PHONE["height"]
    )


def test_at_390_px_nothing_scrolls_sideways_and_run_stays_in_sight(browser, app_server, artifacts):
    context = browser.new_context(viewport=PHONE, device_scale_factor=2, has_touch=True)
    page = context.new_page()
    try:
        page.goto(app_server.url)
        page.wait_for_selector("#t2i-run")
        for name, tab in TABS:
            page.get_by_role("tab", name=name).click()
            page.wait_for_timeout(800)
            widths = page.evaluate(
                "() => [document.documentElement.scrollWidth, document.body.scrollWidth,"
                " window.innerWidth]"
            )
            assert max(widths[:2]) <= widths[2] == PHONE["width"], f"{name}: {widths}"
            for where in ("top", "middle"):
                page.evaluate(
                    "where => window.scrollTo(0, where === 'top' ? 0 :"
                    " document.documentElement.scrollHeight / 2)",
                    where,
                )
                page.wait_for_timeout(200)
                assert in_view(page, f"#{tab}-run"), f"{name}: run button out of sight ({where})"
                assert in_view(page, f"#{tab}-stop"), f"{name}: stop button out of sight ({where})"
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(artifacts / f"phone-{tab}.png"))

        # History has no run button; it must fit the screen all the same.
        page.get_by_role("tab", name="History").click()
        page.wait_for_selector("#history-search", state="visible")
        widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths[0] <= widths[1] == PHONE["width"], f"History: {widths}"

        page.get_by_role("tab", name="Edit").click()
        page.click("#edit-load-example")
        page.locator("#edit-references img").first.wait_for()
        canvas = page.locator("#edit-canvas canvas").first
        canvas.scroll_into_view_if_needed()
        box = canvas.bounding_box()
        assert box is not None
        assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        assert box["width"] >= 300 and box["height"] >= 250, f"canvas too small: {box}"
    finally:
        context.close()
