"""Benchmarks 1 and 6: simultaneous `/generate` calls, and the app's memory meanwhile.

32 visitors (one `gradio_client.Client` each, each with its own X-Forwarded-For)
call `/generate` at the same moment; the fake fal service takes 2 s per
request. Figure: wall time from the start signal to the last result / 2 s
(physical limit 1.0). Every setting of the app is its default.

The same burst against the bare Gradio floor (benchmarks/floors/bare_fal.py,
an app that only awaits fal_client), alternating, shows what Gradio itself
costs at this concurrency on this machine. A third server, the app with
STUDIO_STATUS_STREAM=false, polls fal as the app did before the status stream:
the same burst against it shows what the stream changed.

CPU per request: the app process's CPU time (user + system, psutil, children
included) during a burst, divided by its calls. Then one burst of 128 visitors
against the app and the floor (measured and reported; the app's default
STUDIO_CONCURRENCY_LIMIT of 64 makes half of them wait their turn).

Memory: the app process's resident set size (psutil, with any children), idle
just after start-up, then sampled every 50 ms from the moment the clients
connect to the end of the last burst. Figure: peak - idle.

    python -m benchmarks.concurrency [--smoke]
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

from benchmarks.common import (
    APP,
    BENCHMARKS,
    GENERATE_ARGUMENTS,
    FakeProcess,
    Row,
    Server,
    benchmark_args,
    launch,
    median,
    report,
    running,
    stop_process,
    workdir,
)

TARGET_RATIO = 1.15
TARGET_CPU_MS = 15.0
TARGET_GROWTH_MB = 150.0
BIG_BURST = 128
ARGUMENTS: dict[str, Any] = {**GENERATE_ARGUMENTS, "fal_key": ""}


class MemorySampler:
    """Peak RSS of a process (and its children), sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def rss(self) -> int:
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return int(total)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            self.samples += 1
            self._stop.wait(self.interval)

    def __enter__(self) -> MemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


@dataclass
class Burst:
    wall_s: float
    start_spread_s: float  # last call started - first call started
    errors: list[str]
    cpu_ms_per_call: float = 0.0  # the server process's CPU during the burst, per call


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its children so far."""
    process = psutil.Process(pid)
    times = process.cpu_times()
    total = float(times.user + times.system)
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            child_times = child.cpu_times()
            total += float(child_times.user + child_times.system)
    return total


def measured_burst(server: Server, clients: list[Any]) -> Burst:
    """A burst, with the server's CPU time per call during it."""
    before = cpu_seconds(server.process.pid)
    result = burst(clients)
    result.cpu_ms_per_call = (cpu_seconds(server.process.pid) - before) * 1000 / len(clients)
    return result


def connect(server: Server, count: int, downloads: Path) -> list[Any]:
    """One client per visitor, connected in parallel (each loads the app's config)."""
    from gradio_client import Client

    clients: list[Any] = [None] * count

    def make(index: int) -> None:
        clients[index] = Client(
            server.url,
            verbose=False,
            headers={"X-Forwarded-For": f"198.51.100.{index + 1}"},
            download_files=str(downloads / f"visitor-{index}"),
            analytics_enabled=False,
            # Plain http on loopback: without this, every httpx client gradio_client
            # makes (several per call) loads the CA bundle, ~20 ms of the driver's CPU
            # that the app, on the same 2 cores, would then lack.
            ssl_verify=False,
        )

    threads = [threading.Thread(target=make, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return clients


def burst(clients: list[Any]) -> Burst:
    """Every client calls /generate at once; wall time to the last result."""
    barrier = threading.Barrier(len(clients) + 1)
    starts: list[float] = [0.0] * len(clients)
    ends: list[float] = [0.0] * len(clients)
    errors: list[str] = []

    def call(index: int) -> None:
        barrier.wait()
        starts[index] = time.perf_counter()
        try:
            result = clients[index].predict(**ARGUMENTS, api_name="/generate")
            # The studio answers (images, record, status); the bare floor fal's JSON.
            images = result["images"] if isinstance(result, dict) else result[0]
            if len(images) != ARGUMENTS["num_images"]:
                errors.append(f"visitor {index}: {len(images)} image(s)")
        except Exception as exc:
            errors.append(f"visitor {index}: {type(exc).__name__}: {exc}")
        ends[index] = time.perf_counter()

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(clients))]
    for thread in threads:
        thread.start()
    barrier.wait()
    go = time.perf_counter()
    for thread in threads:
        thread.join()
    return Burst(max(ends) - go, max(starts) - min(starts), errors)


def main(smoke: bool, app_path: Path = APP) -> None:
    visitors, latency, bursts = (8, 1.0, 1) if smoke else (32, 2.0, 3)
    big = 16 if smoke else BIG_BURST
    tmp = workdir("concurrency")
    floor_script = BENCHMARKS / "floors" / "bare_fal.py"
    polling_env = {"STUDIO_STATUS_STREAM": "false"}
    with FakeProcess(tmp, latency=latency) as fake:
        app = launch(app_path, tmp, fake.env, name="app")
        with (
            running(app),
            running(launch(floor_script, tmp, fake.env, name="bare")) as floor,
            running(launch(app_path, tmp, fake.env, name="polling", extra_env=polling_env)) as old,
        ):
            sampler = MemorySampler(app.process.pid)
            time.sleep(0.5)  # let start-up settle
            idle = median([sampler.rss() for _ in range(5)])
            with sampler:
                clients = connect(app, visitors, tmp / "downloads")
                floor_clients = connect(floor, visitors, tmp / "downloads-bare")
                old_clients = connect(old, visitors, tmp / "downloads-polling")
                for warm in (clients[0], floor_clients[0], old_clients[0]):  # TLS, caches
                    warm.predict(**ARGUMENTS, api_name="/generate")
                results: list[Burst] = []
                floor_results: list[Burst] = []
                old_results: list[Burst] = []
                for index in range(bursts):  # alternating, in a rotating order
                    trio = [
                        (app, clients, results),
                        (floor, floor_clients, floor_results),
                        (old, old_clients, old_results),
                    ]
                    for server, group, into in trio[index % 3 :] + trio[: index % 3]:
                        into.append(measured_burst(server, group))
            errors = [e for r in results + floor_results + old_results for e in r.errors]
            if errors:
                raise RuntimeError(f"calls failed: {errors[:5]}\n{app.log_text()[-3000:]}")
            stop_process(old.process)  # not in the big burst: it would only add load
            many = connect(app, big, tmp / "downloads-many")
            many_floor = connect(floor, big, tmp / "downloads-many-bare")
            big_app = measured_burst(app, many)
            big_floor = measured_burst(floor, many_floor)
            big_errors = big_app.errors + big_floor.errors
            if big_errors:
                raise RuntimeError(f"calls failed: {big_errors[:5]}\n{app.log_text()[-3000:]}")

    ratios = [r.wall_s / latency for r in results]
    ratio = median(ratios)
    walls = ", ".join(f"{r.wall_s:.2f}" for r in results)
    print(f"concurrency: {visitors} simultaneous /generate, fal latency {latency:.1f} s")
    print(
        f"  wall per burst: {walls} s "
        f"(calls started within {results[0].start_spread_s * 1e3:.0f} ms)"
    )
    print(f"  wall / latency: median {ratio:.2f} (target <= {TARGET_RATIO})")
    floor_ratio = median([r.wall_s / latency for r in floor_results])
    floor_walls = ", ".join(f"{r.wall_s:.2f}" for r in floor_results)
    print(
        f"  bare Gradio floor (floors/bare_fal.py, same clients, alternating): "
        f"{floor_walls} s, wall / latency median {floor_ratio:.2f}"
    )
    old_ratio = median([r.wall_s / latency for r in old_results])
    print(f"  the app polling (STUDIO_STATUS_STREAM=false): wall / latency median {old_ratio:.2f}")
    cpu = median([r.cpu_ms_per_call for r in results])
    floor_cpu = median([r.cpu_ms_per_call for r in floor_results])
    old_cpu = median([r.cpu_ms_per_call for r in old_results])
    print(
        f"  CPU per request (whole process): app {cpu:.1f} ms, polling app {old_cpu:.1f} ms, "
        f"bare floor {floor_cpu:.1f} ms (target <= {TARGET_CPU_MS:g} ms)"
    )
    print(
        f"  {big} simultaneous: app wall / latency {big_app.wall_s / latency:.2f}, "
        f"{big_app.cpu_ms_per_call:.1f} ms CPU per request; bare floor "
        f"{big_floor.wall_s / latency:.2f}, {big_floor.cpu_ms_per_call:.1f} ms"
    )
    mb = 1024 * 1024
    growth = (sampler.peak - idle) / mb
    print(
        f"memory: idle {idle / mb:.0f} MB, peak {sampler.peak / mb:.0f} MB "
        f"({sampler.samples} samples at 50 ms), growth {growth:.0f} MB"
    )
    label = f"{visitors} × /generate, {latency:g} s latency"
    report(
        Row(
            f"1. Concurrency: wall / latency, {label}",
            {"": ratio},
            limit=TARGET_RATIO,
            floors={"bare Gradio app": floor_ratio, "the app polling": old_ratio},
            detail=f"median of {len(results)} burst(s): {walls} s",
        )
    )
    report(
        Row(
            "1b. CPU per request during 1 (app process, psutil)",
            {"": cpu},
            unit=" ms",
            digits=1,
            limit=TARGET_CPU_MS,
            floors={"bare Gradio app": floor_cpu, "the app polling": old_cpu},
            detail=", ".join(f"{r.cpu_ms_per_call:.1f}" for r in results) + " ms per burst",
        )
    )
    report(
        Row(
            f"1c. {big} simultaneous /generate: wall / latency",
            {"": big_app.wall_s / latency},
            floors={"bare Gradio app": big_floor.wall_s / latency},
            detail="app at its default concurrency limit of 64: half of the calls wait a turn",
        )
    )
    report(
        Row(
            f"1d. {big} simultaneous: CPU per request",
            {"": big_app.cpu_ms_per_call},
            unit=" ms",
            digits=1,
            floors={"bare Gradio app": big_floor.cpu_ms_per_call},
        )
    )
    report(
        Row(
            "6. Memory: peak RSS growth during 1",
            {"": growth},
            unit=" MB",
            digits=0,
            limit=TARGET_GROWTH_MB,
            detail=f"idle {idle / mb:.0f} → peak {sampler.peak / mb:.0f} MB",
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
