"""Edit inputs inline (data URIs) or uploaded to fal's storage: which is faster?

Runs whole edits through the real fal_client against the fake fal service
(tests/fakefal, loopback HTTPS, no model latency) with the same images sent
both ways, alternating, and prints medians and their ratio per image size.
The figure (no target: it is what the inline limit of 2 MB rests on) is the
ratio at the limit.

    python -m benchmarks.transfer [--rounds N] [--smoke]
"""

from __future__ import annotations

import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import Row, benchmark_args, report

SIZES = (50_000, 250_000, 1_000_000, 2_000_000, 4_000_000, 12_000_000)
INLINE_LIMIT = 2_000_000
KEY = "bench000-0000-4000-8000-000000000000:00000000000000000000000000000000"


def png_of_about(target_bytes: int) -> bytes:
    """A PNG near the target size: noise compresses badly, so size ~ pixels."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(7)
    side = max(16, int((target_bytes / 3) ** 0.5))
    pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


async def measure(rounds: int, sizes: tuple[int, ...]) -> dict[int, float]:
    """inline / uploaded, median over `rounds`, by target size."""
    from tests.fakefal import shared_fake

    fake = shared_fake(latency=0.0)  # before fal_client is imported: it reads the hosts once

    from backend import ImageClient, Settings, choose_key, draft_edit
    from backend.fal import point_uploads_at
    from backend.images import prepare_image

    async def one_edit(client: Any, data: bytes) -> float:
        draft = draft_edit([prepare_image(data)], None, prompt="bench", quality="low")
        started = time.perf_counter()
        await client.run(draft, choose_key(KEY, None))
        return time.perf_counter() - started

    point_uploads_at(fake.rest_url, fake.cdn_url)
    base = Settings(results_dir=Path(tempfile.mkdtemp()), poll_interval_s=0.02)
    everything = {"inline_limit_bytes": 1 << 40, "inline_budget_bytes": 1 << 40}
    inline = ImageClient(base.model_copy(update=everything))
    upload = ImageClient(base.model_copy(update={"inline_limit_bytes": 0}))
    print(f"{'image':>10} | {'inline ms':>9} | {'upload ms':>9} | inline/upload")
    print(f"{'-' * 10} | {'-' * 9} | {'-' * 9} | {'-' * 13}")
    ratios = {}
    for target in sizes:
        data = png_of_about(target)
        times: dict[str, list[float]] = {"inline": [], "upload": []}
        await one_edit(inline, data)  # warm both paths (TLS, CDN token)
        await one_edit(upload, data)
        for _ in range(rounds):
            times["inline"].append(await one_edit(inline, data))
            times["upload"].append(await one_edit(upload, data))
        a, b = (statistics.median(times[k]) * 1000 for k in ("inline", "upload"))
        ratios[target] = a / b
        print(f"{len(data) / 1e6:>8.2f}MB | {a:>9.1f} | {b:>9.1f} | {a / b:>13.2f}")
        fake.reset()
    await inline.aclose()
    await upload.aclose()
    return ratios


def main() -> None:
    parser = benchmark_args(__doc__.splitlines()[0] if __doc__ else "transfer")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    # The backend of the app measured (this repo's, or a scratch copy's).
    sys.path.insert(0, str(args.app.resolve().parent))
    rounds, sizes = (1, (1_000_000, INLINE_LIMIT)) if args.smoke else (args.rounds, SIZES)
    ratios = asyncio.run(measure(rounds, sizes))
    report(
        Row(
            "Transfer: inline / uploaded, one 2 MB edit input (the inline limit)",
            {"": ratios[INLINE_LIMIT]},
            detail=", ".join(f"{size / 1e6:g} MB: {ratio:.2f}" for size, ratio in ratios.items()),
        )
    )


if __name__ == "__main__":
    main()
