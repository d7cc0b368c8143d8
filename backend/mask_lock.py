"""Keeping the unmasked area exactly: the original pixels put back around an edit.

The model treats a mask as guidance and may change pixels outside it (see
ARCHITECTURE.md, "Masks"). When the user asks for it, each result of a masked
edit gets a second version beside fal's own (which is never altered):

- the result scaled to the main image's size;
- the original's pixels put back outside the mask, with a seam `seam` pixels wide
  just outside the mask where the result fades into the original, so the edit
  does not end on a hard line. Beyond the seam the composite IS the original,
  byte for byte (integer blending whose weight there is exactly 0);
- a leak map: the share of the pixels outside the mask that the model changed by
  more than `LEAK_TOLERANCE` (any channel), and a picture marking them red over
  the dimmed original, with the edit area tinted.

numpy and Pillow only. The seam comes from a blur made of running sums (its cost
does not grow with its width), computed only around the edit area: a 1536x1024
image takes a few tens of ms in all (`python -m benchmarks --only mask_lock`).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image

#: A pixel outside the mask counts as changed when a channel moved by more than
#: this (out of 255): the model re-encodes the whole image, so every pixel moves a
#: little (compression, resampling); a leak is a visible change.
LEAK_TOLERANCE = 24

#: The seam's default width in pixels, and the widest the page offers.
DEFAULT_SEAM = 8
MAX_SEAM = 64

# The leak picture's colours: leaks red, the edit area tinted magenta.
_LEAK = (230, 20, 20)
_EDIT_TINT = (255, 0, 255)

Bools = npt.NDArray[np.bool_]
Weights = npt.NDArray[np.uint16]


@dataclass(frozen=True)
class Kept:
    """One result with its unmasked area restored, and how much the model leaked."""

    composite: Image.Image  # the main image's size and mode
    leak_picture: Image.Image  # RGB, the main image's size
    leak_share: float  # of the pixels outside the mask, the share the model changed
    scaled: bool  # whether the result had to be scaled to the main image's size


def keep_unmasked(
    original: Image.Image,
    result: Image.Image,
    edit: Bools,
    *,
    seam: int = DEFAULT_SEAM,
    tolerance: int = LEAK_TOLERANCE,
) -> Kept:
    """`result` with `original`'s pixels outside the edit area (True = edit), and its leaks.

    `edit` is the mask's area at the original's size. Transparency is kept when
    either image has some.
    """
    height, width = edit.shape
    if original.size != (width, height):
        raise ValueError(f"the mask is {width}x{height}, the original {original.size}")
    alpha = _has_alpha(original) or _has_alpha(result)
    mode = "RGBA" if alpha else "RGB"
    scaled = result.size != original.size
    if scaled:
        result = result.convert(mode).resize(original.size, Image.Resampling.LANCZOS)
    before = np.asarray(original.convert(mode))
    after = np.asarray(result.convert(mode))

    weight = seam_weights(edit, seam)
    composite = _blend(before, after, weight)
    share, leaked = leaks(before, after, edit, tolerance)
    return Kept(
        composite=Image.fromarray(composite, mode),
        leak_picture=_leak_picture(original, edit, leaked),
        leak_share=share,
        scaled=scaled,
    )


def seam_weights(edit: Bools, seam: int) -> Weights:
    """How much of the result each pixel takes, 0-255: 255 in the edit area, fading
    to 0 across `seam` pixels outside it, and exactly 0 beyond (no pixel further than
    `seam` from the edit area, along either axis, gets any of the result)."""
    weight = np.zeros(edit.shape, dtype=np.uint16)
    box = _around(edit, seam)
    if box is not None:
        weight[box] = _weights_in(edit[box], seam)
    return weight


def _weights_in(edit: Bools, seam: int) -> Weights:
    inside = edit.astype(np.uint16) * 255
    if seam <= 0:
        return inside
    # A box blur of the edit area reaches `seam` pixels out: part of it in each of
    # two passes (a tent, smoother than one box). Integer running sums, so a pixel
    # the boxes never reached is exactly 0. Doubled, so the first pixel outside
    # takes (almost) all of the result and the far edge none.
    first = seam // 2
    second = seam - first
    counts = edit.astype(np.int32)
    total = 1
    for radius in (first, second):
        if radius:
            for axis in (0, 1):
                counts = _running_sum(counts, radius, axis)
            total *= (2 * radius + 1) ** 2
    fade = np.minimum(counts.astype(np.int64) * 510 // total, 255).astype(np.uint16)
    return np.maximum(inside, fade)


def _around(edit: Bools, seam: int) -> tuple[slice, slice] | None:
    """The rows and columns of the edit area, `seam` wider each way: all the seam
    can reach. None when nothing is edited."""
    rows = np.flatnonzero(edit.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(edit[rows[0] : rows[-1] + 1].any(axis=0))
    height, width = edit.shape
    margin = max(seam, 0)
    return (
        slice(max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, height)),
        slice(max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, width)),
    )


def leaks(
    before: npt.NDArray[np.uint8],
    after: npt.NDArray[np.uint8],
    edit: Bools,
    tolerance: int = LEAK_TOLERANCE,
) -> tuple[float, Bools]:
    """(share of the pixels outside `edit` that changed by more than `tolerance`, where)."""
    # |before - after| in uint8 without widening: max minus min.
    difference = np.maximum(before, after)
    difference -= np.minimum(before, after)
    if difference.ndim == 3:
        changed = difference[..., 0] > tolerance
        for channel in range(1, difference.shape[2]):
            changed |= difference[..., channel] > tolerance
    else:
        changed = difference > tolerance
    leaked: Bools = changed & ~edit
    outside = int(edit.size - np.count_nonzero(edit))
    share = float(np.count_nonzero(leaked)) / outside if outside else 0.0
    return share, leaked


def save_png(image: Image.Image, path: Path) -> Path:
    """Write `image` as a PNG (lossless: the kept pixels stay exact)."""
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    path.write_bytes(buffer.getvalue())
    return path


def _blend(
    before: npt.NDArray[np.uint8], after: npt.NDArray[np.uint8], weight: Weights
) -> npt.NDArray[np.uint8]:
    """before * (255 - w) + after * w, over 255, rounded: integers, so that w = 0
    gives `before` exactly and w = 255 gives `after` exactly. Only the box the seam
    can reach is computed; everything else is `before` as it is."""
    mixed = before.copy()
    box = _around(weight > 0, 0)
    if box is None:
        return mixed
    w = weight[box][..., None].astype(np.uint32)
    part = before[box].astype(np.uint32) * (255 - w) + after[box].astype(np.uint32) * w + 127
    mixed[box] = (part // 255).astype(np.uint8)
    return mixed


def _running_sum(values: npt.NDArray[np.int32], radius: int, axis: int) -> npt.NDArray[np.int32]:
    """The sum over a window of 2 * radius + 1 along `axis`, edges padded with zeros."""
    size = 2 * radius + 1
    pad = [(0, 0), (0, 0)]
    pad[axis] = (radius + 1, radius)
    sums = np.cumsum(np.pad(values, pad), axis=axis, dtype=np.int32)
    length = values.shape[axis]
    if axis == 0:
        return sums[size : size + length] - sums[:length]
    return sums[:, size : size + length] - sums[:, :length]


def _leak_picture(original: Image.Image, edit: Bools, leaked: Bools) -> Image.Image:
    """The original in dimmed grey, the edit area tinted magenta, leaks in red."""
    # Dark enough for red to stand out. Pillow's compositing keeps this fast.
    grey = original.convert("L").point(lambda v: 60 + v * 110 // 255).convert("RGB")
    size = original.size
    tinted = Image.blend(grey, Image.new("RGB", size, _EDIT_TINT), 0.5)
    shown = Image.composite(tinted, grey, _as_mask(edit))
    return Image.composite(Image.new("RGB", size, _LEAK), shown, _as_mask(leaked))


def _as_mask(area: Bools) -> Image.Image:
    return Image.fromarray(area.view(np.uint8) * np.uint8(255), "L")


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or image.has_transparency_data


@dataclass(frozen=True)
class KeptFiles:
    """A result's composite and leak picture, written beside it."""

    composite: Path
    leak_picture: Path
    leak_share: float
    scaled: bool


def keep_unmasked_files(main: bytes, edit: Bools, result: Path, *, seam: int) -> KeptFiles:
    """`keep_unmasked` for the main image's bytes and a downloaded result file; the two new
    PNGs go beside `result` (which is never written to)."""
    with Image.open(io.BytesIO(main)) as opened_main, Image.open(result) as opened_result:
        kept = keep_unmasked(opened_main, opened_result, edit, seam=seam)
    stem = result.with_suffix("")
    return KeptFiles(
        composite=save_png(kept.composite, Path(f"{stem}-composited.png")),
        leak_picture=save_png(kept.leak_picture, Path(f"{stem}-leaks.png")),
        leak_share=kept.leak_share,
        scaled=kept.scaled,
    )
