"""The offline demo: real placeholder files, the real progress events, no network."""

from __future__ import annotations

import asyncio
import base64
import io
import re
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.client import Fetching, Finished, Job, Progress, Queued, Running, Submitted
from backend.demo import DemoClient, DemoImage, render
from backend.edits import draft_edit
from backend.images import prepare_image
from backend.masks import mask_from_layers
from backend.metadata import parameters_for_ui, read_metadata
from backend.schema import EditRequest, TextToImageRequest
from backend.settings import Settings

INPUT_COLOUR = (30, 60, 120)


@pytest.fixture
def client(tmp_path) -> DemoClient:
    return DemoClient(Settings(results_dir=tmp_path / "results"), delay_s=0)


async def events_of(client: DemoClient, job: Job) -> list[Progress]:
    return [event async for event in client.stream(job)]


def decoded(path: str) -> Image.Image:
    with Image.open(path) as image:
        image.load()
        return image


def read(path: str | Path) -> bytes:
    return Path(path).read_bytes()


def input_png(size=(1200, 900)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, INPUT_COLOUR).save(buffer, "PNG")
    return buffer.getvalue()


def corner_mask(size=(1200, 900)):
    """A mask whose edit area is the box x 100..500, y 100..400 of the input."""
    layer = np.zeros((size[1], size[0], 4), dtype=np.uint8)
    layer[100:400, 100:500, 3] = 255
    return mask_from_layers([layer], size)


# --- what it yields -----------------------------------------------------------------


async def test_progress_looks_like_a_real_run(client):
    job = TextToImageRequest.parse(prompt="a red fox in snow", num_images=2)
    events = await events_of(client, job)

    assert isinstance(events[0], Submitted)
    request_id = events[0].request_id
    assert re.fullmatch(r"demo-[0-9a-f]{32}", request_id)
    assert any(isinstance(e, Queued) and e.position == 0 for e in events)
    running = [e for e in events if isinstance(e, Running)]
    assert running and "Demo mode" in running[0].logs[0]
    assert "no request sent to fal" in running[0].logs[0]
    assert any(isinstance(e, Fetching) and e.count == 2 for e in events)
    *steps, last = events
    assert isinstance(last, Finished)
    assert last.result.request_id == request_id
    progress = [e for e in steps if isinstance(e, Submitted | Queued | Running | Fetching)]
    assert progress == steps
    assert all(e.request_id == request_id for e in progress)
    elapsed = [e.elapsed_s for e in progress]
    assert elapsed == sorted(elapsed)


async def test_the_record_says_demo(client):
    result = await client.run(TextToImageRequest.parse(prompt="a lighthouse"))
    record = result.record()
    assert record["key"] == "demo"
    assert record["request_id"].startswith("demo-")
    assert record["metrics"] == {"demo": True}
    assert record["endpoint"] == "fal-ai/gpt-image-1.5"
    assert record["arguments"]["prompt"] == "a lighthouse"
    assert result.timings is not None


@pytest.mark.parametrize(
    ("image_size", "output_format", "background", "mode"),
    [
        ("1024x1024", "png", "auto", "RGB"),
        ("1536x1024", "png", "transparent", "RGBA"),
        ("1024x1536", "webp", "transparent", "RGBA"),
        ("1536x1024", "webp", "opaque", "RGB"),
        ("1024x1536", "jpeg", "opaque", "RGB"),
    ],
)
async def test_images_have_the_requested_size_format_and_transparency(
    client, tmp_path, image_size, output_format, background, mode
):
    job = TextToImageRequest.parse(
        prompt="a paper boat",
        image_size=image_size,
        output_format=output_format,
        background=background,
        num_images=3,
    )
    result = await client.run(job)
    width, height = (int(side) for side in image_size.split("x"))

    assert len(result.images) == 3
    assert len({image.path for image in result.images}) == 3
    for image in result.images:
        path = Path(image.path)
        assert path.parent == tmp_path / "results" / result.request_id
        assert (image.width, image.height) == (width, height)
        assert image.content_type == f"image/{output_format}"
        assert image.size_bytes == len(read(path))
        assert image.source_url is None
        picture = decoded(image.path)
        assert picture.format == output_format.upper()
        assert picture.size == (width, height)
        assert picture.mode == mode
        if mode == "RGBA":
            alpha = np.asarray(picture.getchannel("A"))
            assert alpha.min() == 0 and alpha.max() == 255  # really transparent, and not all


async def test_a_png_says_demo_in_its_metadata_and_on_its_pixels(client):
    job = TextToImageRequest.parse(prompt="a tiny robot", quality="low", num_images=1)
    result = await client.run(job)
    data = read(result.images[0].path)

    metadata = read_metadata(data)
    assert metadata["demo"] is True
    assert metadata["request_id"] == result.request_id
    assert parameters_for_ui(metadata) == (
        "generate",
        {
            "prompt": "a tiny robot",
            "image_size": "1024x1024",
            "background": "auto",
            "quality": "low",
            "num_images": 1,
            "output_format": "png",
            "sync_mode": False,
        },
    )
    # The DEMO label in the top-left corner: white letters outlined in black.
    corner = np.asarray(decoded(result.images[0].path))[:200, :450].reshape(-1, 3)
    assert (corner == 255).all(axis=1).any()
    assert (corner == 0).all(axis=1).any()


def test_the_picture_follows_the_prompt_and_index():
    def pixels(prompt: str, index: int) -> np.ndarray:
        spec = DemoImage(prompt, index, 2, 256, 256, "png")
        return np.asarray(Image.open(io.BytesIO(render(spec))))

    assert np.array_equal(pixels("a fox", 0), pixels("a fox", 0))
    assert not np.array_equal(pixels("a fox", 0), pixels("a fox", 1))
    assert not np.array_equal(pixels("a fox", 0), pixels("a cat", 0))


async def test_delays_are_configurable(tmp_path, monkeypatch):
    # What the demo asks to wait, not how long it took (timings belong in benchmarks/):
    # asyncio's sleep (not ours) is recorded and made instant in this thread; other
    # threads (the fake fal service's server) keep theirs.
    waits: list[float] = []
    real_sleep = asyncio.sleep
    here = threading.get_ident()

    async def recorded(seconds: float, result: object = None) -> object:
        if threading.get_ident() != here:
            return await real_sleep(seconds, result)
        waits.append(seconds)
        return await real_sleep(0, result)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    job = TextToImageRequest.parse(prompt="a kite", quality="low")
    slow = DemoClient(Settings(results_dir=tmp_path / "slow"), delay_s=0.2)
    events = await events_of(slow, job)
    assert isinstance(events[-1], Finished)
    # One pause before each of the five steps, adding up to the delay asked for.
    assert len(waits) == 5 and all(wait > 0 for wait in waits)
    assert sum(waits) == pytest.approx(0.2)

    waits.clear()
    await events_of(DemoClient(Settings(results_dir=tmp_path / "quick"), delay_s=0), job)
    assert waits == []


# --- edits -----------------------------------------------------------------------


async def test_an_edit_draws_over_the_first_image_and_tints_the_masked_area(client):
    image = prepare_image(input_png(), name="photo.png")
    draft = draft_edit([image], corner_mask(), prompt="put a kite in the sky", num_images=1)
    result = await client.run(draft)

    # auto: 1200x900 (4:3) is nearest to 1536x1024 (3:2).
    assert (result.images[0].width, result.images[0].height) == (1536, 1024)
    pixels = np.asarray(decoded(result.images[0].path))
    # The input is scaled by 1.28 and 64 rows are cropped from the top and the bottom,
    # so its masked box lands at x 128..640, y 64..448.
    assert tuple(pixels[420, 600]) != INPUT_COLOUR  # inside the edit area: tinted
    assert tuple(pixels[300, 1300]) == INPUT_COLOUR  # outside: the input as it was

    record = result.record()
    assert record["endpoint"] == "fal-ai/gpt-image-1.5/edit"
    assert record["arguments"]["image_urls"] == ["not-uploaded:photo.png"]
    assert record["arguments"]["mask_image_url"] == "not-uploaded:mask.png"
    assert parameters_for_ui(read_metadata(read(result.images[0].path)))[0] == "edit"


async def test_an_edit_without_a_mask_tints_everything(client):
    image = prepare_image(input_png((900, 1400)), name="tall.png")
    draft = draft_edit([image], None, prompt="make it autumn", output_format="jpeg")
    result = await client.run(draft)
    assert (result.images[0].width, result.images[0].height) == (1024, 1536)
    pixels = np.asarray(decoded(result.images[0].path)).astype(int)
    assert np.abs(pixels[300, 900] - INPUT_COLOUR).max() > 10
    assert "mask_image_url" not in result.record()["arguments"]


async def test_an_edit_request_with_data_uris_is_drawn_without_fetching(client):
    data_uri = "data:image/png;base64," + base64.b64encode(input_png((1400, 900))).decode()
    request = EditRequest.parse(prompt="add snow", image_urls=[data_uri], output_format="webp")
    result = await client.run(request)
    assert (result.images[0].width, result.images[0].height) == (1536, 1024)

    # A URL is never downloaded: auto falls back to the square, drawn from the prompt alone.
    remote = EditRequest.parse(prompt="add snow", image_urls=["https://example.com/a.png"])
    result = await client.run(remote)
    assert (result.images[0].width, result.images[0].height) == (1024, 1024)


# --- no network --------------------------------------------------------------------


async def test_a_demo_run_never_touches_the_network(client, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise AssertionError("the demo tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    with pytest.raises(AssertionError):  # the trap works
        socket.create_connection(("127.0.0.1", 9))
    attempts.clear()

    generated = await client.run(TextToImageRequest.parse(prompt="a quiet harbour", num_images=2))
    image = prepare_image(input_png(), name="photo.png")
    draft = draft_edit([image], corner_mask(), prompt="add boats", image_size="1024x1536")
    edited = await client.run(draft)

    assert len(generated.images) == 2 and len(edited.images) == 1
    assert attempts == []
