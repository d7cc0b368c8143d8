"""Keeping the unmasked area exactly: known images in, the original back outside the mask."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from backend.mask_lock import LEAK_TOLERANCE, keep_unmasked, seam_weights

W, H = 300, 200


def noise(seed: int, mode: str = "RGB", size: tuple[int, int] = (W, H)) -> Image.Image:
    channels = len(mode)
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], channels), np.uint8), mode)


def box_area(x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
    edit = np.zeros((H, W), bool)
    edit[y0:y1, x0:x1] = True
    return edit


def beyond(edit: np.ndarray, seam: int) -> np.ndarray:
    """Pixels further than `seam` from the edit area along either axis (Chebyshev)."""
    ys, xs = np.nonzero(edit)
    far = np.ones_like(edit)
    far[
        max(ys.min() - seam, 0) : ys.max() + seam + 1, max(xs.min() - seam, 0) : xs.max() + seam + 1
    ] = False
    return far


@pytest.mark.parametrize("seam", [0, 1, 8, 33])
def test_outside_the_mask_beyond_the_seam_the_composite_is_the_original(seam):
    original, result = noise(1), noise(2)
    edit = box_area(100, 50, 180, 120)
    kept = keep_unmasked(original, result, edit, seam=seam)
    composite = np.asarray(kept.composite)
    assert kept.composite.mode == "RGB" and kept.composite.size == (W, H)
    far = beyond(edit, seam)
    assert np.array_equal(composite[far], np.asarray(original)[far])
    assert np.array_equal(composite[edit], np.asarray(result)[edit]), "the edit is the model's"
    seam_ring = ~far & ~edit
    if seam:
        # In the seam the result fades into the original: neither one alone.
        weights = seam_weights(edit, seam)[seam_ring]
        assert weights.max() > 150 and weights.max() < 255 and weights.min() < 60
        assert not np.array_equal(composite[seam_ring], np.asarray(original)[seam_ring])
    else:
        assert not seam_ring.any()


def test_seam_weights_fade_outward_and_stop_at_the_seam():
    edit = box_area(100, 50, 180, 120)
    weights = seam_weights(edit, 10)
    row = weights[85, 180:195].tolist()  # leaving the box to the right
    assert row[0] > row[4] > row[8] > 0
    assert row[10:] == [0] * 5
    assert (weights[edit] == 255).all()


def test_a_result_of_another_size_is_scaled_to_the_main_image():
    original = noise(3)
    result = noise(4, size=(150, 100))
    edit = box_area(20, 20, 60, 60)
    kept = keep_unmasked(original, result, edit, seam=4)
    assert kept.scaled
    assert kept.composite.size == (W, H)
    far = beyond(edit, 4)
    assert np.array_equal(np.asarray(kept.composite)[far], np.asarray(original)[far])


def test_transparency_is_kept():
    original = noise(5, "RGBA")
    kept = keep_unmasked(original, noise(6), box_area(0, 0, 50, 50), seam=2)
    assert kept.composite.mode == "RGBA"
    far = beyond(box_area(0, 0, 50, 50), 2)
    assert np.array_equal(np.asarray(kept.composite)[far], np.asarray(original)[far])


def test_the_leak_share_counts_exactly_the_changes_outside_the_mask_beyond_the_tolerance():
    original = np.asarray(noise(7)).copy()
    original[...] = np.clip(original, 40, 200)  # room to move either way
    result = original.copy()
    edit = box_area(100, 50, 180, 120)
    result[edit] = 255 - result[edit]  # the edit itself: never a leak
    rng = np.random.default_rng(8)
    outside = np.argwhere(~edit)
    picks = outside[rng.choice(len(outside), 1500, replace=False)]
    leaked, faint = picks[:900], picks[900:]
    # 900 pixels changed well beyond the tolerance, in one channel each...
    for n, (y, x) in enumerate(leaked):
        result[y, x, n % 3] += LEAK_TOLERANCE + 1 + n % 10
    # ...and 600 moved by exactly the tolerance: re-encoding noise, not a leak.
    for y, x in faint:
        result[y, x] -= LEAK_TOLERANCE
    kept = keep_unmasked(Image.fromarray(original), Image.fromarray(result), edit, seam=6)
    assert kept.leak_share == pytest.approx(900 / (~edit).sum(), abs=1e-12)

    picture = np.asarray(kept.leak_picture)
    red = (picture == (230, 20, 20)).all(axis=2)
    expected = np.zeros((H, W), bool)
    expected[leaked[:, 0], leaked[:, 1]] = True
    assert np.array_equal(red, expected), "exactly the leaked pixels are marked"


def test_an_untouched_outside_leaks_nothing():
    original = noise(9)
    result = np.asarray(original).copy()
    edit = box_area(10, 10, 40, 40)
    result[edit] = 0
    kept = keep_unmasked(original, Image.fromarray(result), edit)
    assert kept.leak_share == 0.0
