"""Benchmark 2: what one `/generate` costs beyond fal's own time, against two floors.

Sequential calls with 0.5 s of fal latency on average (swept over 0.45–0.55 s:
see SWEEP), the three kinds alternating (the order rotates each round), same
arguments (one 1024x1024 png image):

- direct: `fal_client.AsyncClient(key).subscribe(...)` from this process (the
  time fal itself takes, seen from a client with warm connections);
- bare Gradio: `benchmarks/floors/bare_fal.py`, a Gradio app whose `/generate`
  only awaits `fal_client.AsyncClient(...).subscribe(...)` and returns the JSON
  (the least any Gradio app in front of fal can cost);
- the studio: `/generate` of `python app.py` (which also checks the request,
  streams progress, downloads the image and hands it to Gradio as a file).

Both servers are separate processes launched the same way with the same env,
called through `gradio_client` the same way (one client each, warm). The
client downloads result files as gradio_client does by default: the studio
returns an image file, the bare app a URL inside JSON (nothing to download).
Figures: the studio/bare ratio and the milliseconds added, each two ways: the
median over rounds of the per-round figure (the calls of a round share one fal
latency), and the same figure of the medians. The target needs both.

    python -m benchmarks.overhead [--smoke]
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.common import (
    APP,
    BENCHMARKS,
    GENERATE_ARGUMENTS,
    HOST_KEY,
    FakeProcess,
    Row,
    benchmark_args,
    launch,
    median,
    ms,
    report,
    running,
    spread,
    use_fake_env,
    workdir,
)

LATENCY = 0.5
# A fixed fal latency would make each app's figure depend on the phase of its
# 0.1 s status polls (a few ms of work can cost it a whole poll, or gain one). The
# fake sweeps the latency over one poll interval around LATENCY instead, one step
# per round: the three kinds of a round get the same latency, and every phase in
# turn (30 rounds: three sweeps).
SWEEP = 0.1
TARGET_RATIO = 1.05
TARGET_ADDED_MS = 50.0
ARGUMENTS = GENERATE_ARGUMENTS


def client_for(url: str, downloads: Path) -> Any:
    from gradio_client import Client

    return Client(
        url,
        verbose=False,
        download_files=str(downloads),
        analytics_enabled=False,
        ssl_verify=False,  # plain http on loopback; skips loading the CA bundle per call
    )


def main(smoke: bool, app_path: Path = APP) -> None:
    rounds = 3 if smoke else 30
    tmp = workdir("overhead")
    with FakeProcess(tmp, latency=LATENCY - SWEEP / 2, sweep=SWEEP, sweep_group=3) as fake:
        use_fake_env(fake.env)
        import fal_client

        loop = asyncio.new_event_loop()
        direct_client = fal_client.AsyncClient(key=HOST_KEY)

        def direct() -> None:
            arguments = dict(ARGUMENTS)
            loop.run_until_complete(direct_client.subscribe("fal-ai/gpt-image-1.5", arguments))

        app = launch(app_path, tmp, fake.env, name="app")
        with (
            running(app),
            running(
                launch(BENCHMARKS / "floors" / "bare_fal.py", tmp, fake.env, name="bare")
            ) as bare,
        ):
            studio_client = client_for(app.url, tmp / "downloads-app")
            bare_client = client_for(bare.url, tmp / "downloads-bare")

            def studio() -> None:
                images, _record, _status = studio_client.predict(
                    **ARGUMENTS, fal_key="", api_name="/generate"
                )
                assert len(images) == 1, images

            def bare_gradio() -> None:
                result = bare_client.predict(**ARGUMENTS, fal_key="", api_name="/generate")
                assert len(result["images"]) == 1, result

            kinds: dict[str, Callable[[], None]] = {
                "direct": direct,
                "bare Gradio": bare_gradio,
                "studio": studio,
            }
            times: dict[str, list[float]] = {name: [] for name in kinds}
            for call in kinds.values():  # warm: connections, fal clients, caches
                call()
            order = list(kinds)
            for index in range(rounds):
                rotated = order[index % 3 :] + order[: index % 3]
                for name in rotated:
                    started = time.perf_counter()
                    kinds[name]()
                    times[name].append(time.perf_counter() - started)
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    medians = {name: median(values) for name, values in times.items()}
    low, high = LATENCY - SWEEP / 2, LATENCY + SWEEP / 2
    print(
        f"overhead: sequential calls, fal latency swept over {low:.2f}–{high:.2f} s, "
        f"{rounds} rounds, alternating"
    )
    for name, values in times.items():
        print(f"  {name:<12} median {medians[name] * 1000:7.1f} ms  ({spread(values)})")
    print("  by latency step (ms; the mean over whole sweeps weighs every poll phase alike):")
    for step in range(10):
        rows = [i for i in range(rounds) if (i + 1) % 10 == step]
        cells = "  ".join(
            f"{name} {statistics.mean(times[name][i] for i in rows) * 1000:6.1f}"
            for name in times
            if rows
        )
        print(f"    +{SWEEP * step / 10 * 1000:3.0f} ms: {cells}")

    # Paired, round by round: the calls of a round had the same fal latency (the
    # sweep), so their ratio and difference do not depend on where it fell.
    def paired(name: str, floor: str, op: Callable[[float, float], float]) -> float:
        return median([op(a, b) for a, b in zip(times[name], times[floor], strict=True)])

    vs_bare = paired("studio", "bare Gradio", lambda a, b: a / b)
    vs_direct = paired("studio", "direct", lambda a, b: a / b)
    bare_vs_direct = paired("bare Gradio", "direct", lambda a, b: a / b)
    added = paired("studio", "bare Gradio", lambda a, b: a - b) * 1000
    # The same measurements, summed up the other way: the ratio and difference of the
    # medians. Neither statistic is the honest one alone; the target needs both.
    ratio_of_medians = medians["studio"] / medians["bare Gradio"]
    of_medians = (medians["studio"] - medians["bare Gradio"]) * 1000
    print(
        f"  studio / bare Gradio: per-round median {vs_bare:.3f}, ratio of the medians "
        f"{ratio_of_medians:.3f}; studio / direct {vs_direct:.3f}, bare Gradio / direct "
        f"{bare_vs_direct:.3f} (per round)"
    )
    print(
        f"  added over bare Gradio: per-round median {added:+.0f} ms, difference of the "
        f"medians {of_medians:+.0f} ms"
    )
    detail = f"medians {ms(medians['studio'])} / {ms(medians['bare Gradio'])}"
    report(
        Row(
            "2. Overhead vs bare Gradio (ratio)",
            {"per-round median": vs_bare, "ratio of medians": ratio_of_medians},
            digits=3,
            limit=TARGET_RATIO,
            floors={"bare Gradio / direct fal_client": bare_vs_direct},
            detail=f"{detail}; studio / direct {vs_direct:.3f}",
        )
    )
    report(
        Row(
            "2. Overhead vs bare Gradio (added)",
            {"per-round median": added, "difference of medians": of_medians},
            unit=" ms",
            digits=0,
            limit=TARGET_ADDED_MS,
            detail=detail,
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
