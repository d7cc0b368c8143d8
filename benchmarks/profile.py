"""Where the app's CPU goes under the 32-call burst: py-spy on `python app.py`.

The app is launched twice, following requests on fal's status stream (today) and
polling (STUDIO_STATUS_STREAM=false, as before the stream). For each, 32 visitors
call `/generate` at once (fal latency 2 s) while py-spy samples the app process
(all threads, 100 Hz; samples of waiting threads left out). Printed: the CPU per request
(psutil), and the share of samples by where the CPU was, grouped by the
innermost frame's package, then the top functions.

    python -m benchmarks.profile [--smoke]
"""

from __future__ import annotations

import collections
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.common import APP, FakeProcess, benchmark_args, launch, running, workdir
from benchmarks.concurrency import ARGUMENTS, connect, measured_burst

PY_SPY = Path(sys.executable).with_name("py-spy")

# Innermost frames by file path: which layer was running.
GROUPS = [
    ("ssl / TLS", ("ssl.py",)),
    ("httpcore (connection pool, HTTP/1.1)", ("httpcore",)),
    ("h11", ("/h11/",)),
    ("httpx / httpx-sse", ("/httpx/", "httpx_sse")),
    ("aiohttp / httpx-aiohttp", ("/aiohttp/", "httpx_aiohttp", "/multidict/", "/yarl/")),
    ("fal_client", ("fal_client",)),
    ("gradio / gradio_client", ("/gradio/", "gradio_client")),
    ("starlette / fastapi / uvicorn", ("starlette", "fastapi", "uvicorn")),
    ("pydantic", ("pydantic",)),
    ("asyncio / selectors / socket", ("asyncio", "selectors.py", "socket.py")),
    ("json", ("/json/",)),
    ("PIL / images", ("PIL",)),
    ("the app (backend/, ui/)", ("/backend/", "/ui/")),
]


# Innermost frames of threads that wait (py-spy counts some as busy): left out.
WAITING = ("Condition.wait", "EpollSelector.select", "block_thread", "_wait_for_tstate_lock")
_LOOP = "asyncio / selectors / socket"


# The outer frames every sample of the event loop's thread has: not a layer.
ROOTS = ("threading.py", "uvicorn/server.py", "uvicorn/_compat.py", "asyncio/runners.py")


def group_of(stack: list[str]) -> str:
    """The layer a sample belongs to: the innermost frame of a known package, the event
    loop's own work only when no other package is on the stack."""
    loop = False
    for frame in reversed(stack):
        if any(root in frame for root in ROOTS):
            continue
        for name, marks in GROUPS:
            if any(mark in frame for mark in marks):
                if name != _LOOP:
                    return name
                loop = True
    return _LOOP if loop else "other"


def profile(mode: str, smoke: bool, app_path: Path) -> None:
    visitors, latency, bursts = (8, 1.0, 1) if smoke else (32, 2.0, 2)
    tmp = workdir(f"profile-{mode}")
    env = {"STUDIO_STATUS_STREAM": "true" if mode == "stream" else "false"}
    with FakeProcess(tmp, latency=latency) as fake:
        with running(launch(app_path, tmp, fake.env, name=mode, extra_env=env)) as app:
            clients = connect(app, visitors, tmp / "downloads")
            clients[0].predict(**ARGUMENTS, api_name="/generate")
            out = tmp / "profile.txt"
            spy = subprocess.Popen(
                [
                    str(PY_SPY),
                    "record",
                    "--pid",
                    str(app.process.pid),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--output",
                    str(out),
                    "--nonblocking",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            time.sleep(1.0)  # py-spy attaches
            cpu = [measured_burst(app, clients).cpu_ms_per_call for _ in range(bursts)]
            spy.send_signal(2)  # SIGINT: py-spy writes its file and exits
            _, errors = spy.communicate(timeout=60)
    if not out.exists():
        print(f"{mode}: py-spy wrote no profile: {errors.strip()[-500:]}")
        return
    by_group: collections.Counter[str] = collections.Counter()
    by_function: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        if not stack or not samples.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if any(mark in leaf for mark in WAITING):
            continue
        by_group[group_of(frames)] += int(samples)
        by_function[leaf] += int(samples)
        for frame in set(frames):
            if not any(root in frame for root in ROOTS) and "asyncio/" not in frame:
                inclusive[frame] += int(samples)
    total = sum(by_group.values()) or 1
    print(
        f"\n{mode}: {visitors} simultaneous /generate, {bursts} burst(s); CPU per request "
        f"{', '.join(f'{c:.1f}' for c in cpu)} ms; {total} samples"
    )
    for name, count in by_group.most_common():
        print(f"  {count / total:6.1%}  {name}")
    print("  top functions (innermost frame):")
    for name, count in by_function.most_common(12):
        print(f"  {count / total:6.1%}  {name[:110]}")
    print("  top functions with what they call (inclusive):")
    for name, count in inclusive.most_common(20):
        print(f"  {count / total:6.1%}  {name[:110]}")


def main(smoke: bool, app_path: Path = APP) -> None:
    for mode in ("stream", "polling"):
        profile(mode, smoke, app_path)


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
