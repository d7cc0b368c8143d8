"""Edit inputs inline (data URIs) or uploaded to fal's storage: which is faster?

Runs whole edits through the real fal_client against the fake fal service
(tests/fakefal, loopback HTTPS, no model latency) with the same images sent
both ways, alternating, and prints medians and their ratio per image size.

    python -m benchmarks.transfer [--rounds N]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from tests.fakefal import shared_fake

FAKE = shared_fake(latency=0.0)  # before fal_client is imported: it reads the hosts once

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from backend import ImageClient, Settings, choose_key, draft_edit  # noqa: E402
from backend.fal import point_uploads_at  # noqa: E402
from backend.images import prepare_image  # noqa: E402

KEY = "bench000-0000-4000-8000-000000000000:00000000000000000000000000000000"


def png_of_about(target_bytes: int) -> bytes:
    """A PNG near the target size: noise compresses badly, so size ~ pixels."""
    rng = np.random.default_rng(7)
    side = max(16, int((target_bytes / 3) ** 0.5))
    pixels = rng.integers(0, 256, size=(side, side, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


async def one_edit(client: ImageClient, data: bytes) -> float:
    draft = draft_edit([prepare_image(data)], None, prompt="bench", quality="low")
    started = time.perf_counter()
    await client.run(draft, choose_key(KEY, None))
    return time.perf_counter() - started


async def main(rounds: int) -> None:
    point_uploads_at(FAKE.rest_url, FAKE.cdn_url)
    base = Settings(results_dir=Path(tempfile.mkdtemp()), poll_interval_s=0.02)
    everything = {"inline_limit_bytes": 1 << 40, "inline_budget_bytes": 1 << 40}
    inline = ImageClient(base.model_copy(update=everything))
    upload = ImageClient(base.model_copy(update={"inline_limit_bytes": 0}))
    print(f"{'image':>10} | {'inline ms':>9} | {'upload ms':>9} | inline/upload")
    print(f"{'-' * 10} | {'-' * 9} | {'-' * 9} | {'-' * 13}")
    for target in (50_000, 250_000, 1_000_000, 2_000_000, 4_000_000, 12_000_000):
        data = png_of_about(target)
        times: dict[str, list[float]] = {"inline": [], "upload": []}
        await one_edit(inline, data)  # warm both paths (TLS, CDN token)
        await one_edit(upload, data)
        for _ in range(rounds):
            times["inline"].append(await one_edit(inline, data))
            times["upload"].append(await one_edit(upload, data))
        a, b = (statistics.median(times[k]) * 1000 for k in ("inline", "upload"))
        print(f"{len(data) / 1e6:>8.2f}MB | {a:>9.1f} | {b:>9.1f} | {a / b:>13.2f}")
        FAKE.reset()
    await inline.aclose()
    await upload.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(main(args.rounds))
    sys.exit(0)
