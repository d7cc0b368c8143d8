"""Benchmark 7: fair shares under saturation.

The app's capacity is set small (`STUDIO_CONCURRENCY_LIMIT=8`). Visitor A sends 40
`/generate` calls at once; once A's first 8 are at fal, visitor B sends one. The
fake takes 2 s per request.

Figures, beside what they are measured against:
- B's wait: from B's call until the app submits it to fal (the app logs each
  submit with the key's source; B brings a key of its own, so its line is the
  one that says "your key"). With first come, first served, B would wait behind
  all 32 of A's waiting calls (4 job times); fair shares give B the first freed
  slot. Target: at most one job time. B's whole call, less its own run, is shown
  beside it.
- A's total: from A's start to its last result, against 40 / 8 = 5 job times, the
  least any scheduler could take with 8 slots.

    python -m benchmarks.fairness [--smoke]
"""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from benchmarks.common import (
    APP,
    GENERATE_ARGUMENTS,
    FakeProcess,
    Row,
    benchmark_args,
    launch,
    report,
    running,
    workdir,
)

CAPACITY = 8
# B's own key (the fake takes any): the app's log then tells B's submit apart.
B_KEY = "benchb00-0000-4000-8000-000000000000:00000000000000000000000000000000"
ARGUMENTS: dict[str, Any] = {**GENERATE_ARGUMENTS, "fal_key": ""}


def main(smoke: bool, app_path: Path = APP) -> None:
    calls, latency = (16, 1.0) if smoke else (40, 2.0)
    tmp = workdir("fairness")
    from gradio_client import Client

    with FakeProcess(tmp, latency=latency) as fake:
        app = launch(
            app_path,
            tmp,
            fake.env,
            name="app",
            extra_env={"STUDIO_CONCURRENCY_LIMIT": str(CAPACITY)},
        )
        with running(app):

            def client(address: str) -> Any:
                return Client(
                    app.url,
                    verbose=False,
                    headers={"X-Forwarded-For": address},
                    download_files=str(tmp / "downloads" / address),
                    analytics_enabled=False,
                    ssl_verify=False,
                )

            greedy = [client("198.51.100.1") for _ in range(calls)]
            patient = client("198.51.100.2")
            patient.predict(**ARGUMENTS, api_name="/generate")  # warm: TLS, caches
            ends: list[float] = [0.0] * calls
            errors: list[str] = []
            barrier = threading.Barrier(calls + 1)

            def call(index: int) -> None:
                barrier.wait()
                try:
                    greedy[index].predict(**ARGUMENTS, api_name="/generate")
                except Exception as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                ends[index] = time.perf_counter()

            threads = [threading.Thread(target=call, args=(i,)) for i in range(calls)]
            for thread in threads:
                thread.start()
            barrier.wait()
            a_started = time.perf_counter()
            # B arrives once A holds every slot (A's first calls are at fal).
            time.sleep(latency / 4)
            b_called = time.time()
            b_started = time.perf_counter()
            patient.predict(**{**ARGUMENTS, "fal_key": B_KEY}, api_name="/generate")
            b_beyond_run = time.perf_counter() - b_started - latency
            for thread in threads:
                thread.join()
            if errors:
                raise RuntimeError(f"calls failed: {errors[:3]}\n{app.log_text()[-2000:]}")
            a_total = max(ends) - a_started
            log = app.log_text()
            b_wait = logged_at(log, " submitted ", "(your key)") - b_called
            first_free = logged_at(log, " finished ", "") - b_called

    floor = calls / CAPACITY
    print(f"fairness: capacity {CAPACITY}, A sends {calls} at once, then B sends 1")
    print(f"  jobs take {latency:g} s at fal; B calls {latency / 4:g} s after A")
    print(f"  B waited {b_wait:.2f} s for a slot = {b_wait / latency:.2f} job times")
    print(f"  floor: the first slot freed {first_free:.2f} s after B called (A's first job done)")
    print(f"  B's whole call took {b_beyond_run:.2f} s more than its own run")
    print(f"  (first come, first served: about {(calls - CAPACITY) / CAPACITY:.0f} job times)")
    print(
        f"  A's {calls} calls took {a_total:.2f} s = {a_total / latency:.2f} job times "
        f"(floor {floor:.0f}: {calls} / {CAPACITY} slots), ratio {a_total / latency / floor:.2f}"
    )
    report(
        Row(
            f"7. Fairness: B's wait for a slot in job times (A sends {calls}, {CAPACITY} slots)",
            {"": b_wait / latency},
            limit=1.0,
            floors={"the first slot freed": first_free / latency},
            detail=(
                f"{b_wait:.2f} s to reach fal with {latency:g} s jobs; its whole call "
                f"{b_beyond_run:.2f} s more than its run; first come, first served: "
                f"about {(calls - CAPACITY) / CAPACITY:.0f} job times"
            ),
        )
    )
    report(
        Row(
            f"7. Fairness: A's {calls} calls, in job times",
            {"": a_total / latency},
            floors={f"{calls} / {CAPACITY} slots": floor},
            detail=f"{a_total:.2f} s = {a_total / latency / floor:.2f} × the floor",
        )
    )


def logged_at(log: str, what: str, ending: str) -> float:
    """When the app first logged a line with `what` that ends with `ending`, after
    the warm-up call (logging's asctime: local time, to the millisecond)."""
    lines = [line for line in log.splitlines() if what in line and line.rstrip().endswith(ending)]
    for line in lines[1:] if what == " finished " else lines:
        return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise RuntimeError(f"no line with {what!r} in the app's log")


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
