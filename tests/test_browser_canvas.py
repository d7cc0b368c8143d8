"""The edit canvas as people use it: an image dropped straight onto it, then painted.

The drop is a real drag-and-drop in Chromium: `dragenter`, `dragover` and `drop`
events carrying a `DataTransfer` with the file, dispatched on whatever element
sits under the pointer at the canvas' centre, as the browser does for a drag
from the desktop.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from tests.test_browser_edit import canvas_centre_colour, close_to, image_rect_on_screen

pytestmark = pytest.mark.browser

SKY = (40, 120, 200)
SIZE = (1536, 1024)

DROP_JS = """([x, y, name, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: 'image/png'}));
    const target = document.elementFromPoint(x, y);
    const at = {bubbles: true, cancelable: true, composed: true, clientX: x, clientY: y,
                dataTransfer: transfer};
    for (const kind of ['dragenter', 'dragover', 'drop']) {
        target.dispatchEvent(new DragEvent(kind, at));
    }
    return target.tagName;
}"""


def drop_file(page, selector: str, path: Path) -> None:
    """Drag `path` from the desktop and drop it on the middle of `selector`."""
    box = page.locator(selector).bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    data = base64.b64encode(path.read_bytes()).decode()
    page.evaluate(DROP_JS, [x, y, path.name, data])


def wait_for_canvas(page, canvas, colour: tuple[int, int, int], seconds: float = 30) -> None:
    """Until the canvas shows `colour` in its middle."""
    for _ in range(int(seconds * 4)):
        if close_to(canvas_centre_colour(canvas), colour):
            return
        page.wait_for_timeout(250)
    raise AssertionError(f"the canvas never showed {colour}: {canvas_centre_colour(canvas)}")


def photo(path: Path) -> Path:
    image = Image.new("RGB", SIZE, SKY)
    ImageDraw.Draw(image).ellipse((500, 300, 1000, 800), fill=(250, 200, 40))
    image.save(path, "PNG")
    return path


@pytest.mark.timeout(300)
def test_an_image_dropped_on_the_canvas_is_the_main_image_and_its_stroke_the_mask(
    browser, app_server, fake, artifacts, tmp_path
):
    second = tmp_path / "second.png"
    Image.new("RGB", (512, 512), (200, 40, 40)).save(second)
    page = browser.new_page(viewport={"width": 1280, "height": 1300}, ignore_https_errors=True)
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Edit").click()
        page.fill("#edit-prompt textarea", "put a small red kite in the sky")
        # A reference already in the gallery: the dropped image must go before it.
        page.set_input_files("#edit-references input[type=file]", [str(second)])
        canvas = page.locator("#edit-canvas canvas").first
        wait_for_canvas(page, canvas, (200, 40, 40))
        drop_file(page, "#edit-canvas", photo(tmp_path / "dropped.png"))
        wait_for_canvas(page, canvas, (250, 200, 40))  # the disc in the middle of the photo

        # The gallery now starts with the dropped image, the other one after it.
        page.wait_for_function(
            "document.querySelectorAll('#edit-references .thumbnail-item img, "
            "#edit-references .grid-wrap img').length >= 2",
            timeout=20_000,
        )
        page.wait_for_timeout(1000)
        page.screenshot(path=str(artifacts / "canvas-dropped.png"), full_page=True, timeout=120_000)
        left, top, width, height = image_rect_on_screen(page, canvas)
        assert abs(width / height - 1.5) < 0.02, "the canvas shows the dropped image"

        start = (left + width * 0.15, top + height * 0.2)
        end = (left + width * 0.45, top + height * 0.2)
        page.mouse.move(*start)
        page.mouse.down()
        for step in range(1, 5):
            page.mouse.move(start[0] + (end[0] - start[0]) * step / 4, start[1])
        page.mouse.up()
        page.wait_for_timeout(300)

        # Keep the unmasked area exactly, with a 6 px seam.
        page.locator("#edit-keep input[type=checkbox]").check()
        page.locator("#edit-seam input[type=number]").fill("6")
        page.locator("#edit-seam input[type=number]").press("Tab")
        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('🧩')", timeout=60_000
        )
        page.screenshot(
            path=str(artifacts / "canvas-dropped-edited.png"), full_page=True, timeout=120_000
        )
        shown = page.evaluate(
            """() => [...document.querySelectorAll('#edit-gallery .thumbnail-item, '
                        + '#edit-gallery .grid-wrap button')]
                  .map(item => [item.querySelector('img')?.src,
                                item.innerText || item.getAttribute('aria-label') || ''])"""
        )
        status = page.inner_text("#edit-status")
        files = {
            name: page.request.get(src).body()
            for name, (src, _) in zip(("fal", "composited", "leaks"), shown, strict=False)
        }
    finally:
        page.close()

    [sub] = fake.submissions
    images = [d for d in sub.decoded_inputs if d.role == "image"]
    assert [(d.width, d.height) for d in images] == [SIZE, (512, 512)], "dropped = main"
    main = np.asarray(images[0].to_pil().convert("RGB"))
    assert tuple(main[10, 10]) == SKY and tuple(main[550, 750]) == (250, 200, 40)
    [mask] = [d for d in sub.decoded_inputs if d.role == "mask"]
    assert (mask.width, mask.height, mask.mode) == (*SIZE, "RGBA")
    alpha = np.asarray(mask.to_pil())[..., 3]

    def to_image(x: float, y: float) -> tuple[int, int]:
        return int((x - left) / width * SIZE[0]), int((y - top) / height * SIZE[1])

    for t in np.linspace(0.05, 0.95, 10):
        x, y = to_image(start[0] + (end[0] - start[0]) * t, start[1])
        assert alpha[y, x] == 0, f"stroke point {(x, y)} is not in the mask"
    stroke_y = to_image(*start)[1]
    for x, y in [(10, 10), (1500, 1000), (768, stroke_y + 200), (1400, stroke_y)]:
        assert alpha[y, x] == 255, f"{(x, y)} is in the mask but was not painted"

    # fal's result, then the composited one and its leak map, in that order.
    assert len(shown) == 3, shown
    fal_result = np.asarray(Image.open(io.BytesIO(files["fal"])).convert("RGB"))
    composited = np.asarray(Image.open(io.BytesIO(files["composited"])).convert("RGB"))
    assert composited.shape == main.shape
    edit = alpha == 0
    ys, xs = np.nonzero(edit)
    far = np.ones_like(edit)
    far[ys.min() - 6 : ys.max() + 7, xs.min() - 6 : xs.max() + 7] = False
    assert np.array_equal(composited[far], main[far]), "beyond the seam: the original"
    assert np.array_equal(composited[edit], fal_result[edit]), "in the mask: fal's edit"
    # The fake draws a disc and a bar without regard to the mask: those are leaks.
    changed = (np.abs(fal_result.astype(int) - main.astype(int)).max(axis=2) > 24) & ~edit
    share = changed.sum() / (~edit).sum()
    assert share > 0.01
    assert f"{share:.0%}" in status or f"{share:.1%}" in status
    leak_picture = np.asarray(Image.open(io.BytesIO(files["leaks"])).convert("RGB"))
    assert np.array_equal((leak_picture == (230, 20, 20)).all(axis=2), changed)


PASTE_JS = """([x, y, name, data]) => {
    const bytes = Uint8Array.from(atob(data), c => c.charCodeAt(0));
    const transfer = new DataTransfer();
    transfer.items.add(new File([bytes], name, {type: 'image/png'}));
    const target = document.elementFromPoint(x, y);
    target.dispatchEvent(new PointerEvent('pointerover', {bubbles: true, clientX: x, clientY: y}));
    document.activeElement.dispatchEvent(new ClipboardEvent('paste',
        {bubbles: true, cancelable: true, composed: true, clipboardData: transfer}));
}"""


def test_an_image_pasted_over_the_empty_canvas_becomes_the_main_image(
    browser, app_server, fake, tmp_path
):
    """Ctrl+V with the pointer over the canvas: the clipboard's image is the main image."""
    page = browser.new_page(viewport={"width": 1280, "height": 1300}, ignore_https_errors=True)
    try:
        page.goto(app_server.url)
        page.get_by_role("tab", name="Edit").click()
        box = page.locator("#edit-canvas").bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        page.mouse.move(x, y)
        pasted = photo(tmp_path / "pasted.png")
        page.evaluate(PASTE_JS, [x, y, pasted.name, base64.b64encode(pasted.read_bytes()).decode()])
        # The brush's outline follows the pointer on the canvas: out of the way, so
        # the canvas' middle shows the image.
        page.mouse.move(0, 0)
        canvas = page.locator("#edit-canvas canvas").first
        wait_for_canvas(page, canvas, (250, 200, 40))
        page.fill("#edit-prompt textarea", "a kite")
        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('✅')", timeout=60_000
        )
    finally:
        page.close()
    [sub] = fake.submissions
    [image] = [d for d in sub.decoded_inputs if d.role == "image"]
    assert (image.width, image.height) == SIZE
    assert tuple(np.asarray(image.to_pil().convert("RGB"))[550, 750]) == (250, 200, 40)
