"""Results in one hop: the page's gallery holds fal's URLs for hosted results (the
browser fetches them from fal), the app's own files for sync_mode; the app still
keeps a copy of each (the real run service, ImageClient and fal_client against
the fake)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from backend import ImageClient, Settings
from backend.demo import DemoClient
from backend.endpoints import ENDPOINTS
from backend.fal import point_uploads_at
from backend.runs import Caller
from backend.service import RunService
from tests.fakefal import FakeFal
from ui.runs import run_outputs

KEY = "dddddddd-0000-4000-8000-00000000000d:dddddddddddddddddddddddddddddddd"


@pytest.fixture
async def service(tmp_path: Path, fake: FakeFal):
    settings = Settings(
        fal_key=KEY,
        results_dir=tmp_path / "results",
        outputs_dir=None,
        poll_interval_s=0.05,
        fal_cdn_url=fake.cdn_url,
    )
    fal = ImageClient(settings)
    yield RunService(settings, fal=fal, demo=DemoClient(settings, delay_s=0))
    await fal.aclose()


def is_our_file(path: str, folder: Path) -> bool:
    return Path(path).is_file() and Path(path).is_relative_to(folder)


def read(path: str) -> bytes:
    return Path(path).read_bytes()


async def page_outputs(service: RunService, **values) -> list[tuple[Any, Any, str]]:
    endpoint = ENDPOINTS.text_to_image

    async def build():
        return service.request(endpoint, {"prompt": "a quiet harbour", **values})

    caller = Caller("127.0.0.1", session="s", browser_id="b", fal_key="")
    return [
        outputs async for outputs in run_outputs(service, endpoint, build, caller, in_page=True)
    ]


async def test_hosted_results_are_shown_from_fal_first_and_last(service, fake):
    fake.latency = 0.3
    outputs = await page_outputs(service, num_images=2)
    [sub] = fake.submissions
    urls = [image["url"] for image in sub.result["images"]]
    shown = [gallery for gallery, _, _ in outputs if gallery]
    # Shown as soon as fal's answer is in (before the app's copies), then at the end.
    first, final = shown[0], shown[-1]
    assert len(shown) == 2
    assert [item[0] for item in first] == urls
    assert first[0][1] == "1024×1024 PNG"
    early = next(i for i, (g, _, _) in enumerate(outputs) if g)
    assert outputs[early][1] is None, "no record until the run is complete"
    # The page shows them already: what the app does meanwhile is keep its copies.
    assert outputs[early][2].startswith("💾 Saving copies of 2 images")
    assert [item[0] for item in final] == urls
    record = outputs[-1][1]
    assert [image["url"] for image in record["images"]] == urls
    # The app kept its own copies, byte for byte (for history, saved outputs, edits).
    [entry] = await service.history.entries("b")
    assert tuple(file.fal_url for file in entry.files) == tuple(urls)
    for file, url in zip(entry.files, urls, strict=True):
        assert file.download is not None and read(file.download) == fake.download(url)


async def test_sync_mode_results_are_the_apps_own_files(service, fake):
    outputs = await page_outputs(service, sync_mode=True)
    shown = [gallery for gallery, _, _ in outputs if gallery]
    assert len(shown) == 1, "nothing to show from fal before the app has it"
    assert not any("Saving copies" in status for _, _, status in outputs)
    [(path, caption)] = shown[0]
    assert is_our_file(path, service.settings.results_dir)
    assert caption.startswith("1024×1024 PNG")
    assert outputs[-1][1]["images"][0]["url"] is None


async def test_a_result_not_on_fals_media_hosts_is_shown_from_the_apps_copy(tmp_path, fake):
    # The app pointed at another CDN: the fake's URLs are then not fal's media hosts.
    settings = Settings(
        fal_key=KEY,
        results_dir=tmp_path / "results",
        poll_interval_s=0.05,
        fal_cdn_url="https://cdn.example",
    )
    fal = ImageClient(settings)
    service = RunService(settings, fal=fal, demo=DemoClient(settings, delay_s=0))
    try:
        outputs = await page_outputs(service)
    finally:
        await fal.aclose()
        # ImageClient pointed fal_client's (process-wide) uploads at that CDN: undo it.
        point_uploads_at(fake.rest_url, fake.cdn_url)
    shown = [gallery for gallery, _, _ in outputs if gallery]
    assert len(shown) == 1
    [(path, _)] = shown[0]
    assert is_our_file(path, settings.results_dir), "only our files or fal's media hosts"


async def test_the_api_gets_a_status_line_when_something_changes(service, fake):
    # Each line is a round trip through Gradio's queue: a program is told each new
    # state, place in the queue or log line, not every tick of the clock (these
    # states last less than the API's slow refresh of the elapsed time).
    fake.queue_time = 0.3
    fake.latency = 0.8
    endpoint = ENDPOINTS.text_to_image

    async def build():
        return service.request(endpoint, {"prompt": "a quiet harbour"})

    caller = Caller("127.0.0.1", fal_key="")
    outputs = [o async for o in run_outputs(service, endpoint, build, caller, in_page=False)]
    lines = [status for gallery, _, status in outputs[:-1]]
    assert any("queue" in line for line in lines) and any("Generating" in line for line in lines)
    without_time = [re.sub(r" · \d+\.\d s", "", line) for line in lines]
    repeated = [a for a, b in itertools.pairwise(without_time) if a == b]
    assert not repeated, lines
    assert outputs[-1][2].startswith("✅")
