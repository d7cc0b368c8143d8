"""Event handlers: verbs that turn UI values into backend calls and back.

They hold no layout. The public API's parameter names are these functions'
parameter names (Gradio reads the signatures), so they mirror the fal fields.
CPU work on images runs in threads so the event loop keeps serving others.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import gradio as gr
from PIL import Image

from backend import (
    EditRequest,
    Finished,
    ImageClient,
    Settings,
    StudioError,
    TextToImageRequest,
    choose_key,
    draft_edit,
)
from backend.client import Job, until_stopped
from backend.demo import DemoClient
from backend.edits import EditDraft
from backend.errors import Cancelled, InvalidInput, MissingKey
from backend.history import HistoryEntry, HistoryStore, entry_from_result
from backend.images import MAX_INPUT_BYTES, PreparedImage, image_size, prepare_image
from backend.keys import KeyChoice, clean_user_key
from backend.limits import VisitorLimiter, visitor_id
from backend.masks import Mask, mask_from_editor, mask_from_upload, mask_preview
from backend.metadata import GENERATE_FIELDS, parameters_for_ui, read_metadata, save_outputs
from backend.pricing import CostEstimate, estimate_cost, format_usd
from backend.schema import MAX_REFERENCE_IMAGES, GenerationResult
from ui.progress import describe_error, describe_progress, describe_result

log = logging.getLogger("studio.ui")

# A streamed status update at most this often: elapsed time stays live without
# flooding many browsers with a message per queue poll.
_STATUS_EVERY_S = 0.4

# While a run is under way, its results area is empty (None), not left as it was
# with gr.skip(): for each skip Gradio builds a fresh copy of the component and its
# config for the session (18 ms on the event loop, and memory kept per session).
# The previous results stay in the History panel.
_CLEARED = (None, None)

Outputs = tuple[Any, Any, str]
PageOutputs = tuple[Any, Any, str, Any]
OnResult = Callable[[Job, GenerationResult], None]
Outcome = tuple[GenerationResult, float] | StudioError
_EDIT = EditRequest.model_fields
EMPTY_CANVAS: dict[str, Any] = {"background": None, "layers": [], "composite": None}


class Studio:
    """Handlers bound to one backend client and the host's settings."""

    def __init__(self, settings: Settings, client: ImageClient) -> None:
        self.settings = settings
        self.client = client
        self._canvas_dir = settings.results_dir / "canvas"
        self.limiter = VisitorLimiter(settings.max_jobs_per_visitor)
        self.demo = DemoClient(settings)
        self.history = HistoryStore()
        # The Stop button's signal for the run under way, by (page session, tab).
        self._stops: dict[tuple[str, str], asyncio.Event] = {}

    # -- the two endpoints (public API) -------------------------------------

    async def generate(
        self,
        prompt: str,
        image_size: str,
        background: str,
        quality: str,
        num_images: int,
        output_format: str,
        sync_mode: bool,
        fal_key: str,
        request: gr.Request | None = None,
    ) -> AsyncIterator[Outputs]:
        """Generate images from a prompt with fal-ai/gpt-image-1.5.

        Returns the images, the JSON record of the request (arguments sent,
        fal request id, timings; never the key) and a status sentence.
        `fal_key` is the caller's own fal key; empty uses the server's.
        """

        async def build() -> Job:
            values = (prompt, image_size, background, quality, num_images, output_format, sync_mode)
            return _text_to_image(*values)

        async for outputs in self._run(build, fal_key, request):
            yield outputs

    async def edit(
        self,
        prompt: str,
        # Defaults make `images` and `mask` optional for API callers (Gradio reads
        # them when a component has no value); the rest mirror the seed's defaults.
        images: list[str] | None = None,
        mask: str | None = None,
        image_size: str = _EDIT["image_size"].default,
        background: str = _EDIT["background"].default,
        quality: str = _EDIT["quality"].default,
        input_fidelity: str = _EDIT["input_fidelity"].default,
        num_images: int = _EDIT["num_images"].default,
        output_format: str = _EDIT["output_format"].default,
        sync_mode: bool = _EDIT["sync_mode"].default,
        fal_key: str = "",
        request: gr.Request | None = None,
    ) -> AsyncIterator[Outputs]:
        """Edit images with fal-ai/gpt-image-1.5/edit.

        `images`: 1 to 16 image files; the first is the one edited (and the one
        the mask applies to). `mask`: optional PNG the size of the first image
        whose fully transparent pixels mark the area to edit (checked, not
        trusted). Returns the images, the JSON record and a status sentence.
        """

        async def build() -> Job:
            prepared = await asyncio.to_thread(_read_images, images or [])
            checked = None
            if mask:
                size = (prepared[0].width, prepared[0].height) if prepared else (0, 0)
                checked = await asyncio.to_thread(_read_mask, mask, size)
            return _edit(
                prepared,
                checked,
                (prompt, image_size, background, quality, input_fidelity),
                (num_images, output_format, sync_mode),
            )

        async for outputs in self._run(build, fal_key, request):
            yield outputs

    # -- the page's versions: errors end in the status line -----------------

    async def generate_in_page(
        self,
        prompt: str,
        image_size: str,
        background: str,
        quality: str,
        num_images: int,
        output_format: str,
        sync_mode: bool,
        fal_key: str,
        browser_id: str,
        request: gr.Request,
    ) -> AsyncIterator[PageOutputs]:
        """`generate` for the page: a failure ends with its sentence in the status
        line (already yielded) instead of an error popup over the results; a
        success also lands in this browser's history."""

        async def build() -> Job:
            values = (prompt, image_size, background, quality, num_images, output_format, sync_mode)
            return _text_to_image(*values)

        async for outputs in self._page_run(build, fal_key, request, browser_id, "generate"):
            yield outputs

    async def edit_in_page(
        self,
        prompt: str,
        references: list[Any] | None,
        canvas: dict[str, Any] | None,
        invert: bool,
        mask_file: str | None,
        image_size: str,
        background: str,
        quality: str,
        input_fidelity: str,
        num_images: int,
        output_format: str,
        sync_mode: bool,
        fal_key: str,
        browser_id: str,
        request: gr.Request,
    ) -> AsyncIterator[PageOutputs]:
        """The Edit tab's button: the mask comes from the canvas (or an uploaded file)."""

        async def build() -> Job:
            paths = gallery_paths(references)
            prepared = await asyncio.to_thread(_read_images, paths)
            checked = await asyncio.to_thread(_mask_for, prepared, canvas, invert, mask_file)
            return _edit(
                prepared,
                checked,
                (prompt, image_size, background, quality, input_fidelity),
                (num_images, output_format, sync_mode),
            )

        async for outputs in self._page_run(build, fal_key, request, browser_id, "edit"):
            yield outputs

    async def _page_run(
        self,
        build: Callable[[], Awaitable[Job]],
        fal_key: str | None,
        request: gr.Request,
        browser_id: str,
        tab: str,
    ) -> AsyncIterator[PageOutputs]:
        entries: list[HistoryEntry] = []

        def remember(job: Job, result: GenerationResult) -> None:
            entries.append(entry_from_result(result, tab, cost_of(job).total_usd))

        with self._stop_signal(request, tab) as stop:
            try:
                runs = self._run(build, fal_key, request, on_result=remember, stop=stop)
                async for outputs in runs:
                    if not entries:
                        # A skip is cheap here: the browser id is state, not a component.
                        yield (*outputs, gr.skip())
                        continue
                    # The run is recorded before its results are shown, in the same
                    # update: a reload right after the results must not lose it. A
                    # browser's first run gives it its id. The History panel follows
                    # (the event's `then`).
                    browser_id = self.new_browser_id(browser_id)
                    self.history.add(browser_id, entries.pop())
                    yield (*outputs, browser_id)
            except gr.Error:
                return

    @contextlib.contextmanager
    def _stop_signal(self, request: gr.Request | None, tab: str) -> Iterator[asyncio.Event]:
        """The Stop button's signal for this page's run in `tab` (API callers, who
        have no Stop button, get one nobody sets)."""
        stop = asyncio.Event()
        slot = (request.session_hash or "", tab) if request is not None else None
        if slot is not None:
            self._stops[slot] = stop
        try:
            yield stop
        finally:
            if slot is not None and self._stops.get(slot) is stop:
                del self._stops[slot]

    async def stop_generate(self, request: gr.Request) -> None:
        self._stop(request, "generate")

    async def stop_edit(self, request: gr.Request) -> None:
        self._stop(request, "edit")

    async def stop_compare(self, request: gr.Request) -> None:
        self._stop(request, "compare")

    def _stop(self, request: gr.Request, tab: str) -> None:
        """Stop this page's run in `tab`: it ends at once with a "Stopped" line and
        the request is cancelled at fal. (Not Gradio's `cancels=`: a cancelled event
        sometimes ends as failed in the browser, stamping a bare "Error" on the page.)"""
        signal = self._stops.get((request.session_hash or "", tab))
        if signal is not None:
            signal.set()

    # -- the Edit tab's canvas ----------------------------------------------

    async def show_main_image(
        self, references: list[Any] | None, shown: str | None
    ) -> tuple[Any, str | None]:
        """Put the first reference image on the canvas, when it changed.

        Adding more references must not wipe the strokes on the main image, so
        the canvas is only reset when the main image itself is another one.
        """
        paths = gallery_paths(references)
        main = paths[0] if paths else None
        if main == shown:
            return gr.skip(), shown
        if main is None:
            return EMPTY_CANVAS, None
        try:
            background = await asyncio.to_thread(self._canvas_background, main)
        except StudioError as exc:
            gr.Warning(exc.message)
            return EMPTY_CANVAS, None
        return {"background": background, "layers": [], "composite": None}, main

    def make_main(self, references: list[Any] | None, selected: int | None) -> Any:
        """Move the selected reference to the front: it becomes the edited image."""
        items = list(references or [])
        if selected is None or not 0 < selected < len(items):
            return gr.skip()
        items.insert(0, items.pop(selected))
        # Leave the gallery's preview too: the new order is then seen at a glance.
        return gr.Gallery(value=items, selected_index=None)

    @staticmethod
    def remember_selection(event: gr.SelectData) -> int:
        return int(event.index)

    def send_to_edit(
        self, results: list[Any] | None, selected: int | None, references: list[Any] | None
    ) -> tuple[Any, Any]:
        """A result becomes the main image of the Edit tab (the others stay as references)."""
        picked = _picked(results, selected)
        if picked is None:
            gr.Warning("There is no result to send yet.")
            return gr.skip(), gr.skip()
        rest = gallery_paths(references)[1:]
        return [picked, *rest][:MAX_REFERENCE_IMAGES], gr.Tabs(selected="edit")

    def add_as_reference(
        self, results: list[Any] | None, selected: int | None, references: list[Any] | None
    ) -> tuple[Any, Any]:
        """A result joins the Edit tab's references, after the others."""
        picked = _picked(results, selected)
        if picked is None:
            gr.Warning("There is no result to add yet.")
            return gr.skip(), gr.skip()
        paths = gallery_paths(references)
        if len(paths) >= MAX_REFERENCE_IMAGES:
            gr.Warning(f"The Edit tab already has {MAX_REFERENCE_IMAGES} reference images.")
            return gr.skip(), gr.skip()
        return [*paths, picked], gr.Tabs(selected="edit")

    async def preview_mask(
        self,
        references: list[Any] | None,
        canvas: dict[str, Any] | None,
        invert: bool,
        mask_file: str | None,
    ) -> tuple[Any, str]:
        """The mask as it will be sent, drawn over the main image."""
        try:
            paths = gallery_paths(references)
            prepared = await asyncio.to_thread(_read_images, paths[:1])
            if not prepared:
                raise InvalidInput("Add a reference image first; the mask applies to the first.")
            mask = await asyncio.to_thread(_mask_for, prepared, canvas, invert, mask_file)
        except StudioError as exc:
            return None, describe_error(exc.message)
        if mask is None:
            return None, "Nothing painted: the whole image may change (no mask is sent)."
        preview = await asyncio.to_thread(_preview, prepared[0], mask)
        return preview, f"The tinted area ({mask.edit_fraction:.0%} of the image) will be edited."

    def _canvas_background(self, path: str) -> str:
        """The main image as the canvas should show it: upright, in a mode it can draw.

        The mask is made at this image's size, so canvas and mask always agree.
        """
        prepared = _read_images([path])[0]
        with open(path, "rb") as original:
            if original.read() == prepared.data:
                return path
        digest = hashlib.sha256(prepared.data).hexdigest()[:16]
        target = self._canvas_dir / f"{digest}.{prepared.file_name.rsplit('.', 1)[-1]}"
        if not target.exists():
            self._canvas_dir.mkdir(parents=True, exist_ok=True)
            target.write_bytes(prepared.data)
        return str(target)

    # -- shared -------------------------------------------------------------

    async def _run(
        self,
        build: Callable[[], Awaitable[Job]],
        fal_key: str | None,
        request: gr.Request | None,
        *,
        on_result: OnResult | None = None,
        stop: asyncio.Event | None = None,
    ) -> AsyncIterator[Outputs]:
        """Check everything, run the job, stream status lines, end with results."""
        visitor = _visitor(request)
        try:
            key = self._key_or_demo(fal_key)
            job = await build()
            with self.limiter.slot(visitor):
                last_sent = 0.0
                events = self.demo.stream(job) if key is None else self.client.stream(job, key)
                if stop is not None:
                    events = until_stopped(events, stop)
                async for event in events:
                    if isinstance(event, Finished):
                        result = event.result
                        # Saved while the results are on their way to the page; the
                        # event (and an API call) ends only once the copy is written.
                        saving = asyncio.ensure_future(self._save(result))
                        if on_result is not None:
                            on_result(job, result)
                        gallery = [(img.path, img.caption()) for img in result.images]
                        try:
                            yield gallery, result.record(), describe_result(result)
                        finally:
                            await saving
                        return
                    now = time.monotonic()
                    if now - last_sent >= _STATUS_EVERY_S:
                        last_sent = now
                        yield *_CLEARED, describe_progress(event)
        except StudioError as exc:
            stopped = isinstance(exc, Cancelled)
            yield (
                *_CLEARED,
                f"⏹️ {exc.message}" if stopped else describe_error(exc.message),
            )
            raise gr.Error(exc.message, print_exception=False) from None

    def _key_or_demo(self, fal_key: str | None) -> KeyChoice | None:
        """The request's key; None means demo mode (no key configured anywhere)."""
        try:
            return choose_key(
                fal_key,
                self.settings.host_key,
                host_requires_own=self.settings.require_user_key,
            )
        except MissingKey:
            if self.settings.demo_mode and not self.settings.host_key:
                return None
            raise

    async def _save(self, result: GenerationResult) -> None:
        """Keep a copy with its parameters in the outputs folder, if the host wants one.

        A failure to save never fails the request: the images are shown anyway."""
        if self.settings.outputs_dir is None or result.key_source == "demo":
            return  # placeholders are not worth keeping
        try:
            await asyncio.to_thread(save_outputs, result, self.settings.outputs_dir)
        except OSError as exc:
            log.warning("could not save outputs to %s: %s", self.settings.outputs_dir, exc)

    # -- compare --------------------------------------------------------------

    async def compare(
        self,
        prompt: str,
        qualities: list[str] | None,
        sizes: list[str] | None,
        background: str = "auto",
        output_format: str = "png",
        fal_key: str = "",
        request: gr.Request | None = None,
    ) -> AsyncIterator[Outputs]:
        """One prompt at each chosen quality x size, all started together.

        Returns one image per setting (captioned with its setting, time and
        cost), the records, and a status sentence."""
        visitor = _visitor(request)
        done: dict[int, Outcome] = {}
        try:
            key = self._key_or_demo(fal_key)
            jobs = _comparison(prompt, qualities, sizes, background, output_format)
            with self.limiter.slot(visitor), self._stop_signal(request, "compare") as stop:
                async for finished in self._compare_until(jobs, key, done, stop):
                    yield *_CLEARED, finished
        except StudioError as exc:
            yield *_CLEARED, describe_error(exc.message)
            raise gr.Error(exc.message, print_exception=False) from None
        yield _compared(jobs, done, stopped=stop.is_set())

    async def _compare_until(
        self,
        jobs: list[Job],
        key: KeyChoice | None,
        done: dict[int, Outcome],
        stop: asyncio.Event,
    ) -> AsyncIterator[str]:
        """Run every job at once, filling `done` and yielding a status line as each
        ends, until all have or Stop is pressed (the rest are then cancelled at fal)."""

        async def one(index: int) -> tuple[int, Outcome]:
            try:
                return index, await self._timed(jobs[index], key)
            except StudioError as exc:
                return index, exc

        started = time.monotonic()
        pending: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(one(i)) for i in range(len(jobs))
        }
        stopped: asyncio.Future[Any] = asyncio.ensure_future(stop.wait())
        try:
            while pending and not stop.is_set():
                finished, pending = await asyncio.wait(
                    pending | {stopped}, return_when=asyncio.FIRST_COMPLETED
                )
                pending.discard(stopped)
                for task in finished - {stopped}:
                    index, outcome = task.result()
                    done[index] = outcome
                elapsed = time.monotonic() - started
                yield f"⏳ {len(done)} of {len(jobs)} settings finished · {elapsed:.1f} s"
        finally:
            for task in [*pending, stopped]:  # Stop, or a closed tab: cancel the rest at fal
                task.cancel()

    async def _timed(self, job: Job, key: KeyChoice | None) -> tuple[GenerationResult, float]:
        started = time.monotonic()
        result = await (self.demo.run(job) if key is None else self.client.run(job, key))
        await self._save(result)
        return result, time.monotonic() - started

    def estimate_compare(
        self, prompt: str, qualities: list[str] | None, sizes: list[str] | None
    ) -> str:
        try:
            jobs = _comparison(prompt or "x", qualities, sizes, "auto", "png")
        except StudioError as exc:
            return exc.message
        total = sum(cost_of(job).total_usd for job in jobs)
        runs = "run" if len(jobs) == 1 else "runs"
        return f"{len(jobs)} {runs} · estimated cost: **≈ {format_usd(total)}**"

    # -- cost, history, saved parameters ------------------------------------

    def estimate_generate(
        self, prompt: str, image_size: str, quality: str, num_images: float
    ) -> str:
        try:
            cost = estimate_cost(
                quality=quality,
                image_size=image_size,
                num_images=int(num_images),
                prompt=prompt or "",
            )
        except StudioError:
            return ""
        return f"Estimated cost: **{cost.describe()}**"

    async def estimate_edit(
        self,
        prompt: str,
        references: list[Any] | None,
        image_size: str,
        quality: str,
        input_fidelity: str,
        num_images: float,
    ) -> str:
        paths = gallery_paths(references)
        try:
            sizes = await asyncio.to_thread(_image_sizes, paths)
            cost = estimate_cost(
                quality=quality,
                image_size=image_size,
                num_images=int(num_images),
                prompt=prompt or "",
                input_sizes=sizes,
                input_fidelity=input_fidelity,
            )
        except StudioError:
            return ""
        return f"Estimated cost: **{cost.describe()}**"

    def show_history(self, browser_id: str) -> tuple[Any, str]:
        """This browser's runs, newest first, and what they cost together."""
        entries = self.history.entries(browser_id) if browser_id else []
        items = [(e.image_paths[0], e.caption()) for e in entries if e.image_paths]
        total = self.history.total_cost(browser_id) if browser_id else 0.0
        count = len(entries)
        runs = "run" if count == 1 else "runs"
        return items, f"{count} {runs} in this browser · session total {format_usd(total)}"

    def restore_from_history(self, browser_id: str, event: gr.SelectData) -> list[Any]:
        """A history entry's prompt and parameters, back in its tab."""
        entries = [e for e in self.history.entries(browser_id) if e.image_paths]
        if not 0 <= event.index < len(entries):
            return _no_restore()
        entry = entries[event.index]
        return _restore(entry.tab, {"prompt": entry.prompt, **entry.parameters})

    async def load_parameters(self, file: str | None) -> tuple[Any, ...]:
        """Prompt and parameters read back from an image this app saved."""
        if not file:
            return (*_no_restore(), "")
        try:
            data = await asyncio.to_thread(_read_file, file)
            sidecar = await asyncio.to_thread(_sidecar_of, file)
            tab, values = parameters_for_ui(read_metadata(data, sidecar=sidecar))
        except StudioError as exc:
            return (*_no_restore(), describe_error(exc.message))
        name = "Generate" if tab == "generate" else "Edit"
        return (*_restore(tab, values), f"Loaded the prompt and parameters into the {name} tab.")

    @staticmethod
    def new_browser_id(current: str) -> str:
        """A random id for this browser's history, kept across reloads."""
        return current or uuid.uuid4().hex

    def describe_key(self, fal_key: str) -> str:
        """Which key the next request will use, never the key itself."""
        try:
            own = clean_user_key(fal_key)
        except InvalidInput as exc:
            return f"🔑 {exc.message}"
        if own:
            return "🔑 Requests use **your key**."
        if self.settings.require_user_key:
            demo = (
                " Until then: demo mode."
                if self.settings.demo_mode and not self.settings.host_key
                else ""
            )
            return (
                "🔑 **No key: add one.** This app runs on visitors' own keys: paste yours "
                "above (get one at [fal.ai/dashboard/keys](https://fal.ai/dashboard/keys))." + demo
            )
        if self.settings.has_host_key:
            return "🔑 Requests use **the host's key**. Paste your own to use it instead."
        demo = (
            " Until then the app runs in **demo mode**: placeholder images, nothing is sent."
            if self.settings.demo_mode
            else ""
        )
        return (
            "🔑 **No key: add one.** Paste a fal API key above "
            "(get one at [fal.ai/dashboard/keys](https://fal.ai/dashboard/keys)), "
            f"or set `FAL_KEY` in `.env` and restart.{demo}"
        )


def _visitor(request: gr.Request | None) -> str:
    if request is None:
        return "local"
    client = getattr(request, "client", None)
    return visitor_id(getattr(client, "host", None), dict(request.headers))


MAX_COMPARISONS = 9


def _text_to_image(
    prompt: str,
    image_size: str,
    background: str,
    quality: str,
    num_images: Any,
    output_format: str,
    sync_mode: bool,
) -> TextToImageRequest:
    return TextToImageRequest.parse(
        prompt=prompt,
        image_size=image_size,
        background=background,
        quality=quality,
        num_images=_whole(num_images),
        output_format=output_format,
        sync_mode=sync_mode,
    )


def _edit(
    prepared: list[PreparedImage],
    mask: Mask | None,
    first: tuple[str, str, str, str, str],
    rest: tuple[Any, str, bool],
) -> EditDraft:
    """draft_edit from the UI's values (prompt, image_size, background, quality,
    input_fidelity) and (num_images, output_format, sync_mode)."""
    prompt, image_size, background, quality, input_fidelity = first
    num_images, output_format, sync_mode = rest
    return draft_edit(
        prepared,
        mask,
        prompt=prompt,
        image_size=image_size,
        background=background,
        quality=quality,
        input_fidelity=input_fidelity,
        num_images=_whole(num_images),
        output_format=output_format,
        sync_mode=sync_mode,
    )


def _comparison(
    prompt: str,
    qualities: list[str] | None,
    sizes: list[str] | None,
    background: str,
    output_format: str,
) -> list[Job]:
    """Every quality x size asked for, each checked before any is sent."""
    if not qualities or not sizes:
        raise InvalidInput("Tick at least one quality and one image_size to compare.")
    if len(qualities) * len(sizes) > MAX_COMPARISONS:
        raise InvalidInput(f"Compare at most {MAX_COMPARISONS} settings at once.")
    return [
        TextToImageRequest.parse(
            prompt=prompt,
            image_size=size,
            quality=quality,
            background=background,
            output_format=output_format,
            num_images=1,
        )
        for size in sizes
        for quality in qualities
    ]


def _compared(jobs: list[Job], done: dict[int, Outcome], *, stopped: bool = False) -> Outputs:
    gallery, records, failures = [], [], []
    for index, job in enumerate(jobs):
        assert isinstance(job, TextToImageRequest)
        setting = f"{job.quality} · {job.image_size}"
        outcome = done.get(index)
        if isinstance(outcome, tuple):
            result, seconds = outcome
            cost = format_usd(cost_of(job).total_usd)
            for image in result.images:
                gallery.append((image.path, f"{setting} · {seconds:.1f} s · {cost}"))
            records.append({"setting": setting, "seconds": round(seconds, 2), **result.record()})
        else:
            reason = outcome.message if isinstance(outcome, StudioError) else "stopped"
            failures.append(f"{setting}: {reason}")
    status = f"✅ {len(records)} of {len(jobs)} settings, side by side."
    if stopped and len(done) < len(jobs):
        status = (
            f"⏹️ Stopped: {len(records)} of {len(jobs)} settings had finished and are shown; "
            "the rest were cancelled at fal."
        )
    elif failures:
        status = f"⚠️ {len(records)} of {len(jobs)} settings finished. " + " ".join(failures)
    return gallery, records, status


# The Edit fields in the order of the tab's controls (metadata's order differs).
EDIT_FIELDS = (
    "prompt",
    "image_size",
    "background",
    "quality",
    "input_fidelity",
    "num_images",
    "output_format",
    "sync_mode",
)


def _no_restore() -> list[Any]:
    return [gr.skip()] * (1 + len(GENERATE_FIELDS) + len(EDIT_FIELDS))


def _restore(tab: str, values: dict[str, Any]) -> list[Any]:
    """Updates for [tabs, the Generate fields..., the Edit fields...]."""
    generate = [
        values.get(f, gr.skip()) if tab == "generate" else gr.skip() for f in GENERATE_FIELDS
    ]
    edit = [values.get(f, gr.skip()) if tab == "edit" else gr.skip() for f in EDIT_FIELDS]
    return [gr.Tabs(selected=tab), *generate, *edit]


def cost_of(job: Job) -> CostEstimate:
    """What fal will charge for a job, by the one price table."""
    if isinstance(job, EditDraft):
        request = job.request
        return estimate_cost(
            quality=request.quality,
            image_size=request.image_size,
            num_images=request.num_images,
            prompt=request.prompt,
            input_sizes=[(img.width, img.height) for img in job.images],
            input_fidelity=request.input_fidelity,
        )
    return estimate_cost(
        quality=job.quality,
        image_size=job.image_size,
        num_images=job.num_images,
        prompt=job.prompt,
    )


def _image_sizes(paths: Sequence[str]) -> list[tuple[int, int]]:
    return [image_size(_read_file(path)) for path in paths[:1]]


def _sidecar_of(path: str) -> bytes | None:
    """The JSON saved beside a jpeg/webp output, if the user picked the image itself."""
    sidecar = Path(path + ".json")
    return sidecar.read_bytes() if sidecar.is_file() else None


def _picked(results: list[Any] | None, selected: int | None) -> str | None:
    """The result image the user clicked, or the first one."""
    paths = gallery_paths(results)
    if not paths:
        return None
    return paths[selected] if selected is not None and 0 <= selected < len(paths) else paths[0]


def gallery_paths(value: Sequence[Any] | None) -> list[str]:
    """File paths from a Gallery value: (path, caption) pairs, dicts or plain paths."""
    paths = []
    for item in value or []:
        if isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, dict):
            item = item.get("path") or (item.get("image") or {}).get("path")
        if isinstance(item, (str, Path)):
            paths.append(str(item))
    return paths


def _read_images(paths: Sequence[str]) -> list[PreparedImage]:
    return [prepare_image(_read_file(path), name=Path(path).name) for path in paths]


def _read_file(path: str) -> bytes:
    file = Path(path)
    try:
        if file.stat().st_size > MAX_INPUT_BYTES:
            raise InvalidInput(
                f"'{file.name}' is larger than 50 MB, the model's limit. Use a smaller file."
            )
        return file.read_bytes()
    except OSError:
        raise InvalidInput(f"'{file.name}' could not be read. Add it again.") from None


def _read_mask(path: str, size: tuple[int, int]) -> Mask:
    if size == (0, 0):
        raise InvalidInput("Add at least one reference image (the first is the one you edit).")
    return mask_from_upload(_read_file(path), size)


def _mask_for(
    prepared: list[PreparedImage],
    canvas: dict[str, Any] | None,
    invert: bool,
    mask_file: str | None,
) -> Mask | None:
    """An uploaded mask wins over painting; no paint and no file means no mask."""
    if not prepared:
        return None
    size = (prepared[0].width, prepared[0].height)
    if mask_file:
        return _read_mask(mask_file, size)
    return mask_from_editor(canvas, size, invert=invert)


def _preview(image: PreparedImage, mask: Mask) -> Image.Image:
    with Image.open(io.BytesIO(image.data)) as opened:
        return mask_preview(opened.convert("RGB"), mask)


def _whole(value: Any) -> Any:
    """Sliders and JSON callers may send 2.0; a whole float means 2. Anything else
    goes through as it is, for the request model to refuse with a clear sentence."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
