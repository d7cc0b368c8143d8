"""Run the fake on its own: `python -m tests.fakefal [--latency S] [--latency-sweep S]
[--sweep-group N]
[--queue-time S] [--queue-port N] [--main-port N] [--key K ...] [--workdir DIR]`.

Prints one `export KEY=VALUE` line per env() entry, then `ready`, and serves until
SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from .server import FakeFal


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.fakefal", description=__doc__)
    parser.add_argument(
        "--latency",
        type=float,
        default=0.2,
        help="seconds each request spends IN_PROGRESS (default 0.2)",
    )
    parser.add_argument(
        "--queue-time",
        type=float,
        default=0.0,
        help="seconds each request spends IN_QUEUE first (default 0)",
    )
    parser.add_argument(
        "--latency-sweep",
        type=float,
        default=0.0,
        help="add 0, 1/10, ..., 9/10 of this many seconds to requests in turn (default 0)",
    )
    parser.add_argument(
        "--sweep-group",
        type=int,
        default=1,
        help="consecutive requests that get the same sweep step (default 1)",
    )
    parser.add_argument("--queue-port", type=int, default=0, help="0 = any free port")
    parser.add_argument("--main-port", type=int, default=0, help="0 = any free port")
    parser.add_argument(
        "--key",
        action="append",
        dest="keys",
        metavar="KEY",
        help="accept only this fal key (repeatable; default: any key)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="where to write the CA certificate (default: a temp dir)",
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    fake = FakeFal(
        accepted_keys=set(args.keys) if args.keys else None,
        queue_port=args.queue_port,
        main_port=args.main_port,
        workdir=args.workdir,
        latency=args.latency,
        queue_time=args.queue_time,
        latency_sweep=args.latency_sweep,
        sweep_group=args.sweep_group,
    )
    fake.start()
    try:
        for key, value in fake.env().items():
            print(f"export {key}={shlex.quote(value)}")
        print("ready", flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        fake.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
