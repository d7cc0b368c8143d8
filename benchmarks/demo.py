"""The offline demo's placeholder: drawing one 1536x1024 transparent PNG.

In-process, `backend.demo.render` (what DemoClient runs in a thread for each image),
after one untimed call that loads the font. No target: the demo's own pauses
(0.3 s a run) dwarf it; the figure shows it stays that way.

    python -m benchmarks.demo [--smoke]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from benchmarks.common import APP, Row, benchmark_args, median, ms, report, spread


def main(smoke: bool, app_path: Path = APP) -> None:
    sys.path.insert(0, str(app_path.resolve().parent))
    from backend.demo import DemoImage, render

    spec = DemoImage("a red fox in snow, watercolor " * 5, 0, 1, 1536, 1024, "png", True)
    render(spec)  # the font, Pillow's plugins
    times = []
    for _ in range(3 if smoke else 15):
        started = time.perf_counter()
        render(spec)
        times.append(time.perf_counter() - started)
    print(
        f"demo placeholder, 1536x1024 transparent PNG: median {ms(median(times))} ({spread(times)})"
    )
    report(
        Row(
            "Demo: one 1536x1024 transparent PNG placeholder drawn",
            {"": median(times) * 1000},
            unit=" ms",
            digits=0,
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
