"""The README's program examples, taken from README.md and run as they are written:
the Python one with `gradio_client`, the JavaScript one with `@gradio/client` under
node. Only the server's address changes (to the test app's). A README edit that
breaks them fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
from PIL import Image

from tests.conftest import ROOT, RunningApp
from tests.fakefal import FakeFal
from tests.test_js_client import JS, node_script

README = ROOT / "README.md"
README_URL = "http://127.0.0.1:7860/"
SECTION = "## Call it from a program"


def examples(language: str) -> list[str]:
    """The fenced `language` blocks of the README's section on programs."""
    text = README.read_text()
    start = text.index(SECTION)
    end = text.index("\n## ", start + len(SECTION))
    blocks = re.findall(rf"```{language}\n(.*?)```", text[start:end], flags=re.S)
    assert blocks, f"no {language} example under {SECTION!r}"
    return blocks


def files_the_examples_open(folder: Path) -> None:
    """photo.png, kite-style.jpg and mask.png, as a reader would have them."""
    Image.new("RGB", (600, 400), (30, 90, 160)).save(folder / "photo.png")
    Image.new("RGB", (320, 320), (200, 40, 40)).save(folder / "kite-style.jpg")
    mask = np.zeros((400, 600, 4), np.uint8)
    mask[..., 3] = 255
    mask[50:150, 400:550] = (255, 255, 255, 0)  # the sky, top right: transparent = edit
    Image.fromarray(mask, "RGBA").save(folder / "mask.png")


def _result_urls(fake: FakeFal, index: int) -> list[str]:
    result = fake.submissions[index].result
    assert result is not None
    return [image["url"] for image in result["images"]]


def test_the_python_example_generates_then_edits_as_it_says(
    app_server: RunningApp, fake: FakeFal, tmp_path: Path
) -> None:
    code = examples("python")[0]
    files_the_examples_open(tmp_path)

    done = run_python(code, app_server, tmp_path)

    assert done.returncode == 0, done.stderr
    generated, chained, edited = fake.submissions
    assert generated.arguments == {
        "prompt": "a lighthouse at dusk, watercolor",
        "image_size": "1536x1024",
        "background": "auto",
        "quality": "medium",
        "num_images": 2,
        "output_format": "webp",
        "sync_mode": False,
    }
    assert chained.arguments["image_urls"] == _result_urls(fake, 0)[:1]
    assert chained.arguments["quality"] == "low"
    assert edited.schema_errors == []
    shapes = [(d.role, d.width, d.height) for d in edited.decoded_inputs]
    assert shapes == [("image", 600, 400), ("image", 320, 320), ("mask", 600, 400)]
    assert (edited.arguments["image_size"], edited.arguments["input_fidelity"]) == ("auto", "high")
    # It printed each request id, as it says.
    for submission in fake.submissions:
        assert submission.request_id in done.stdout


def test_the_python_batch_example_sends_one_request_per_line(
    app_server: RunningApp, fake: FakeFal, tmp_path: Path
) -> None:
    [code] = [block for block in examples("python") if "/batch" in block]

    done = run_python(code, app_server, tmp_path)

    assert done.returncode == 0, done.stderr
    prompts = sorted(s.arguments["prompt"] for s in fake.submissions)
    assert prompts == ["a blue heron", "a green frog", "a red fox"]
    assert {s.arguments["quality"] for s in fake.submissions} == {"low"}
    # It printed each prompt's record, as it says.
    for submission in fake.submissions:
        assert submission.request_id in done.stdout


def run_python(code: str, app: RunningApp, folder: Path) -> subprocess.CompletedProcess[str]:
    """A README block run as a reader would, pointed at the app under test."""
    assert README_URL in code
    return subprocess.run(
        [sys.executable, "-c", code.replace(README_URL, app.url)],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_javascript_example_generates_then_edits_as_it_says(
    app_server: RunningApp, fake: FakeFal, tmp_path: Path
) -> None:
    [code] = examples("js")
    assert README_URL in code
    files_the_examples_open(tmp_path)
    # Beside tests/js/node_modules, where node finds @gradio/client; the photo is
    # read from the working directory, as the example says.
    script = JS / f".readme-example-{uuid.uuid4().hex}.mjs"
    script.write_text(code.replace(README_URL, app_server.url))
    try:
        output = node_script(script, cwd=tmp_path)
    finally:
        script.unlink()

    generated, chained, edited = fake.submissions
    assert generated.arguments == {
        "prompt": "a lighthouse at dusk, watercolor",
        "image_size": "1024x1536",
        "background": "auto",
        "quality": "low",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
    }
    assert chained.arguments["image_urls"] == _result_urls(fake, 0)
    assert edited.schema_errors == []
    assert [(d.width, d.height) for d in edited.decoded_inputs] == [(600, 400)]
    assert edited.arguments["input_fidelity"] == "low"
    for submission in fake.submissions:
        assert submission.request_id in output
