"""The Edit tab in a real browser: upload, paint a stroke with the mouse, edit.

The mask fal receives must be transparent exactly under the stroke, mapped from
screen to image pixels, and opaque elsewhere.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

pytestmark = pytest.mark.browser

SKY = (40, 120, 200)
SIZE = (1536, 1024)


def main_image(path: Path) -> Path:
    image = Image.new("RGB", SIZE, SKY)
    ImageDraw.Draw(image).ellipse((500, 300, 1000, 800), fill=(250, 200, 40))
    image.save(path, "PNG")
    return path


def image_rect_on_screen(page, canvas) -> tuple[float, float, float, float]:
    """Where the main image is drawn on screen: the bounding box of its sky colour."""
    box = canvas.bounding_box()
    shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB")).astype(int)
    sky = np.abs(shot - np.array(SKY)).sum(axis=2) < 30
    ys, xs = np.nonzero(sky)
    # Screenshots are in device pixels; the page uses CSS pixels (ratio 1 here).
    scale = shot.shape[1] / box["width"]
    return (
        box["x"] + xs.min() / scale,
        box["y"] + ys.min() / scale,
        (xs.max() - xs.min() + 1) / scale,
        (ys.max() - ys.min() + 1) / scale,
    )


def test_a_painted_stroke_becomes_the_mask_fal_receives(
    browser, app_server, fake, artifacts, tmp_path
):
    second = tmp_path / "second.png"
    Image.new("RGB", (512, 512), (200, 40, 40)).save(second)
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Edit").click()
        page.fill("#edit-prompt textarea", "put a small red kite in the sky")
        page.set_input_files(
            "#edit-references input[type=file]", [str(main_image(tmp_path / "m.png")), str(second)]
        )
        canvas = page.locator("#edit-canvas canvas").first
        # The main image appears on the canvas once the server has prepared it.
        page.wait_for_function(
            """() => { const c = document.querySelector('#edit-canvas canvas');
                       return c && c.width > 0; }"""
        )
        page.wait_for_timeout(1500)
        left, top, width, height = image_rect_on_screen(page, canvas)
        assert abs(width / height - 1.5) < 0.02, "the canvas shows the image at its proportions"

        # A horizontal stroke across the upper left of the image (in the sky).
        start = (left + width * 0.15, top + height * 0.2)
        end = (left + width * 0.45, top + height * 0.2)
        # Few mouse events: each one repaints the whole canvas, which headless
        # chromium does in software (slowly); the brush joins them into a line.
        page.mouse.move(*start)
        page.mouse.down()
        for step in range(1, 5):
            t = step / 4
            page.mouse.move(start[0] + (end[0] - start[0]) * t, start[1])
        page.mouse.up()
        page.wait_for_timeout(300)

        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('✅')", timeout=30_000
        )
        page.locator("#edit-gallery img").first.wait_for()
        page.screenshot(path=str(artifacts / "edit-tab.png"), full_page=True)
    finally:
        page.close()

    [sub] = fake.submissions
    images = [d for d in sub.decoded_inputs if d.role == "image"]
    assert [(d.width, d.height) for d in images] == [SIZE, (512, 512)]
    [mask] = [d for d in sub.decoded_inputs if d.role == "mask"]
    assert (mask.width, mask.height) == SIZE
    alpha = np.asarray(mask.to_pil().convert("RGBA"))[..., 3]

    def to_image(x: float, y: float) -> tuple[int, int]:
        return int((x - left) / width * SIZE[0]), int((y - top) / height * SIZE[1])

    # Under the stroke's centre line: to be edited (transparent).
    for t in np.linspace(0.05, 0.95, 10):
        x, y = to_image(start[0] + (end[0] - start[0]) * t, start[1])
        assert alpha[y, x] == 0, f"stroke point {(x, y)} is not in the mask"
    # Well away from it (the brush is 48 px): kept (opaque).
    stroke_y = to_image(*start)[1]
    for x, y in [(10, 10), (1500, 1000), (768, stroke_y + 200), (1400, stroke_y)]:
        assert alpha[y, x] == 255, f"{(x, y)} is in the mask but was not painted"
    assert 0 < (alpha == 0).mean() < 0.1
    assert set(np.unique(alpha)) == {0, 255}


def canvas_centre_colour(canvas) -> tuple[int, int, int]:
    shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("RGB"))
    r, g, b = shot[shot.shape[0] // 2, shot.shape[1] // 2]
    return int(r), int(g), int(b)


def close_to(
    colour: tuple[int, int, int], target: tuple[int, int, int], tolerance: int = 30
) -> bool:
    return sum(abs(a - b) for a, b in zip(colour, target, strict=True)) < tolerance


def test_make_main_and_delete_reorder_the_references(
    browser, app_server, fake, artifacts, tmp_path
):
    blue = tmp_path / "blue.png"
    red = tmp_path / "red.png"
    Image.new("RGB", (900, 600), SKY).save(blue)
    Image.new("RGB", (600, 600), (200, 40, 40)).save(red)
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Edit").click()
        page.fill("#edit-prompt textarea", "a kite")
        page.set_input_files("#edit-references input[type=file]", [str(blue), str(red)])
        canvas = page.locator("#edit-canvas canvas").first
        page.wait_for_timeout(2500)
        assert close_to(canvas_centre_colour(canvas), SKY), "the first image is on the canvas"

        page.get_by_role("button", name="Thumbnail 2 of 2").first.click()
        page.click("#edit-make-main")
        page.wait_for_timeout(2500)
        assert close_to(canvas_centre_colour(canvas), (200, 40, 40)), "red is now the main image"
        page.screenshot(path=str(artifacts / "edit-make-main.png"), full_page=True)

        page.get_by_role("button", name="Delete image").first.click()  # removes red
        page.wait_for_timeout(2500)
        assert close_to(canvas_centre_colour(canvas), SKY), "blue is main again after the delete"

        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('✅')", timeout=30_000
        )
    finally:
        page.close()
    [sub] = fake.submissions
    images = [d for d in sub.decoded_inputs if d.role == "image"]
    assert [(d.width, d.height) for d in images] == [(900, 600)]
    assert "mask_image_url" not in sub.arguments, "nothing painted: no mask"
