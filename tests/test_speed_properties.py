"""Properties that make speed possible (timings themselves live in benchmarks/).

No test here asserts a duration: only that work which can overlap does.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.fakefal import FakeFal

VISITORS = 6


def test_simultaneous_generate_calls_overlap_at_fal(app_server: Any, fake: FakeFal) -> None:
    """Six visitors at once are six requests running at fal at once, not a queue."""
    from gradio_client import Client

    clients = [
        Client(
            app_server.url,
            verbose=False,
            headers={"X-Forwarded-For": f"198.51.100.{index + 1}"},
            download_files=False,
            ssl_verify=False,
        )
        for index in range(VISITORS)
    ]
    # Held at fal until all run together, then released together: no window of time.
    fake.gate(VISITORS)
    release = threading.Barrier(VISITORS)
    failures: list[str] = []

    def call(client: Any) -> None:
        try:
            release.wait(timeout=30)
            client.predict(
                prompt="a lighthouse, all at once",
                image_size="1024x1024",
                background="auto",
                quality="low",
                num_images=1,
                output_format="png",
                sync_mode=False,
                fal_key="",
                api_name="/generate",
            )
        except Exception as exc:
            failures.append(repr(exc))

    threads = [threading.Thread(target=call, args=(client,)) for client in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    assert len(fake.submissions) == VISITORS
    assert fake.max_in_flight == VISITORS
