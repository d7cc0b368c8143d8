"""Soak: a few hundred requests from concurrent visitors, with faults mixed in.

`python app.py` runs in its own process against the fake fal service (in this
process, so that faults can be matched to requests by prompt). Several visitors
(one gradio_client each, each with its own X-Forwarded-For) send `/generate`
and `/edit` calls one after another; about one request in six carries a fault
(fal's HTTP errors, a malformed or truncated answer, a dropped connection, a
request that never finishes, a result without images or with broken image
URLs, a rate limit that outlasts fal_client's retries) or bad input. Each
request knows what it should end in (images; some images and a named failure;
or an error whose sentence contains a given phrase) and is counted expected or
unexpected. The run is bounded: requests not started by `--max-seconds` are
skipped (and reported).

Figures: requests served, outcomes per kind (expected / unexpected), the app's
resident memory (psutil) at start, after warm-up, at the end and at its peak,
tracebacks in the app's log (there must be none) and whether a key ever
appeared in it.

    python -m benchmarks.soak [--requests 300] [--clients 8] [--max-seconds 300]
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil  # type: ignore[import-untyped]
from gradio_client import Client, handle_file
from PIL import Image

from benchmarks.common import (
    HOST_KEY,
    Row,
    Server,
    benchmark_args,
    launch,
    report,
    running,
    workdir,
)
from tests.fakefal import FakeFal, Fault

# A request that never finishes ends at this deadline (the app's default is 300 s).
# It stays above fal_client's own retries (~33 s of back-off for a lasting 429), so
# those end in their own sentence, as they do with the default.
REQUEST_TIMEOUT_S = 60
WARM_UP = 24  # requests before the "after warm-up" memory reading
TARGET_GROWTH_MB = 50.0


@dataclass(frozen=True)
class Kind:
    """One kind of request: its fault (if any) and what the visitor must see."""

    name: str
    per_300: int  # occurrences in 300 requests (scaled; each fault kind at least once)
    expect: str  # "images", "partial" or "error"
    phrase: str = ""  # in the error sentence, or in the status line
    fault: Fault | None = None
    times: int = 1  # faults to inject (one per attempt when each is a new submission)
    values: dict[str, Any] = field(default_factory=dict)  # overrides of the request
    edit: bool = False


KINDS = [
    Kind("generate", 215, "images"),
    Kind("edit", 38, "images", edit=True),
    Kind(
        "401 bad key",
        3,
        "error",
        "fal rejected the API key",
        Fault.http_error("submit", 401, "No user found for Key ID and Secret"),
    ),
    Kind(
        "422 detail list",
        3,
        "error",
        "fal refused the request: prompt:",
        Fault.http_error(
            "result", 422, [{"loc": ["body", "prompt"], "msg": "Too vague", "type": "value"}]
        ),
    ),
    Kind("content policy", 3, "error", "content policy", Fault.content_policy()),
    Kind("500", 3, "error", "fal had an internal error", Fault.http_error("submit", 500, "boom")),
    Kind(
        "503 error type",
        3,
        "error",
        "unavailable right now",
        Fault.http_error("status", 503, "No runner", "runner_scheduling_failure"),
    ),
    Kind(
        "504 error type",
        3,
        "error",
        "took too long",
        Fault.http_error("result", 504, "Request timed out", "request_timeout"),
    ),
    Kind(
        "completes with error",
        3,
        "error",
        "fal could not finish the request",
        Fault.complete_with_error("CUDA out of memory"),
    ),
    Kind("malformed answer", 3, "error", "could not be read", Fault.malformed_result()),
    Kind("no images", 3, "error", "sent no images", Fault.no_images()),
    Kind(
        "broken image url",
        3,
        "partial",
        "download failed (HTTP 404)",
        Fault.broken_image_urls([1]),
        values={"num_images": 2},
    ),
    Kind(
        "passing 429 (retried)",
        3,
        "images",
        fault=Fault.http_error("submit", 429, "Rate limit exceeded"),
        times=2,
    ),
    Kind(
        "passing drop (retried)",
        3,
        "images",
        fault=Fault.drop_connection("status", hits=2),
    ),
    Kind(
        "passing truncation (retried)",
        3,
        "images",
        fault=Fault.truncated_result(hits=1),
    ),
    Kind(
        "never finishes",
        2,
        "error",
        f"took longer than {REQUEST_TIMEOUT_S} seconds and was cancelled at fal",
        Fault.never_finish(),
    ),
    Kind(
        "lasting 429",
        2,
        "error",
        "rate-limiting this key",
        Fault.http_error("submit", 429, "Rate limit exceeded"),
        times=10,
    ),
    Kind("empty prompt", 3, "error", "The prompt is empty", values={"prompt": "  "}),
    Kind(
        "transparent jpeg",
        3,
        "error",
        "transparent background needs png or webp",
        values={"background": "transparent", "output_format": "jpeg"},
    ),
]


@dataclass
class Outcome:
    kind: str
    expected: bool
    seconds: float
    detail: str


@dataclass
class Tally:
    outcomes: list[Outcome] = field(default_factory=list)
    skipped: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, outcome: Outcome) -> int:
        """Record one outcome; how many there are now."""
        with self.lock:
            self.outcomes.append(outcome)
            return len(self.outcomes)


def plan(count: int, seed: int) -> list[Kind]:
    """Every fault kind its share of `count` requests (at least once), the rest plain
    generates and edits, in a shuffled order (the same for the same seed)."""
    faults = [k for k in KINDS if k.fault is not None or k.values]
    kinds = [k for k in faults for _ in range(max(1, round(k.per_300 * count / 300)))]
    plain = [k for k in KINDS if k not in faults]
    rng = random.Random(seed)
    share = sum(k.per_300 for k in plain)
    kinds += rng.choices(plain, weights=[k.per_300 / share for k in plain], k=count - len(kinds))
    rng.shuffle(kinds)
    return kinds[:count]


def one_request(client: Client, fake: FakeFal, number: int, kind: Kind, photo: str) -> Outcome:
    prompt = f"soak request {number}: a lighthouse at dusk"
    values: dict[str, Any] = {"prompt": prompt, "quality": "low", **kind.values}
    if kind.fault is not None:
        fake.inject(kind.fault, times=kind.times, prompt=values["prompt"])
    started = time.monotonic()
    try:
        if kind.edit:
            gallery, _, status = client.predict(
                images=[handle_file(photo)], **values, api_name="/edit"
            )
        else:
            gallery, _, status = client.predict(**values, api_name="/generate")
    except Exception as exc:  # the visitor's error: its sentence is the outcome
        message = str(exc)
        ok = kind.expect == "error" and kind.phrase in message
        return Outcome(kind.name, ok, time.monotonic() - started, f"error: {message[:160]}")
    if kind.expect == "images":
        ok = status.startswith("✅") and len(gallery) == values.get("num_images", 1)
    else:
        ok = kind.expect == "partial" and status.startswith("⚠️") and kind.phrase in status
    return Outcome(kind.name, ok, time.monotonic() - started, f"status: {status[:160]}")


def visitor(
    server: Server,
    n: int,
    queue: list[tuple[int, Kind]],
    queue_lock: threading.Lock,
    fake: FakeFal,
    photo: str,
    tally: Tally,
    stop_at: float,
    served: Callable[[int], None],
) -> None:
    client = Client(server.url, verbose=False, headers={"X-Forwarded-For": f"198.51.100.{n}"})
    while True:
        with queue_lock:
            if not queue:
                return
            if time.monotonic() > stop_at:
                tally.skipped += len(queue)
                queue.clear()
                return
            number, kind = queue.pop(0)
        served(tally.add(one_request(client, fake, number, kind, photo)))


def rss_mb(process: psutil.Process) -> float:
    total = process.memory_info().rss
    for child in process.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):  # a child that just exited
            total += child.memory_info().rss
    return float(total) / 1e6


class PeakSampler(threading.Thread):
    def __init__(self, process: psutil.Process) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.peak = 0.0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.1):
            try:
                self.peak = max(self.peak, rss_mb(self.process))
            except psutil.NoSuchProcess:
                return


def main() -> None:
    parser = benchmark_args(__doc__.splitlines()[0] if __doc__ else "soak")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=300.0)
    parser.add_argument("--seed", type=int, default=20)
    args = parser.parse_args()
    if args.smoke:
        args.requests, args.clients, args.max_seconds = 40, 4, 90.0

    tmp = workdir("soak")
    photo = tmp / "photo.png"
    Image.new("RGB", (640, 480), (70, 110, 160)).save(photo)
    fake = FakeFal(latency=0.4, queue_time=0.2, workdir=tmp / "fakefal").start()
    # The fake drops and truncates connections on purpose; uvicorn would say so each
    # time (set after start(): uvicorn sets this logger's level when it starts).
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    try:
        server = launch(
            args.app,
            tmp,
            fake.env(),
            name="app",
            extra_env={"STUDIO_REQUEST_TIMEOUT": str(REQUEST_TIMEOUT_S)},
        )
        with running(server):
            soak(server, fake, args, str(photo))
    finally:
        fake.stop()


def soak(server: Server, fake: FakeFal, args: Any, photo: str) -> None:
    app = psutil.Process(server.process.pid)
    at_start = rss_mb(app)
    readings: dict[str, float] = {}
    sampler = PeakSampler(app)
    sampler.start()
    queue = list(enumerate(plan(args.requests, args.seed), 1))
    planned = Counter(kind.name for _, kind in queue)
    tally = Tally()
    lock = threading.Lock()
    started = time.monotonic()

    def served(count: int) -> None:
        if count == WARM_UP or count % 50 == 0:
            readings[str(count)] = rss_mb(app)

    with ThreadPoolExecutor(args.clients) as pool:
        for n in range(1, args.clients + 1):
            pool.submit(
                visitor,
                server,
                n,
                queue,
                lock,
                fake,
                photo,
                tally,
                started + args.max_seconds,
                served,
            )
    elapsed = time.monotonic() - started
    # The app keeps serving after all that.
    final_ok = one_request(Client(server.url, verbose=False), fake, 0, KINDS[0], photo).expected
    time.sleep(1.0)  # let the last cancels and downloads settle before the last reading
    at_end = rss_mb(app)
    sampler.done.set()
    log = server.log_text()
    print_report(tally, planned, elapsed, at_start, readings, at_end, sampler.peak, log, final_ok)


def print_report(
    tally: Tally,
    planned: Counter[str],
    elapsed: float,
    at_start: float,
    readings: dict[str, float],
    at_end: float,
    peak: float,
    log: str,
    final_ok: bool,
) -> None:
    outcomes = tally.outcomes
    served = len(outcomes)
    unexpected = [o for o in outcomes if not o.expected]
    by_kind: dict[str, list[Outcome]] = {}
    for outcome in outcomes:
        by_kind.setdefault(outcome.kind, []).append(outcome)
    print(f"\nSoak: {served} requests served in {elapsed:.0f} s ({tally.skipped} skipped)")
    print(f"{'kind':<30} {'planned':>7} {'expected':>8} {'unexpected':>10} {'median s':>8}")
    for kind in KINDS:
        runs = by_kind.get(kind.name, [])
        good = sum(o.expected for o in runs)
        times = sorted(o.seconds for o in runs)
        middle = f"{times[len(times) // 2]:.1f}" if times else "-"
        print(
            f"{kind.name:<30} {planned[kind.name]:>7} {good:>8} {len(runs) - good:>10} {middle:>8}"
        )
    for outcome in unexpected[:20]:
        print(f"UNEXPECTED {outcome.kind}: {outcome.detail}")
    warm = readings.get(str(WARM_UP), at_start)
    growth = at_end - warm
    trend = ", ".join(f"{count}: {mb:.0f}" for count, mb in readings.items())
    tracebacks = log.count("Traceback")
    key_in_log = HOST_KEY in log or HOST_KEY.split(":")[1] in log
    print(
        f"app RSS: start {at_start:.0f} MB, after {WARM_UP} requests {warm:.0f} MB, "
        f"end {at_end:.0f} MB, peak {peak:.0f} MB (growth after warm-up {growth:+.0f} MB)"
    )
    print(f"app RSS (MB) after n requests: {trend}")
    print(f"tracebacks in the app's log: {tracebacks}; key in the log: {key_in_log}")
    print(f"a request after the soak: {'served' if final_ok else 'FAILED'}")
    faults = served - len(by_kind.get("generate", [])) - len(by_kind.get("edit", []))
    report(
        Row(
            "Soak: what went wrong",
            {
                "unexpected outcomes": len(unexpected),
                "tracebacks": tracebacks,
                "key in the log": int(key_in_log),
                "next request failed": int(not final_ok),
            },
            digits=0,
            limit=0,
            detail=f"{served} requests, {faults} with faults or bad input",
        )
    )
    report(
        Row(
            "Soak: app RSS growth after warm-up",
            {"": growth},
            unit=" MB",
            digits=0,
            limit=TARGET_GROWTH_MB,
            detail=(
                f"{at_start:.0f} MB at start, {warm:.0f} MB after warm-up, {at_end:.0f} MB "
                f"at the end (peak {peak:.0f} MB)"
            ),
        )
    )


if __name__ == "__main__":
    main()
