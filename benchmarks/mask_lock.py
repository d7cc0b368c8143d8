"""Keeping the unmasked area exactly: one 1536x1024 result composited over its original.

In-process, `backend.mask_lock.keep_unmasked` on photo-like images (decoded
first: the figure is the compositing, not PNG decoding): the result scaled
(when its size differs), the original put back outside a painted ellipse (about
a sixth of the image) with the default seam, and the leak map with its picture.
A second figure takes the widest seam the page offers, and a result at half
the size (so it is scaled). Target: under 100 ms.

    python -m benchmarks.mask_lock [--smoke]
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

from benchmarks.common import APP, Row, benchmark_args, median, ms, photo_png, report, spread

WIDTH, HEIGHT = 1536, 1024
TARGET_MS = 100.0


def main(smoke: bool, app_path: Path = APP) -> None:
    sys.path.insert(0, str(app_path.resolve().parent))
    import numpy as np
    from PIL import Image, ImageDraw

    from backend.mask_lock import DEFAULT_SEAM, MAX_SEAM, keep_unmasked

    def photo(seed: int, width: int = WIDTH, height: int = HEIGHT) -> Image.Image:
        image = Image.open(io.BytesIO(photo_png(width, height, seed=seed)))
        image.load()
        return image

    original, result = photo(1), photo(2)
    half = photo(3, WIDTH // 2, HEIGHT // 2)
    drawn = Image.new("L", (WIDTH, HEIGHT), 0)
    ImageDraw.Draw(drawn).ellipse((500, 250, 1100, 750), fill=255)
    edit = np.asarray(drawn) > 0
    keep_unmasked(original, result, edit)  # Pillow's and numpy's first-call costs

    rounds = 5 if smoke else 25
    figures: dict[str, list[float]] = {"default": [], "widest": []}
    for _ in range(rounds):
        started = time.perf_counter()
        kept = keep_unmasked(original, result, edit, seam=DEFAULT_SEAM)
        figures["default"].append(time.perf_counter() - started)
        started = time.perf_counter()
        keep_unmasked(original, half, edit, seam=MAX_SEAM)
        figures["widest"].append(time.perf_counter() - started)
    default, widest = median(figures["default"]), median(figures["widest"])
    print(
        f"mask lock, {WIDTH}x{HEIGHT}, edit area {edit.mean():.0%}, {rounds} rounds: "
        f"seam {DEFAULT_SEAM} px median {ms(default)} ({spread(figures['default'])}); "
        f"seam {MAX_SEAM} px and a half-size result scaled: median {ms(widest)} "
        f"({spread(figures['widest'])}); leak share of this pair {kept.leak_share:.0%}"
    )
    report(
        Row(
            f"8. Mask lock: composite + leak map, {WIDTH}x{HEIGHT}, seam {DEFAULT_SEAM} px",
            {"": default * 1000},
            unit=" ms",
            digits=1,
            limit=TARGET_MS,
        )
    )
    report(
        Row(
            f"8. Mask lock: the same, seam {MAX_SEAM} px, a half-size result scaled",
            {"": widest * 1000},
            unit=" ms",
            digits=1,
            limit=TARGET_MS,
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
