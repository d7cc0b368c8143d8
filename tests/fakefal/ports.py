"""Ports and process-wide setup, for code that must set env before fal_client loads.

fal_client reads FAL_RUN_HOST / FAL_QUEUE_RUN_HOST once, when it is imported, and
builds `https://{host}/...` URLs from them forever after. So the fake's ports must
be known, and in os.environ, before the first `import fal_client` in the process.

Typical conftest.py (at the very top, before anything imports fal_client):

    from tests.fakefal import shared_fake
    FAKE = shared_fake()          # binds, exports env, starts; one per process
    import fal_client             # now points at the fake

and `backend.fal.point_uploads_at(FAKE.rest_url, FAKE.cdn_url)` for uploads (the
app's one place that sets fal_client's upload hosts), and a fixture that calls
`FAKE.reset()`.
"""

from __future__ import annotations

import atexit
import os
import socket
import sys
import threading
from typing import Any
from urllib.parse import urlsplit

from .server import FakeFal, _bind, running_fake

_shared: FakeFal | None = None
_shared_lock = threading.Lock()


def reserve_ports() -> tuple[socket.socket, socket.socket]:
    """Two listening sockets on free loopback ports: (queue, main).

    Hand them to `FakeFal(sockets=...)`; holding bound sockets (rather than port
    numbers) means no other process can take the ports in between.
    """
    queue_sock = _bind(0)
    try:
        main_sock = _bind(0)
    except OSError:
        queue_sock.close()
        raise
    return queue_sock, main_sock


def fal_client_ports() -> tuple[int, int] | None:
    """(queue port, main port) that an already imported fal_client is stuck with.

    None if fal_client is not imported yet. Raises if it was imported pointing at
    hosts a local fake cannot serve (the real fal.run, or both roles on one port).
    """
    module = sys.modules.get("fal_client.client")
    if module is None:
        return None
    queue = urlsplit(module.QUEUE_URL_FORMAT)
    run = urlsplit(module.RUN_URL_FORMAT)
    loopback = {"127.0.0.1", "localhost"}
    if (
        queue.hostname not in loopback
        or run.hostname not in loopback
        or queue.port is None
        or run.port is None
        or queue.port == run.port
    ):
        raise RuntimeError(
            "fal_client was imported before the fake's environment was set: it targets "
            f"{module.QUEUE_URL_FORMAT} and {module.RUN_URL_FORMAT}. Call "
            "tests.fakefal.shared_fake() before the first `import fal_client`."
        )
    return queue.port, run.port


def shared_fake(**kwargs: Any) -> FakeFal:
    """The process-wide FakeFal, started, with its env() in os.environ.

    The first call creates it: on fresh ports if fal_client is not imported yet;
    otherwise it adopts a FakeFal already running on the ports fal_client targets,
    or starts one there. Later calls return the same instance (their kwargs are
    ignored). A fake this function started is stopped at interpreter exit.
    Raises RuntimeError if fal_client was imported pointing elsewhere, and OSError
    if those ports are taken by something that is not a FakeFal.
    """
    global _shared
    with _shared_lock:
        if _shared is None:
            ports = fal_client_ports()
            adopted = running_fake(*ports) if ports is not None else None
            if adopted is not None:
                fake = adopted
            else:
                if ports is None:
                    fake = FakeFal(sockets=reserve_ports(), **kwargs)
                else:
                    fake = FakeFal(queue_port=ports[0], main_port=ports[1], **kwargs)
                atexit.register(fake.close)
            os.environ.update(fake.env())
            if not fake.running:
                fake.start()
            _shared = fake
        elif not _shared.running:
            _shared.start()
        return _shared
