"""Copy as code: a run's request as Python, JavaScript and cURL.

The Python snippet of a run made through the real server is executed, with the real
fal_client, against the fake fal service: fal must receive the same body as the run
it was copied from. The key appears in no snippet; local files are never pasted.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from gradio_client import Client, handle_file
from PIL import Image

from backend.snippets import request_as_code
from tests.conftest import FAKE, HOST_KEY, ROOT
from tests.fakefal import FakeFal

SNIPPET_KEY = "snippet0-0000-4000-8000-0000000c0de0:c0dec0dec0dec0dec0dec0dec0dec0de"


def run_python(snippet: str, folder: Path) -> str:
    """The snippet as a reader would run it: their FAL_KEY in the environment."""
    env = {**os.environ, **FAKE.env(), "FAL_KEY": SNIPPET_KEY, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-c", snippet],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def no_secrets(record: dict[str, Any]) -> None:
    snippets = request_as_code(record)
    for text in (snippets.python, snippets.javascript, snippets.curl):
        assert HOST_KEY not in text and HOST_KEY.split(":")[1] not in text
    assert "$FAL_KEY" in snippets.curl
    assert "process.env.FAL_KEY" in snippets.javascript


def test_the_python_snippet_of_a_generation_sends_the_same_body(
    api: Client, fake: FakeFal, tmp_path: Path
) -> None:
    _, record, _ = api.predict(
        prompt='a "quoted" lighthouse\nat dusk, 35mm',
        image_size="1024x1536",
        background="transparent",
        quality="low",
        num_images=3,
        output_format="webp",
        sync_mode=False,
        api_name="/generate",
    )
    [original] = fake.submissions

    output = run_python(request_as_code(record).python, tmp_path)

    copied = fake.submissions[1]
    assert copied.arguments == original.arguments
    assert copied.endpoint == original.endpoint == "fal-ai/gpt-image-1.5"
    assert copied.authorization == f"Key {SNIPPET_KEY}"
    assert original.authorization == f"Key {HOST_KEY}"
    # It prints the images' URLs, as it says.
    assert copied.result is not None
    assert [image["url"] for image in copied.result["images"]] == ast.literal_eval(output)
    no_secrets(record)


def test_the_python_snippet_of_an_edit_by_url_sends_the_same_body(
    api: Client, fake: FakeFal, tmp_path: Path
) -> None:
    _, made, _ = api.predict(prompt="a red kite", quality="low", api_name="/generate")
    url = made["images"][0]["url"]
    _, record, _ = api.predict(
        prompt="make the kite blue",
        image_urls=[url],
        input_fidelity="low",
        quality="medium",
        output_format="jpeg",
        api_name="/edit",
    )
    original = fake.submissions[1]
    assert record["local_inputs"] == []

    run_python(request_as_code(record).python, tmp_path)

    copied = fake.submissions[2]
    assert copied.endpoint == "fal-ai/gpt-image-1.5/edit"
    assert copied.arguments == original.arguments
    assert copied.arguments["image_urls"] == [url]
    no_secrets(record)


def test_local_files_are_uploaded_by_the_code_never_pasted(
    api: Client, fake: FakeFal, tmp_path: Path
) -> None:
    photo = tmp_path / "photo.png"
    Image.new("RGB", (300, 200), (20, 120, 220)).save(photo)
    mask = Image.new("RGBA", (300, 200), (0, 0, 0, 255))
    mask.paste((0, 0, 0, 0), (0, 0, 100, 100))
    mask.save(tmp_path / "mask.png")
    _, made, _ = api.predict(prompt="a style", quality="low", api_name="/generate")
    style = made["images"][0]["url"]
    _, record, _ = api.predict(
        prompt="a sunset",
        images=[handle_file(str(photo))],
        image_urls=[style],
        mask=handle_file(str(tmp_path / "mask.png")),
        quality="low",
        api_name="/edit",
    )
    sent = fake.submissions[1]
    inline = sent.arguments["image_urls"][0]
    assert inline.startswith("data:")  # small files go inline
    assert record["local_inputs"] == ["image_urls[0]", "mask_image_url"]

    snippets = request_as_code(record)

    for text in (snippets.python, snippets.javascript, snippets.curl):
        assert "data:" not in text and "base64" not in text
        assert "image_urls[0] was a file on your machine" in text
        assert "mask_image_url was a file on your machine" in text
        assert style in text  # the caller's own URL, kept as sent
    assert 'image_1 = fal_client.upload_file("image-1.png")' in snippets.python
    assert 'mask = fal_client.upload_file("mask.png")' in snippets.python
    assert '"image_urls": [\n            image_1,' in snippets.python
    assert "await fal.storage.upload(" in snippets.javascript
    assert "<https URL of image-1.png>" in snippets.curl
    no_secrets(record)
