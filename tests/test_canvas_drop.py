"""An image dropped on the canvas becomes a file the edit can use as its main image."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.errors import InvalidInput
from backend.inputs import canvas_drop


def pixels(width: int, height: int, alpha: int = 255) -> np.ndarray:
    rng = np.random.default_rng(width)
    array = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    array[..., 3] = alpha
    return array


def test_an_opaque_drop_is_kept_as_an_rgb_png_with_the_same_pixels(tmp_path):
    dropped = pixels(300, 200)
    path = canvas_drop(dropped, tmp_path)
    assert path is not None
    with Image.open(path) as image:
        assert (image.format, image.mode, image.size) == ("PNG", "RGB", (300, 200))
        assert np.array_equal(np.asarray(image), dropped[..., :3])


def test_a_transparent_drop_keeps_its_alpha(tmp_path):
    dropped = pixels(64, 48)
    dropped[:10, :10, 3] = 0
    path = canvas_drop(dropped, tmp_path)
    assert path is not None
    with Image.open(path) as image:
        assert image.mode == "RGBA"
        assert np.array_equal(np.asarray(image), dropped)


def test_the_image_already_shown_is_not_taken_again(tmp_path):
    """The editor says "upload" also for the image the app put on the canvas."""
    shown = canvas_drop(pixels(120, 80), tmp_path)
    assert canvas_drop(pixels(120, 80), tmp_path, shown) is None
    other = pixels(120, 80)
    other[..., 0] = 255 - other[..., 0]
    assert canvas_drop(other, tmp_path, shown) not in (None, shown)
    assert canvas_drop(pixels(121, 80), tmp_path, shown) is not None


@pytest.mark.parametrize("shape", [(10, 10), (0, 0, 4), (10, 10, 2)])
def test_pixels_that_are_not_an_image_are_refused_in_a_sentence(tmp_path, shape):
    with pytest.raises(InvalidInput, match="could not be read"):
        canvas_drop(np.zeros(shape, np.uint8), tmp_path)
