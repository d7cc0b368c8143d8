"""Workflows across tabs in a real browser: a result sent to edit, painted, edited."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

pytestmark = pytest.mark.browser


def paint_stroke(page) -> None:
    """A short horizontal stroke across the middle of the canvas."""
    box = page.locator("#edit-canvas canvas").first.bounding_box()
    y = box["y"] + box["height"] * 0.5
    x0, x1 = box["x"] + box["width"] * 0.35, box["x"] + box["width"] * 0.65
    page.mouse.move(x0, y)
    page.mouse.down()
    for step in range(1, 4):
        page.mouse.move(x0 + (x1 - x0) * step / 3, y)
    page.mouse.up()
    page.wait_for_timeout(300)


# Slow in headless chromium: the editor exports its canvases in software (~20 s).
@pytest.mark.timeout(300)
def test_send_a_result_to_edit_then_paint_and_edit(browser, app_server, fake, artifacts):
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    try:
        page.goto(app_server.url)
        page.fill("#t2i-prompt textarea", "a quiet harbour at dawn")
        page.click("#t2i-run")
        page.wait_for_function(
            "document.querySelector('#t2i-status')?.innerText.includes('✅')", timeout=30_000
        )
        # Results in one hop: the gallery shows fal's URL, and the browser loaded it.
        shown = page.locator("#t2i-gallery img").first
        shown.wait_for()
        page.wait_for_function(
            "[...document.querySelectorAll('#t2i-gallery img')]"
            ".every(img => img.complete && img.naturalWidth > 0)"
        )
        result_src = shown.get_attribute("src") or ""
        page.click("#t2i-send-to-edit")
        # The Edit tab opens with the result on the canvas.
        page.wait_for_selector("#edit-canvas canvas", state="visible")
        page.wait_for_timeout(2500)
        page.fill("#edit-prompt textarea", "add a lighthouse")
        paint_stroke(page)  # the brush still works after the canvas was set from code
        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('✅')", timeout=30_000
        )
        page.screenshot(path=str(artifacts / "send-to-edit.png"), full_page=True)

    finally:
        page.close()

    generated, edit = fake.wait_for_submissions(2)
    assert generated.endpoint == "fal-ai/gpt-image-1.5"
    assert edit.endpoint == "fal-ai/gpt-image-1.5/edit"
    fal_url = generated.result["images"][0]["url"]
    assert result_src == fal_url, "the gallery held fal's URL, not a file of the app"
    # Send to edit on a hosted result uploads nothing: fal gets its own URL back.
    assert edit.arguments["image_urls"] == [fal_url]
    assert fake.uploads == []
    [image] = [d for d in edit.decoded_inputs if d.role == "image"]
    [mask] = [d for d in edit.decoded_inputs if d.role == "mask"]
    produced = Image.open(io.BytesIO(fake.download(generated.result["images"][0]["url"])))
    assert (image.width, image.height) == produced.size
    assert np.array_equal(
        np.asarray(image.to_pil().convert("RGB")), np.asarray(produced.convert("RGB"))
    ), "the edited image is exactly the result that was sent to edit"
    alpha = np.asarray(mask.to_pil().convert("RGBA"))[..., 3]
    assert alpha[image.height // 2, image.width // 2] == 0, "the stroke is in the mask"
    assert alpha[5, 5] == 255
