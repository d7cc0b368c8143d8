"""The benchmark suite in one command: every benchmark, then one markdown table.

    python -m benchmarks                  # all six, full length (a few minutes)
    python -m benchmarks --smoke          # short version for CI (< 2 minutes)
    python -m benchmarks --only overhead delivery
    python -m benchmarks --app /tmp/scratch/app.py   # measure a scratch copy

Each benchmark runs in its own Python process, one after the other (they would
disturb each other's timings), against the fake fal service (tests/fakefal).
Missed targets are figures, not failures: the exit status is non-zero only when
a benchmark crashed or printed no figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import APP, ROOT, ROW_PREFIX, Row

# name -> (module, what it measures); memory (6) comes with concurrency (1).
BENCHMARKS = {
    "concurrency": ("benchmarks.concurrency", "1 and 6: simultaneous /generate, memory"),
    "overhead": ("benchmarks.overhead", "2: sequential /generate against two floors"),
    "edit_prep": ("benchmarks.edit_prep", "3: edit preparation (mask, uploads)"),
    "startup": ("benchmarks.startup", "4: python app.py to the first HTTP 200"),
    "delivery": ("benchmarks.delivery", "5: COMPLETED to four images shown in Chromium"),
    "fairness": ("benchmarks.fairness", "7: one visitor's burst and another's single call"),
}


def run(name: str, smoke: bool, app: Path) -> tuple[list[Row], float, bool]:
    module, _ = BENCHMARKS[name]
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
            rows.append(Row(**json.loads(line.removeprefix(ROW_PREFIX))))
        else:
            print(line, end="", flush=True)
    ok = process.wait() == 0 and bool(rows)
    return rows, time.perf_counter() - started, ok


def table(rows: list[Row]) -> str:
    lines = ["| benchmark | figure | target | met? |", "| --- | --- | --- | --- |"]
    for row in rows:
        met = "yes" if row.met else "**no**"
        lines.append(f"| {row.benchmark} | {row.figure} | {row.target} | {met} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="few iterations, small counts")
    parser.add_argument(
        "--only", nargs="+", choices=list(BENCHMARKS), help="run just these benchmarks"
    )
    parser.add_argument("--app", type=Path, default=APP, help="the app.py to measure")
    args = parser.parse_args()
    names = args.only or list(BENCHMARKS)
    started = time.perf_counter()
    rows: list[Row] = []
    crashed = []
    for name in names:
        found, seconds, ok = run(name, args.smoke, args.app.resolve())
        rows.extend(found)
        print(f"=== {name}: {seconds:.0f} s{'' if ok else ' (CRASHED)'}", flush=True)
        if not ok:
            crashed.append(name)
            rows.append(Row(name, "crashed: no figure", "-", False))
    kind = "smoke run" if args.smoke else "full run"
    print(f"\n{table(rows)}\n")
    print(f"{kind}: {time.perf_counter() - started:.0f} s; measured {args.app.resolve()}")
    if crashed:
        print(f"crashed: {', '.join(crashed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
