"""The official JavaScript client (`@gradio/client` from npm, run by node) against the
real server and the fake fal service.

`tests/js/calls.mjs` makes the calls the way the client's README shows them: `/generate`
with every parameter, `/edit` with a `Blob` made from a PNG (a Blob has no file name),
and `/edit` with a nameless Blob that is not an image. `.ci/run` installs the client
(`npm ci` in tests/js).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.conftest import ROOT, RunningApp
from tests.fakefal import FakeFal

JS = ROOT / "tests" / "js"


def node_script(script: Path, *args: str, cwd: Path = JS, timeout: float = 120) -> str:
    """Run `script` (kept in tests/js, beside its node_modules) with node; its stdout."""
    node = shutil.which("node")
    if node is None or not (JS / "node_modules" / "@gradio" / "client").is_dir():
        pytest.fail("node and @gradio/client are needed: `npm ci` in tests/js (see .ci/run)")
    done = subprocess.run(
        [node, str(script), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"node failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_generate_and_edit_with_a_blob_from_javascript(
    app_server: RunningApp, fake: FakeFal, tmp_path: Path
) -> None:
    png = tmp_path / "boat.png"
    Image.new("RGB", (300, 200), (10, 100, 200)).save(png)

    lines = node_script(JS / "calls.mjs", app_server.url, str(png)).splitlines()
    generated, edited, refused = (json.loads(line) for line in lines)

    # /generate: every parameter, none at its default, reached fal as sent.
    assert "error" not in generated, generated
    t2i, edit = fake.submissions
    assert t2i.endpoint == "fal-ai/gpt-image-1.5"
    assert t2i.schema_errors == []
    assert t2i.arguments == {
        "prompt": "a paper boat on a puddle, from javascript",
        "image_size": "1024x1536",
        "background": "opaque",
        "quality": "medium",
        "num_images": 2,
        "output_format": "jpeg",
        "sync_mode": True,
    }
    gallery: list[dict[str, Any]] = generated["data"][0]
    assert [item["image"]["mime_type"] for item in gallery] == ["image/jpeg"] * 2

    # /edit with a nameless Blob: taken for its bytes, and those bytes reached fal.
    assert "error" not in edited, edited
    assert edit.endpoint == "fal-ai/gpt-image-1.5/edit"
    assert edit.schema_errors == []
    sent = {k: v for k, v in edit.arguments.items() if k != "image_urls"}
    assert sent == {
        "prompt": "give the boat a red sail",
        "image_size": "auto",
        "background": "auto",
        "quality": "low",
        "input_fidelity": "high",
        "num_images": 1,
        "output_format": "webp",
        "sync_mode": False,
    }
    [decoded] = edit.decoded_inputs
    assert (decoded.format, decoded.width, decoded.height) == ("PNG", 300, 200)
    assert decoded.to_pil().convert("RGB").getpixel((150, 100)) == (10, 100, 200)
    assert edited["data"][0][0]["image"]["mime_type"] == "image/webp"

    # A nameless Blob that is not an image: the app's sentence, and nothing sent.
    assert refused == {
        "call": "/edit",
        "error": "The image 'blob' is not an image that can be read; use a PNG, JPEG or WebP file.",
    }
    assert len(fake.submissions) == 2
