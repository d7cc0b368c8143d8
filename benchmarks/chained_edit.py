"""An edit chained on a fal URL: what goes up to fal, against the same edit from the file.

A photo-like 1536x1024 PNG (~2.9 MB, like fal's) is generated at the fake fal
service through `/generate`; then `/edit` is called twice, alternating, with the
same prompt and parameters:

- chained: `image_urls=[the result's fal URL]` (as Send to edit does in the page);
- from the file: `images=[the same PNG]`, as a program holding the file sends it.

Figures, from the fake's records: bytes uploaded to fal's storage, and bytes in the
request body sent to fal's queue (the submit), per edit. Target: chained, 0 bytes
uploaded. The wall time of each call is printed beside it.

    python -m benchmarks.chained_edit [--smoke]
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    APP,
    Row,
    benchmark_args,
    launch,
    median,
    ms,
    photo_png,
    report,
    running,
    workdir,
)

EDIT = {
    "prompt": "the same harbour at night",
    "image_size": "auto",
    "background": "auto",
    "quality": "low",
    "input_fidelity": "high",
    "num_images": 1,
    "output_format": "png",
    "sync_mode": False,
    "fal_key": "",
}


def main(smoke: bool, app_path: Path = APP) -> None:
    rounds = 1 if smoke else 3
    from gradio_client import Client, handle_file

    from tests.fakefal import images as fake_images
    from tests.fakefal import shared_fake

    fake = shared_fake(latency=0.3)
    photo = photo_png(1536, 1024, seed=7)
    flat_render = fake_images.render
    fake_images.render = lambda spec: (
        photo if spec.prompt.startswith("photo") else flat_render(spec)
    )  # type: ignore[assignment]
    tmp = workdir("chained-edit")
    local = tmp / "photo.png"
    local.write_bytes(photo)
    sent: dict[str, list[tuple[int, int, float]]] = {"chained": [], "file": []}
    with running(launch(app_path, tmp, fake.env(), name="app")) as app:
        client = Client(app.url, verbose=False, download_files=str(tmp / "downloads"))
        _, record, _ = client.predict(
            prompt="photo of a harbour", image_size="1536x1024", api_name="/generate"
        )
        [url] = [image["url"] for image in record["images"]]
        for index in range(2 * rounds):
            kind = "chained" if index % 2 == 0 else "file"
            # Not reset(): that would forget the result's file at fal.
            uploads_before, log_before = len(fake.uploads), len(fake.http_log)
            inputs: dict[str, Any] = (
                {"image_urls": [url]}
                if kind == "chained"
                else {"images": [handle_file(str(local))]}
            )
            started = time.perf_counter()
            client.predict(**EDIT, **inputs, api_name="/edit")
            wall = time.perf_counter() - started
            uploaded = sum(len(upload.data) for upload in fake.uploads[uploads_before:])
            new = fake.http_log[log_before:]
            [submit] = [r for r in new if r.role == "queue" and r.method == "POST"]
            sent[kind].append((uploaded, submit.body_length, wall))
    fake_images.render = flat_render

    print(f"chained edit: /edit of a {len(photo) / 1e6:.2f} MB 1536x1024 PNG, {rounds} of each")
    for kind, rows in sent.items():
        print(
            f"  {kind:<8} uploaded {median([r[0] for r in rows]):,.0f} bytes, "
            f"submit body {median([r[1] for r in rows]):,.0f} bytes, "
            f"wall {ms(median([r[2] for r in rows]))}"
        )
    chained_up = max(r[0] for r in sent["chained"])
    report(
        Row(
            "9. An edit chained on a fal URL: bytes uploaded",
            {"": chained_up},
            unit=" B",
            digits=0,
            limit=0,
            floors={"the same edit from the file": median([r[0] for r in sent["file"]])},
            detail=(
                f"submit body {median([r[1] for r in sent['chained']]):,.0f} B chained, "
                f"{median([r[1] for r in sent['file']]):,.0f} B from the file"
            ),
        )
    )


if __name__ == "__main__":
    args = benchmark_args(__doc__.splitlines()[0]).parse_args()
    main(args.smoke, args.app)
