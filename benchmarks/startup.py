"""Benchmark 4: `python app.py` to the first HTTP 200, against a bare Gradio app.

Both are started the same way (`python <script>` with the same environment:
the fake fal service's hosts, a host key, a free port, no analytics), and
GET / is polled every 10 ms until it answers 200. The floor is
`benchmarks/floors/bare_blocks.py`: a gr.Blocks with one Markdown. One start
of each, untimed, warms the disk cache and the bytecode; then they alternate.

    python -m benchmarks.startup [--smoke]
"""

from __future__ import annotations

from pathlib import Path

from benchmarks.common import (
    APP,
    BENCHMARKS,
    FakeProcess,
    Row,
    benchmark_args,
    launch,
    median,
    report,
    spread,
    stop_process,
    workdir,
)

TARGET_RATIO = 1.15


def main(smoke: bool, app_path: Path = APP) -> None:
    rounds = 1 if smoke else 5
    tmp = workdir("startup")
    scripts = {"bare Gradio": BENCHMARKS / "floors" / "bare_blocks.py", "studio": app_path}
    times: dict[str, list[float]] = {name: [] for name in scripts}
    with FakeProcess(tmp, latency=0.0) as fake:
        if not smoke:
            for name, script in scripts.items():
                stop_process(launch(script, tmp, fake.env, name=f"warm-{name}").process)
        order = list(scripts)
        for index in range(rounds):
            for name in order if index % 2 == 0 else order[::-1]:
                server = launch(scripts[name], tmp, fake.env, name=name.replace(" ", "-"))
                stop_process(server.process)
                times[name].append(server.startup_s)

    medians = {name: median(values) for name, values in times.items()}
    ratio = medians["studio"] / medians["bare Gradio"]
    # Each round started one of each: per-round ratios too. The target needs both.
    per_round = median([a / b for a, b in zip(times["studio"], times["bare Gradio"], strict=True)])
    print(f"start-up: launch to first HTTP 200 of GET /, {rounds} alternating round(s)")
    for name, values in times.items():
        print(f"  {name:<12} median {medians[name]:.2f} s  ({spread(values)})")
    print(
        f"  studio / bare Gradio: per-round median {per_round:.2f}, ratio of the medians "
        f"{ratio:.2f} (target <= {TARGET_RATIO})"
    )
    report(
        Row(
            "4. Start-up vs bare Gradio",
            {"per-round median": per_round, "ratio of medians": ratio},
            limit=TARGET_RATIO,
            detail=f"{medians['studio']:.2f} s / {medians['bare Gradio']:.2f} s",
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
