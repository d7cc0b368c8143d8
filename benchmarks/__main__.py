"""The benchmark suite in one command: the benchmarks, then one markdown table.

    python -m benchmarks                  # the benchmarks of the README's table
                                          # (its numbered targets), once each
    python -m benchmarks --runs 3         # each of them 3 times: median and range
    python -m benchmarks --all            # also soak, transfer, demo, http_clients, profile
    python -m benchmarks --smoke          # short version for CI (< 2 minutes)
    python -m benchmarks --only overhead delivery
    python -m benchmarks --app /tmp/scratch/app.py   # measure a scratch copy

Each benchmark runs in its own Python process, one after the other (they would
disturb each other's timings), against the fake fal service (tests/fakefal). With
`--runs N` the whole list runs N times over, so each figure's runs are spread out
in time; the table shows each figure's median and range over the runs. A target is
"met" when every run met it (with both statistics, where a figure has two), "no"
when no run did, and "borderline" when the runs straddle it. Missed targets are
figures, not failures: the exit status is non-zero only when a benchmark crashed
or printed no figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import APP, ROOT, ROW_PREFIX, Row

# name -> (module, what it measures): the README's table. Memory (6) comes with
# concurrency (1).
BENCHMARKS = {
    "concurrency": ("benchmarks.concurrency", "1 and 6: simultaneous /generate, memory"),
    "overhead": ("benchmarks.overhead", "2: sequential /generate against two floors"),
    "edit_prep": ("benchmarks.edit_prep", "3: edit preparation (mask, uploads)"),
    "startup": ("benchmarks.startup", "4: python app.py to the first HTTP 200"),
    "delivery": ("benchmarks.delivery", "5: fal finished to four images shown in Chromium"),
    "fairness": ("benchmarks.fairness", "7: one visitor's burst and another's single call"),
    "mask_lock": ("benchmarks.mask_lock", "8: the unmasked area kept exactly, and the leak map"),
    "chained_edit": ("benchmarks.chained_edit", "9: an edit chained on a fal URL, bytes sent"),
}
# Run by --all (or --only): measurements with their own sections of the README.
EXTRA = {
    "soak": ("benchmarks.soak", "hundreds of requests with faults mixed in; memory"),
    "transfer": ("benchmarks.transfer", "edit inputs inline or uploaded"),
    "demo": ("benchmarks.demo", "the offline demo's placeholder"),
    "http_clients": ("benchmarks.http_clients", "fal's HTTP: a pool per key or one shared"),
    "profile": ("benchmarks.profile", "py-spy: where the app's CPU goes in the 32-call burst"),
}
EVERY = {**BENCHMARKS, **EXTRA}


def run(name: str, smoke: bool, app: Path) -> tuple[list[Row], float, bool]:
    module, _ = EVERY[name]
    command = [sys.executable, "-m", module]
    if smoke:
        command.append("--smoke")
    command += ["--app", str(app)]
    print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    rows = []
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith(ROW_PREFIX):
            row = Row(**json.loads(line.removeprefix(ROW_PREFIX)))
            rows.append(row)
            print(f"  -> {row.benchmark}: {row.figure()}{_met_word(row.met)}", flush=True)
        else:
            print(line, end="", flush=True)
    ok = process.wait() == 0 and bool(rows)
    return rows, time.perf_counter() - started, ok


def _met_word(met: bool | None) -> str:
    return "" if met is None else (" (target met)" if met else " (target missed)")


def verdict(runs: list[Row]) -> str:
    """met: every run met the target; no: none did; borderline: the runs straddle it."""
    met = [row.met for row in runs]
    if met[0] is None:
        return "-"
    if all(met):
        return "met"
    return "borderline" if any(met) else "**no**"


def spread_of(row: Row, values: list[float]) -> str:
    """One value, or the median and range of several."""
    if len(values) == 1:
        return row.value(values[0])
    low, high = min(values), max(values)
    return f"{row.value(statistics.median(values))} ({low:.{row.digits}f}–{high:.{row.digits}f})"


def summary(runs: list[Row], key: str) -> str:
    first = runs[0]
    names = first.stats if key == "stats" else first.floors
    parts = []
    for name in names:
        values = [getattr(row, key)[name] for row in runs if name in getattr(row, key)]
        parts.append(f"{name}: {spread_of(first, values)}" if name else spread_of(first, values))
    return "; ".join(parts)


def table(by_figure: dict[str, list[Row]], count: int) -> str:
    figure = "figure" if count == 1 else f"figure: median (range) of {count} runs"
    lines = [
        f"| benchmark | {figure} | floor measured beside it | target | met? |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, runs in by_figure.items():
        lines.append(
            f"| {name} | {summary(runs, 'stats')} | {summary(runs, 'floors')} "
            f"| {runs[0].target} | {verdict(runs)} |"
        )
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="few iterations, small counts")
    parser.add_argument("--only", nargs="+", choices=list(EVERY), help="run just these benchmarks")
    parser.add_argument("--all", action="store_true", help="every benchmark, soak included")
    parser.add_argument("--runs", type=int, default=1, help="run the whole list this many times")
    parser.add_argument("--app", type=Path, default=APP, help="the app.py to measure")
    args = parser.parse_args()
    names = args.only or list(EVERY if args.all else BENCHMARKS)
    started = time.perf_counter()
    by_figure: dict[str, list[Row]] = {}
    crashed = []
    for number in range(1, args.runs + 1):
        if args.runs > 1:
            print(f"\n##### run {number} of {args.runs}", flush=True)
        for name in names:
            found, seconds, ok = run(name, args.smoke, args.app.resolve())
            for row in found:
                by_figure.setdefault(row.benchmark, []).append(row)
            print(f"=== {name}: {seconds:.0f} s{'' if ok else ' (CRASHED)'}", flush=True)
            if not ok:
                crashed.append(f"{name} (run {number})")
    details = [
        f"- {name}: " + " | ".join(row.detail for row in runs)
        for name, runs in by_figure.items()
        if any(row.detail for row in runs)
    ]
    print(f"\n{table(by_figure, args.runs)}\n")
    if details:
        print("Each run's raw figures:\n" + "\n".join(details) + "\n")
    kind = "smoke run" if args.smoke else "full run"
    runs = f", {args.runs} runs" if args.runs > 1 else ""
    print(f"{kind}{runs}: {time.perf_counter() - started:.0f} s; measured {args.app.resolve()}")
    if crashed:
        print(f"crashed, no figure: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
