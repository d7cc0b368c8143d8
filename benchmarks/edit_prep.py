"""Benchmark 3: preparing an edit, from having the files to the fal request ready to submit.

In-process, with the backend functions the Edit tab's handler runs, in its order
(ui/handlers.py `edit_in_page` then `ImageClient.stream`): three 1536x1024
photo-like PNG references (2.5-3.3 MB, files on disk as Gradio hands them over)
read and checked (`prepare_image`, in a thread), the mask made from three
painted RGBA editor layers (`mask_from_editor`, in a thread: the edit area;
its PNG is encoded by `send_inputs`, in a thread, while the references
upload), `draft_edit`, then `send_inputs` with every file uploaded (inline
limit 0) to the fake fal service, which runs in its own process. The clock stops when `send_inputs`
returns the request with its URLs: the next step is `client.submit`. Not
included: the browser's upload of the files to Gradio, Gradio's own handling.

Floor: one upload of the largest of the four files alone, same fal client,
alternating with the full preparation; a second floor, the four files already
prepared and uploaded at once, shows what parallel uploads cost on this machine
(on loopback they share the CPU of both ends). Figures: the mask conversion (median of
the runs: edit area and PNG, alone) and total preparation / largest upload alone, as
the median of per-round ratios and as the ratio of the medians (the target needs both).

    python -m benchmarks.edit_prep [--smoke]
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    APP,
    HOST_KEY,
    FakeProcess,
    Row,
    benchmark_args,
    median,
    ms,
    photo_png,
    report,
    spread,
    use_fake_env,
    workdir,
)

WIDTH, HEIGHT = 1536, 1024
TARGET_MASK_S = 0.030
TARGET_RATIO = 1.3


def painted_layers() -> list[Any]:
    """Three RGBA layers as gr.ImageMask hands them over: strokes of the brush colour
    (magenta, alpha 0.6) on transparent, each a few thick strokes."""
    import numpy as np

    layers = []
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    for index in range(3):
        layer = np.zeros((HEIGHT, WIDTH, 4), dtype=np.uint8)
        cx, cy = 300 + 450 * index, 300 + 200 * index
        disc = (x - cx) ** 2 + (y - cy) ** 2 < 160**2
        stroke = (np.abs(y - (cy + 0.4 * (x - cx))) < 24) & (np.abs(x - cx) < 500)
        layer[disc | stroke] = (255, 0, 255, 153)
        layers.append(layer)
    return layers


def main(smoke: bool, app_path: Path = APP) -> None:
    # The backend of the app measured (this repo's, or a scratch copy's).
    sys.path.insert(0, str(app_path.resolve().parent))
    rounds = 3 if smoke else 15
    tmp = workdir("edit-prep")
    paths = []
    for index, noise in enumerate((3.0, 5.0, 8.0)):
        path = tmp / f"reference-{index + 1}.png"
        path.write_bytes(photo_png(WIDTH, HEIGHT, seed=index, noise=noise))
        paths.append(path)
    editor = {"background": None, "layers": painted_layers(), "composite": None}

    with FakeProcess(tmp, latency=0.0) as fake:
        use_fake_env(fake.env)
        asyncio.run(_measure(paths, editor, rounds))


async def _measure(paths: list[Path], editor: dict[str, Any], rounds: int) -> None:
    from backend import draft_edit, fal
    from backend.edits import send_inputs
    from backend.images import prepare_image
    from backend.masks import mask_from_editor

    client = fal.Client(HOST_KEY, timeout_s=60.0)  # as ImageClient makes it

    def read_and_prepare() -> list[Any]:
        return [prepare_image(path.read_bytes(), name=path.name) for path in paths]

    async def prepare_and_send() -> dict[str, float]:
        started = time.perf_counter()
        images = await asyncio.to_thread(read_and_prepare)
        prepared = time.perf_counter()
        size = (images[0].width, images[0].height)
        mask = await asyncio.to_thread(mask_from_editor, editor, size)
        masked = time.perf_counter()
        draft = draft_edit(images, mask, prompt="put a red kite in the sky", quality="low")
        request = await send_inputs(client, draft, inline_limit=0)
        sent = time.perf_counter()
        assert mask is not None and request.mask_image_url and len(request.image_urls) == 3
        assert all(url.startswith("https://") for url in request.image_urls)
        return {
            "total": sent - started,
            "read + prepare_image x3": prepared - started,
            "mask_from_editor (area)": masked - prepared,
            "draft_edit + mask PNG + uploads x4": sent - masked,
        }

    sizes = [path.stat().st_size for path in paths]
    largest = paths[sizes.index(max(sizes))].read_bytes()

    async def largest_alone() -> float:
        started = time.perf_counter()
        await client.upload(largest, "image/png", "largest.png")
        return time.perf_counter() - started

    ready = read_and_prepare()
    mask_png = mask_from_editor(editor, (WIDTH, HEIGHT))
    files = [(image.data, image.content_type, image.file_name) for image in ready]
    files.append((mask_png.png if mask_png else b"", "image/png", "mask.png"))

    async def four_uploads() -> float:
        """A second floor: the same four files, already prepared, uploaded at once."""
        started = time.perf_counter()
        await asyncio.gather(*(client.upload(*file) for file in files))
        return time.perf_counter() - started

    await prepare_and_send()  # warm: the CDN token, connections, numpy and Pillow
    await largest_alone()
    await four_uploads()
    steps: dict[str, list[float]] = {}
    alone: list[float] = []
    parallel: list[float] = []
    for index in range(rounds):
        if index % 2:
            alone.append(await largest_alone())
            parallel.append(await four_uploads())
        for name, seconds in (await prepare_and_send()).items():
            steps.setdefault(name, []).append(seconds)
        if not index % 2:
            parallel.append(await four_uploads())
            alone.append(await largest_alone())
    mask_only = []
    for _ in range(rounds):
        started = time.perf_counter()
        made = mask_from_editor(editor, (WIDTH, HEIGHT))
        assert made is not None and made.png  # the PNG too: it is encoded when first asked for
        mask_only.append(time.perf_counter() - started)

    mb = ", ".join(f"{size / 1e6:.1f}" for size in sizes)
    print(
        f"edit preparation: 3 references {WIDTH}x{HEIGHT} PNG ({mb} MB) + painted mask, "
        f"{rounds} rounds"
    )
    for name, values in steps.items():
        print(f"  {name:<36} median {ms(median(values)):>7}  ({spread(values)})")
    print(f"  {'largest upload alone':<36} median {ms(median(alone)):>7}  ({spread(alone)})")
    print(
        f"  {'the 4 uploads alone':<36} median {ms(median(parallel)):>7}  ({spread(parallel)}): "
        f"{median(parallel) / median(alone):.2f} x the largest alone"
    )
    print(
        f"  {'mask area + PNG, alone':<36} median {ms(median(mask_only)):>7}  ({spread(mask_only)})"
    )
    mask_s = median(mask_only)
    total, alone_s = median(steps["total"]), median(alone)
    # Round i ran one full preparation and one upload alone, side by side: per-round
    # ratios, and the ratio of the medians. The target needs both.
    per_round = median([t / a for t, a in zip(steps["total"], alone, strict=True)])
    ratio = total / alone_s
    print(
        f"  total / largest upload alone: per-round median {per_round:.2f}, "
        f"ratio of the medians {ratio:.2f}"
    )
    report(
        Row(
            "3. Edit prep: mask conversion (3 RGBA layers 1536x1024 → PNG)",
            {"": mask_s * 1000},
            unit=" ms",
            digits=1,
            limit=TARGET_MASK_S * 1000,
        )
    )
    report(
        Row(
            "3. Edit prep: total / largest upload",
            {"per-round median": per_round, "ratio of medians": ratio},
            limit=TARGET_RATIO,
            floors={"the 4 uploads at once": median(parallel) / alone_s},
            detail=(
                f"{ms(total)} / {ms(alone_s)}; prepare "
                f"{ms(median(steps['read + prepare_image x3']))}, mask area "
                f"{ms(median(steps['mask_from_editor (area)']))}, mask PNG + uploads "
                f"{ms(median(steps['draft_edit + mask PNG + uploads x4']))}"
            ),
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
