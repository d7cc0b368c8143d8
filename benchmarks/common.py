"""What the benchmarks share: the fake fal service in its own process, servers
started the way a user starts the app, photo-like images, medians, result rows.

Each benchmark module runs on its own (`python -m benchmarks.<name>`), prints its
figures, and ends with `BENCHMARK-ROW {json}` lines that `python -m benchmarks`
gathers into one table. Nothing here imports fal_client: a process that talks to
the fake itself must put the fake's env() in os.environ first (`use_fake_env`).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = Path(__file__).resolve().parent
# The host key the app processes get (the fake accepts any key).
HOST_KEY = "bench000-0000-4000-8000-000000000000:00000000000000000000000000000000"
ROW_PREFIX = "BENCHMARK-ROW "
APP = ROOT / "app.py"


# One 1024x1024 png from /generate: the call the timing benchmarks repeat.
GENERATE_ARGUMENTS: dict[str, Any] = {
    "prompt": "a lighthouse at dusk, watercolor",
    "image_size": "1024x1024",
    "background": "auto",
    "quality": "low",
    "num_images": 1,
    "output_format": "png",
    "sync_mode": False,
}

# --- results ----------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the summary table: a figure, its target, and the floors measured beside it.

    `stats` holds the figure's statistic(s) by name. Where two honest statistics of the
    same measurements exist (the median of per-round ratios, and the ratio of the
    medians), both are reported, and the target is met only when both meet it.
    """

    benchmark: str
    stats: dict[str, float]  # statistic -> value, in `unit`; "" names a lone statistic
    unit: str = ""  # appended to every value: "", " ms", " MB", " s"
    digits: int = 2  # decimals shown
    limit: float | None = None  # met when every statistic is <= limit; None: no target
    floors: dict[str, float] = field(default_factory=dict)  # measured beside it, same unit
    detail: str = ""  # what a reader needs to read the figure (one run's raw numbers)

    @property
    def met(self) -> bool | None:
        if self.limit is None:
            return None
        return all(value <= self.limit for value in self.stats.values())

    @property
    def target(self) -> str:
        return "-" if self.limit is None else f"≤ {self.limit:g}{self.unit}"

    def value(self, number: float) -> str:
        return f"{number:.{self.digits}f}{self.unit}"

    def figure(self) -> str:
        """The statistics of this one run, e.g. "per-round median 1.031; ratio of medians 1.051"."""
        return "; ".join(f"{name} {self.value(v)}".strip() for name, v in self.stats.items())


def report(row: Row) -> None:
    """Print a row for `python -m benchmarks` (and for a person reading the output)."""
    print(f"{ROW_PREFIX}{json.dumps(asdict(row))}", flush=True)


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def spread(values: Sequence[float]) -> str:
    """min–max in ms, to show how noisy a median is."""
    return f"{min(values) * 1000:.0f}–{max(values) * 1000:.0f} ms"


def benchmark_args(description: str) -> Any:
    """The command line every benchmark module shares: `--smoke`, `--app`."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--smoke", action="store_true", help="a short run: few iterations, small counts"
    )
    parser.add_argument(
        "--app",
        type=Path,
        default=APP,
        help="the app.py to measure (default: this repo's; e.g. a scratch copy with a fix)",
    )
    return parser


# --- processes --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def workdir(name: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"bench-{name}-"))


class FakeProcess:
    """`python -m tests.fakefal` in its own process, so that its CPU time (TLS, JSON,
    images) is not spent in the process being measured."""

    def __init__(
        self,
        tmp: Path,
        *,
        latency: float,
        queue_time: float = 0.0,
        sweep: float = 0.0,
        sweep_group: int = 1,
    ) -> None:
        self.log_path = tmp / "fakefal.log"
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.fakefal",
                "--latency",
                str(latency),
                "--queue-time",
                str(queue_time),
                "--latency-sweep",
                str(sweep),
                "--sweep-group",
                str(sweep_group),
                "--workdir",
                str(tmp / "fakefal"),
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        self.env: dict[str, str] = {}
        assert self.process.stdout is not None
        for line in self.process.stdout:
            line = line.strip()
            if line == "ready":
                break
            if line.startswith("export "):
                key, _, value = line.removeprefix("export ").partition("=")
                self.env[key] = shlex.split(value)[0] if value else ""
        else:
            self.stop()
            raise RuntimeError(f"the fake did not start:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        stop_process(self.process)

    def __enter__(self) -> FakeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def use_fake_env(env: Mapping[str, str]) -> None:
    """Point this process's fal_client at the fake: before its first import."""
    if "fal_client" in sys.modules:
        raise RuntimeError("fal_client was imported before the fake's env was set")
    os.environ.update(env)
    from backend.fal import point_uploads_at  # imports fal_client: after the env

    point_uploads_at(env["FAL_REST_URL"], env["FAL_CDN_URL"])


@dataclass
class Server:
    """A Gradio server in its own process (the app, or a floor to compare it with)."""

    name: str
    url: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    launched: float  # time.perf_counter() just before the process was started
    ready: float  # time.perf_counter() at the first HTTP 200 of GET /

    @property
    def startup_s(self) -> float:
        return self.ready - self.launched

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def server_env(fake_env: Mapping[str, str], port: int, results: Path) -> dict[str, str]:
    """The environment of a server process: this one's, less any studio or Gradio
    setting (the app runs on its defaults), plus the fake's and a host key."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("STUDIO_", "GRADIO_", "FAL_"))
    }
    env.update(fake_env)
    env.update(
        {
            "FAL_KEY": HOST_KEY,
            "GRADIO_SERVER_NAME": "127.0.0.1",
            "GRADIO_SERVER_PORT": str(port),
            # No calls home (this machine has no internet; both servers alike).
            "GRADIO_ANALYTICS_ENABLED": "False",
            # Gradio's upload folder, one per server; the app keeps its results
            # inside it, as it does by default.
            "GRADIO_TEMP_DIR": str(results),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def launch(
    script: Path,
    tmp: Path,
    fake_env: Mapping[str, str],
    *,
    name: str,
    extra_env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> Server:
    """Start `python <script>` the way a user starts app.py, and wait for GET / to answer 200."""
    port = free_port()
    env = server_env(fake_env, port, tmp / f"results-{name}")
    env.update(extra_env or {})
    log_path = tmp / f"{name}-{port}.log"
    with log_path.open("wb") as log:
        launched = time.perf_counter()
        process = subprocess.Popen(
            [sys.executable, str(script)], cwd=tmp, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    deadline = launched + timeout
    while True:
        if process.poll() is not None:
            log_text = log_path.read_text(errors="replace")
            raise RuntimeError(f"{name} exited early ({process.returncode}):\n{log_text}")
        if _answers_200(port):
            ready = time.perf_counter()
            break
        if time.perf_counter() > deadline:
            stop_process(process)
            raise RuntimeError(f"{name} did not answer in {timeout:.0f} s")
        time.sleep(0.01)
    return Server(name, url, port, process, log_path, launched, ready)


def _answers_200(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def stop_process(process: subprocess.Popen[Any]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def running(server: Server) -> Iterator[Server]:
    try:
        yield server
    finally:
        stop_process(server.process)


# --- images -----------------------------------------------------------------------


def photo_png(width: int, height: int, *, seed: int, noise: float = 5.0) -> bytes:
    """A PNG that compresses like a photo (2.5–3.5 MB at 1536x1024, as fal's PNGs are):
    smooth gradients plus sensor-like noise. The fake's own images are flat and tiny."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 255 / (width + height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, noise, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    return buffer.getvalue()
