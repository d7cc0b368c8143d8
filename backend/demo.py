"""Offline demo mode: every control works, nothing leaves the machine.

When no key is configured anywhere, the app can still be tried: `DemoClient`
stands in for `ImageClient` with the same `stream(job, key)` / `run(job, key)`
interface and the same `Progress` events, and draws placeholder images locally.
They have the requested size, format and transparency, say DEMO in large
letters, and follow the prompt (colours seeded by it, its first words written
on the image). An edit draws over the first input image, tinting the area the
mask marks, so the edit workflow reads sensibly too.

No network: no socket is opened, nothing is uploaded (an EditDraft's images are
read from memory), and the record says `"key": "demo"` and a request id
starting with "demo-".
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import textwrap
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, ImageOps, PngImagePlugin

from backend.client import (
    Fetching,
    Finished,
    Job,
    Progress,
    Queued,
    Running,
    Submitted,
)
from backend.edits import EditDraft
from backend.endpoints import ENDPOINTS, Registry
from backend.errors import ResultUnavailable
from backend.formats import format_named
from backend.keys import KeyChoice
from backend.metadata import (
    APP_TAG,
    DEMO_KEY_SOURCE,
    DEMO_REQUEST_PREFIX,
    build_metadata,
)
from backend.pricing import resolve_size
from backend.schema import GenerationResult, ResultImage, Timings
from backend.settings import Settings

__all__ = ["DEMO_KEY_SOURCE", "DEMO_REQUEST_PREFIX", "DemoClient", "DemoImage", "render"]

DEFAULT_DELAY_S = 0.3
# Shares of delay_s spent before each event, so the progress display gets to show each.
_PAUSES = {"submitted": 0.15, "queued": 0.2, "running": 0.25, "drawing": 0.25, "fetching": 0.15}
LOG_LINES = (
    "Demo mode: drawing a placeholder, no request sent to fal",
    "Add a fal API key to generate real images",
)
_NOT_UPLOADED = "not-uploaded:"

_PROMPT_WORDS = 40  # shown on a placeholder, at most five lines of them

Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


@dataclass(frozen=True)
class DemoImage:
    """What one placeholder shows; everything `render` needs, nothing else."""

    prompt: str
    index: int  # 0-based
    count: int
    width: int
    height: int
    output_format: str  # png | jpeg | webp
    transparent: bool = False
    base: bytes | None = None  # encoded first input image of an edit
    mask_png: bytes | None = None  # the edit mask: alpha 0 = area to edit
    png_text: str | None = None  # JSON record for the PNG's APP_TAG chunk


class DemoClient:
    """Stands in for ImageClient: same `stream(job, key)` / `run(job, key)` and Progress events."""

    def __init__(
        self,
        settings: Settings,
        *,
        delay_s: float = DEFAULT_DELAY_S,
        endpoints: Registry = ENDPOINTS,
    ) -> None:
        self._results_dir = settings.results_dir
        self._delay_s = max(0.0, delay_s)
        # Each endpoint's entry says what its placeholders are drawn over.
        self._endpoints = endpoints

    async def run(self, job: Job, key: KeyChoice | None = None) -> GenerationResult:
        """Run to completion, ignoring progress."""
        async for event in self.stream(job, key):
            if isinstance(event, Finished):
                return event.result
        raise ResultUnavailable()  # pragma: no cover - stream always finishes or raises

    async def stream(self, job: Job, key: KeyChoice | None = None) -> AsyncIterator[Progress]:
        """The events a real run yields, ending in Finished with local placeholder images.

        `key` is accepted for interface parity and never used.
        """
        started = time.monotonic()
        request_id = f"{DEMO_REQUEST_PREFIX}{uuid.uuid4().hex}"
        request = job.request if isinstance(job, EditDraft) else job
        arguments = _arguments(job)

        await self._pause("submitted")
        yield Submitted(request_id, time.monotonic() - started)
        await self._pause("queued")
        queued_until = time.monotonic()
        yield Queued(request_id, 0, queued_until - started)
        await self._pause("running")
        yield Running(request_id, LOG_LINES[:1], time.monotonic() - started)

        skeleton = GenerationResult(
            endpoint=request.endpoint,
            request_id=request_id,
            arguments=arguments,
            images=[],
            key_source=DEMO_KEY_SOURCE,
            metrics={"demo": True},
        )
        record = json.dumps(build_metadata(skeleton), ensure_ascii=False)
        # Reading the input image's header (and checking it) is file work: off the loop too.
        specs = await asyncio.to_thread(_specs, job, record, self._endpoints)
        dest = self._results_dir / request_id
        images = await asyncio.gather(
            *(asyncio.to_thread(_draw_and_save, spec, dest, request_id) for spec in specs)
        )
        await self._pause("drawing")
        yield Running(request_id, LOG_LINES, time.monotonic() - started)
        completed_at = time.monotonic()
        yield Fetching(request_id, len(images), completed_at - started)
        await self._pause("fetching")

        finished_at = time.monotonic()
        yield Finished(
            GenerationResult(
                endpoint=skeleton.endpoint,
                request_id=request_id,
                arguments=arguments,
                images=list(images),
                timings=Timings(
                    queued_s=queued_until - started,
                    running_s=completed_at - queued_until,
                    fetching_s=finished_at - completed_at,
                    total_s=finished_at - started,
                ),
                key_source=DEMO_KEY_SOURCE,
                metrics={"demo": True},
                local_inputs=job.local_inputs if isinstance(job, EditDraft) else (),
            )
        )

    async def _pause(self, step: str) -> None:
        if self._delay_s > 0:
            await asyncio.sleep(self._delay_s * _PAUSES[step])


def _arguments(job: Job) -> dict[str, object]:
    """The arguments a real run would send; an edit's images are named, never uploaded."""
    if not isinstance(job, EditDraft):
        return job.to_arguments()
    arguments = job.request.to_arguments()
    arguments["image_urls"] = [f"{_NOT_UPLOADED}{image.file_name}" for image in job.images]
    if job.mask is not None:
        arguments["mask_image_url"] = f"{_NOT_UPLOADED}mask.png"
    return arguments


def _specs(job: Job, png_text: str, endpoints: Registry) -> list[DemoImage]:
    request = job.request if isinstance(job, EditDraft) else job
    base, mask_png = endpoints.by_id(request.endpoint).demo_inputs(job)
    input_sizes = [_size_of(base)] if base is not None else []
    width, height = (int(side) for side in resolve_size(request.image_size, input_sizes).split("x"))
    return [
        DemoImage(
            prompt=request.prompt,
            index=index,
            count=request.num_images,
            width=width,
            height=height,
            output_format=request.output_format,
            transparent=request.background == "transparent",
            base=base,
            mask_png=mask_png,
            png_text=png_text,
        )
        for index in range(request.num_images)
    ]


def _size_of(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


def _draw_and_save(spec: DemoImage, dest: Path, request_id: str) -> ResultImage:
    data = render(spec)
    fmt = format_named(spec.output_format)
    name = f"{request_id[:13]}-{spec.index + 1}.{fmt.extension}"
    try:
        dest.mkdir(parents=True, exist_ok=True)
        path = dest / name
        path.write_bytes(data)
    except OSError as exc:
        raise ResultUnavailable(
            "The demo could not save its images on the server. Try again.",
            detail=f"{type(exc).__name__}: {exc}",
        ) from None
    return ResultImage(
        path=str(path),
        content_type=fmt.mime,
        width=spec.width,
        height=spec.height,
        size_bytes=len(data),
        source_url=None,
    )


# --- drawing ---------------------------------------------------------------------


def render(spec: DemoImage) -> bytes:
    """The encoded placeholder for `spec`."""
    size = (spec.width, spec.height)
    gradient = _gradient(size, _corner_colours(spec.prompt, spec.index))
    picture = gradient if spec.base is None else _over_input(spec.base, spec.mask_png, gradient)
    _draw_labels(picture, spec)
    if spec.transparent:
        picture.putalpha(_card_alpha(size))
    return _encode(picture, spec)


def _corner_colours(prompt: str, index: int) -> list[tuple[int, int, int]]:
    """Four colours from the prompt and index: the same prompt draws the same image."""
    digest = hashlib.sha256(f"{prompt}\x00{index}".encode()).digest()
    return [(digest[i], digest[i + 1], digest[i + 2]) for i in range(0, 12, 3)]


def _gradient(size: tuple[int, int], colours: list[tuple[int, int, int]]) -> Image.Image:
    # A 2x2 image stretched bilinearly is a four-corner gradient at almost no cost;
    # the box maps the corner pixels' centres onto the output's corners.
    corners = Image.new("RGB", (2, 2))
    corners.putdata(colours)
    return corners.resize(size, Image.Resampling.BILINEAR, box=(0.5, 0.5, 1.5, 1.5))


def _over_input(base: bytes, mask_png: bytes | None, gradient: Image.Image) -> Image.Image:
    """The first input image, cropped to the output's shape, tinted where it would change."""
    with Image.open(io.BytesIO(base)) as opened:
        source = _flatten(opened)
    picture = ImageOps.fit(source, gradient.size, Image.Resampling.BILINEAR)
    if mask_png is None:
        # No mask: the whole image may change, so all of it gets a light tint.
        return Image.blend(picture, gradient, 0.3)
    with Image.open(io.BytesIO(mask_png)) as mask:
        edit = mask.convert("RGBA").getchannel("A").point(lambda alpha: 255 if alpha == 0 else 0)
    # The mask has the first image's size, so the same fit crops it the same way.
    edit = ImageOps.fit(edit, gradient.size, Image.Resampling.NEAREST)
    return Image.composite(Image.blend(picture, gradient, 0.6), picture, edit)


def _flatten(image: Image.Image) -> Image.Image:
    """RGB, with any transparent parts shown over white."""
    if image.mode in ("RGBA", "LA", "PA") or image.has_transparency_data:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def _draw_labels(picture: Image.Image, spec: DemoImage) -> None:
    """DEMO in the top-left corner, the prompt's first words, and what this is."""
    draw = ImageDraw.Draw(picture)
    short_side = min(picture.size)
    # Inside the opaque card when the background is transparent, else near the edge.
    margin = short_side // 24 + (_card_inset(picture.size) if spec.transparent else 0)
    big, small = _font(short_side // 7), _font(short_side // 26)
    _outlined(draw, (margin, margin), "DEMO", big)
    lines = _wrap(spec.prompt, picture.width - 2 * margin, small)
    line_height = int(_em(small) * 1.35)
    top = picture.height // 2 - line_height * len(lines) // 2
    for number, line in enumerate(lines):
        _outlined(draw, (margin, top + number * line_height), line, small)
    footer = f"placeholder, no request sent to fal · {spec.index + 1}/{spec.count}"
    corner = (picture.width - margin, picture.height - margin)
    _outlined(draw, corner, footer, small, anchor="rd")


def _outlined(
    draw: ImageDraw.ImageDraw, xy: tuple[int, int], text: str, font: Font, anchor: str = "la"
) -> None:
    # White with a black outline stays readable on any colour of the gradient.
    stroke = max(2, round(_em(font) / 16))
    draw.text(
        xy, text, fill="white", font=font, anchor=anchor, stroke_width=stroke, stroke_fill="black"
    )


def _em(font: Font) -> float:
    return font.size if isinstance(font, ImageFont.FreeTypeFont) else 11.0


def _wrap(prompt: str, width_px: int, font: Font) -> list[str]:
    """The prompt's first words in at most five lines that fit `width_px`."""
    sample = "the quick brown fox jumps over a lazy dog "
    columns = max(8, int(width_px * len(sample) / font.getlength(sample)))
    words = prompt.split()
    text = " ".join(words[:_PROMPT_WORDS]) + (" …" if len(words) > _PROMPT_WORDS else "")
    lines = textwrap.wrap(text, columns, max_lines=5, placeholder=" …")
    return lines or ["(no prompt)"]


def _font(size: int) -> Font:
    # Pillow's bundled font: no font files needed on the host. Loaded per image
    # (0.3 ms), not cached: images are drawn in parallel threads, and a FreeType
    # face is not safe to share between threads.
    return ImageFont.load_default(size=max(10, size))


def _card_alpha(size: tuple[int, int]) -> Image.Image:
    """Opaque rounded card, fully transparent margin: real transparency to show."""
    alpha = Image.new("L", size, 0)
    inset = _card_inset(size)
    box = (inset, inset, size[0] - inset, size[1] - inset)
    ImageDraw.Draw(alpha).rounded_rectangle(box, radius=min(size) // 8, fill=255)
    return alpha


def _card_inset(size: tuple[int, int]) -> int:
    return min(size) // 16


def _encode(picture: Image.Image, spec: DemoImage) -> bytes:
    buffer = io.BytesIO()
    if spec.output_format == "png":
        info = PngImagePlugin.PngInfo()
        if spec.png_text is not None:
            info.add_itxt(APP_TAG, spec.png_text)
        # Low compression keeps a 1536x1024 placeholder well under 150 ms.
        picture.save(buffer, "PNG", compress_level=1, pnginfo=info)
    elif spec.output_format == "webp":
        picture.save(buffer, "WEBP", quality=80, method=0)
    else:
        picture.convert("RGB").save(buffer, "JPEG", quality=85)
    return buffer.getvalue()
