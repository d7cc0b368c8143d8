"""Runs exported as a zip: their images, and a JSON of their parameters.

The zip holds each run's kept images (a PNG with its record inside, a JPEG or
WebP with its `.json` beside it) and `runs.json`: one record per run, in the
form saved images carry (backend/metadata.py), so *Load parameters* reads it
back (its first run).
"""

from __future__ import annotations

import json
import re
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from backend.history import HistoryEntry
from backend.metadata import APP_NAME, APP_TAG, METADATA_VERSION, sidecar_of_output

MANIFEST = "runs.json"


def export_runs(entries: Sequence[HistoryEntry], folder: Path) -> Path:
    """Write the zip of `entries` into `folder`; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d_%H%M%S")
    path = folder / f"gpt-image-studio-runs-{stamp}-{entries[0].entry_id[:6]}.zip"
    records = []
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        for number, entry in enumerate(entries, start=1):
            names = []
            stem = f"{number:02d}-{_slug(entry.prompt)}"
            for image_number, file in enumerate(entry.files, start=1):
                source = Path(file.path)
                if not source.is_file():
                    continue
                name = f"{stem}-{image_number}{source.suffix}"
                archive.write(source, name)
                sidecar = sidecar_of_output(source)
                if sidecar.is_file():
                    archive.write(sidecar, name + ".json")
                names.append(name)
            records.append(_record(entry, names))
        manifest = {"tag": APP_TAG, "version": METADATA_VERSION, "app": APP_NAME, "runs": records}
        archive.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return path


def _record(entry: HistoryEntry, images: list[str]) -> dict[str, Any]:
    return {
        "endpoint": entry.endpoint,
        "request_id": entry.request_id,
        "created": datetime.fromtimestamp(entry.created, UTC).isoformat(timespec="seconds"),
        "parameters": {"prompt": entry.prompt, **entry.parameters},
        "demo": entry.demo,
        "status": entry.status,
        "estimated_cost_usd": entry.cost_usd,
        "images": images,
        "fal_urls": [file.fal_url for file in entry.files if file.fal_url],
    }


def _slug(prompt: str) -> str:
    words = re.findall(r"\w+", prompt.lower())[:6]
    return "-".join(words)[:40].strip("-_") or "run"
