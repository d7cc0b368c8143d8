"""Against the real fal.ai: opt in with `FAL_KEY=... pytest -m live --live` (costs ~1 cent)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import FAKE_ENV_NAMES, LIVE_FAL_KEY, ROOT, free_port

pytestmark = pytest.mark.live


@pytest.fixture
def live_key(request: pytest.FixtureRequest) -> str:
    if not request.config.getoption("--live"):
        pytest.skip("live test: run with --live and FAL_KEY set (it spends real money)")
    if not LIVE_FAL_KEY:
        pytest.skip("live test: FAL_KEY is not set")
    return LIVE_FAL_KEY


def test_generate_one_low_quality_image_on_real_fal(live_key: str, tmp_path: Path):
    from gradio_client import Client

    port = free_port()
    # The real hosts: none of the fake's addresses or its CA.
    env = {k: v for k, v in os.environ.items() if k not in FAKE_ENV_NAMES}
    env.update(FAL_KEY=live_key, GRADIO_SERVER_PORT=str(port), STUDIO_RESULTS_DIR=str(tmp_path))
    app = subprocess.Popen([sys.executable, str(ROOT / "app.py")], cwd=tmp_path, env=env)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(120):
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        images, record, _ = Client(url, verbose=False).predict(
            prompt="a single red apple on a white table, studio photo",
            quality="low",
            output_format="jpeg",
            api_name="/generate",
        )
        assert len(images) == 1
        with Image.open(images[0]["image"]) as image:
            assert image.format == "JPEG"
            assert image.size == (1024, 1024)
        assert record["request_id"]
    finally:
        app.terminate()
        app.wait(timeout=10)
