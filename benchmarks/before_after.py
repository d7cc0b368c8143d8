"""Benchmark 1's burst against two versions of the app, alternating, the bare floor beside.

A change meant to save the app CPU is measured here against the code before it:
`--before` names the app.py of a copy of that code (e.g. `git worktree add` or
`git archive` of the commit before, into a scratch folder). The two apps and the
bare Gradio floor (benchmarks/floors/bare_fal.py) run side by side against one
fake fal service; each round, every one of them takes the same burst of
simultaneous `/generate` calls (32 visitors, 2 s of fal latency), in a rotating
order. Figures per server: wall / latency and the process's CPU per request
(psutil), median over the rounds, each round's value beside.

    python -m benchmarks.before_after --before /tmp/old/app.py [--rounds 4] [--smoke]
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
    running,
    workdir,
)
from benchmarks.concurrency import ARGUMENTS, Burst, connect, measured_burst


def main(smoke: bool, app_path: Path = APP, *, before: Path, rounds: int = 4) -> None:
    visitors, latency = (8, 1.0) if smoke else (32, 2.0)
    rounds = 1 if smoke else rounds
    tmp = workdir("before-after")
    with FakeProcess(tmp, latency=latency) as fake:
        with (
            running(launch(app_path, tmp, fake.env, name="after")) as after,
            running(launch(before, tmp, fake.env, name="before")) as old,
            running(
                launch(BENCHMARKS / "floors" / "bare_fal.py", tmp, fake.env, name="bare")
            ) as bare,
        ):
            servers = {"after": after, "before": old, "bare Gradio": bare}
            clients = {
                name: connect(server, visitors, tmp / f"downloads-{name}")
                for name, server in servers.items()
            }
            for group in clients.values():  # TLS, caches
                group[0].predict(**ARGUMENTS, api_name="/generate")
            bursts: dict[str, list[Burst]] = {name: [] for name in servers}
            names = list(servers)
            for index in range(rounds):
                for name in names[index % 3 :] + names[: index % 3]:
                    bursts[name].append(measured_burst(servers[name], clients[name]))
            errors = [e for group in bursts.values() for b in group for e in b.errors]
            if errors:
                raise RuntimeError(f"calls failed: {errors[:5]}")
    print(
        f"before/after: {visitors} simultaneous /generate, "
        f"fal latency {latency:g} s, {rounds} rounds"
    )
    ratio = {name: median([b.wall_s / latency for b in group]) for name, group in bursts.items()}
    cpu = {name: median([b.cpu_ms_per_call for b in group]) for name, group in bursts.items()}
    for name, group in bursts.items():
        walls = ", ".join(f"{b.wall_s / latency:.2f}" for b in group)
        cpus = ", ".join(f"{b.cpu_ms_per_call:.1f}" for b in group)
        print(
            f"  {name:<12} wall / latency median {ratio[name]:.2f} ({walls}); "
            f"CPU per request median {cpu[name]:.1f} ms ({cpus})"
        )
    report(
        Row(
            "before/after: wall / latency, the app after the change",
            {"": ratio["after"]},
            floors={"before": ratio["before"], "bare Gradio app": ratio["bare Gradio"]},
        )
    )
    report(
        Row(
            "before/after: CPU per request, the app after the change",
            {"": cpu["after"]},
            unit=" ms",
            digits=1,
            floors={"before": cpu["before"], "bare Gradio app": cpu["bare Gradio"]},
        )
    )


if __name__ == "__main__":
    parser = benchmark_args(__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the app.py of the code before")
    parser.add_argument("--rounds", type=int, default=4, help="bursts per server")
    args = parser.parse_args()
    main(args.smoke, args.app, before=args.before, rounds=args.rounds)
