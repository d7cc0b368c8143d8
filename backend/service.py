"""The run service: everything about a run except the screen.

Every way in (the page, the public API, Compare) goes through `RunService`. It
takes a typed request, or an edit draft, plus who asks (`Caller`), and yields
the `Progress` events of `backend.progress`. On the way it owns:
- the key: the caller's own, the host's, or the offline demo when there is none;
- the caller's share of capacity (`backend.limits`);
- the Stop signal (`stop()`), and through the generator, the deadline;
- saving outputs, recording history, and the cost of each run.

It imports no Gradio. The generator that talks to fal and the demo's stand-in
both satisfy `ImageGenerator` and are handed in by whoever builds the service
(app.py, a test, a benchmark): nothing here builds its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from backend.agent_inputs import agent_images
from backend.budget import Allowance, Budget, Charge
from backend.client import Job
from backend.database import Database
from backend.edits import EditDraft, RemoteImage, draft_edit
from backend.endpoints import ENDPOINTS, Endpoint, Registry
from backend.errors import (
    Cancelled,
    InternalError,
    InvalidInput,
    MissingKey,
    StudioError,
    waited_too_long,
)
from backend.history import HistoryEntry, HistoryStore, entry_from_result
from backend.images import PreparedImage
from backend.inputs import (
    canvas_background,
    first_image_size,
    mask_for,
    preview,
    read_file,
    read_images,
    read_mask,
    sidecar_of,
)
from backend.keys import KeyChoice, choose_key, clean_user_key
from backend.mask_lock import DEFAULT_SEAM, MAX_SEAM, KeptFiles, keep_unmasked_files
from backend.masks import Mask, mask_from_editor, painted_anything
from backend.metadata import parameters_for_ui, read_metadata, save_outputs
from backend.pricing import UNKNOWN_INPUT_SIZE, CostEstimate, format_usd
from backend.progress import (
    Fetching,
    Finished,
    Progress,
    Queued,
    Running,
    Submitted,
    Uploading,
    Waiting,
)
from backend.runs import (
    DEMO_KEY,
    Caller,
    Comparison,
    ImageGenerator,
    KeyStatus,
    MaskPreview,
    comparison_jobs,
    finished_result,
    whole_numbers,
)
from backend.scheduler import Scheduler
from backend.schema import EditRequest, GenerationResult, TextToImageRequest
from backend.settings import Settings
from backend.stopping import closing, until_stopped
from backend.urls import checked_url, checked_urls, fal_image_size, on_fal_media
from backend.visitors import TrustedProxies

__all__ = [
    "DEFAULT_SEAM",
    "MAX_SEAM",
    "Allowance",
    "Caller",
    "Cancelled",
    "Comparison",
    "CostEstimate",
    "EditDraft",
    "Fetching",
    "Finished",
    "ImageGenerator",
    "InternalError",
    "KeptFiles",
    "KeyStatus",
    "MaskPreview",
    "Progress",
    "Queued",
    "RunService",
    "Running",
    "StudioError",
    "Submitted",
    "Uploading",
    "Waiting",
    "closing",
    "format_usd",
]

log = logging.getLogger("studio.runs")


class RunService:
    """Runs jobs for callers, and answers the questions a form asks before one."""

    def __init__(
        self,
        settings: Settings,
        *,
        fal: ImageGenerator,
        demo: ImageGenerator,
        endpoints: Registry = ENDPOINTS,
        history: HistoryStore | None = None,
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self._fal = fal
        self._demo = demo
        self.history = history or HistoryStore()
        self.scheduler = Scheduler(settings.concurrency_limit, settings.max_waiting_per_visitor)
        self._proxies = TrustedProxies.of(settings.trusted_proxy_list)
        database = Database(settings.data_folder) if settings.host_key_budget_usd else None
        self.budget = Budget(database, settings.host_key_budget_usd)
        self._canvas_dir = settings.results_dir / "canvas"
        # The Stop button's signal for the run under way, by (page session, tab).
        self._stops: dict[tuple[str, str], asyncio.Event] = {}

    def caller(
        self,
        host: str | None,
        headers: Mapping[str, str],
        *,
        session: str | None = None,
        browser_id: str = "",
        fal_key: str | None = "",
    ) -> Caller:
        """Who is calling, from their connection: their address, or, through a
        trusted proxy, the address it forwarded (backend/visitors.py)."""
        return Caller(self._proxies.visitor(host, headers), session, browser_id, fal_key or "")

    # -- jobs: values in, checked requests out (nothing is sent) ---------------

    def request(self, endpoint: Endpoint, values: Mapping[str, Any]) -> Job:
        """A text-to-image request from the values of its fields. Raises InvalidInput."""
        return endpoint.model.parse(**whole_numbers(endpoint, values))

    async def edit(
        self,
        endpoint: Endpoint,
        values: Mapping[str, Any],
        images: Sequence[str],
        *,
        image_urls: Sequence[object] | None = None,
        mask_file: str | None = None,
        mask_image_url: object = None,
        canvas: dict[str, Any] | None = None,
        invert: bool = False,
        hosted: Mapping[str, str] | None = None,
    ) -> EditDraft:
        """An edit from image files, image URLs and the values of its fields, checked
        completely.

        fal gets the files first, then `image_urls` unchanged. The mask is
        `mask_file` if given (checked, not trusted), else `mask_image_url`, else
        what was painted on `canvas`; none means no mask. A URL that is not
        http(s) is refused before anything else; a URL is never fetched here,
        except from fal's media hosts where a mask's size must be checked
        (backend/urls.py).

        `hosted` maps files of `images` that are copies of results on fal's media
        hosts to their URL: fal gets the URL in the file's place (nothing uploaded),
        and the copy still gives its size for the mask and the price.
        """
        urls = checked_urls(image_urls)
        mask_url = checked_url(mask_image_url, "mask_image_url") if mask_image_url else None
        if mask_url is not None and mask_file:
            raise InvalidInput("Give one mask: a mask file or mask_image_url, not both.")
        prepared = await asyncio.to_thread(read_images, images)
        if prepared or not urls:
            # No image: no mask to check, and draft_edit says to add an image.
            mask = await asyncio.to_thread(mask_for, prepared, canvas, invert, mask_file)
            main_size = (prepared[0].width, prepared[0].height) if prepared else None
        else:
            mask, main_size = await self._mask_for_url(urls[0], canvas, invert, mask_file)
        if mask_url is not None and mask is None:
            await self._check_mask_url(mask_url, main_size, urls)
        model = endpoint.model
        assert issubclass(model, EditRequest), f"{endpoint.tab} takes no images"
        inputs: list[PreparedImage | RemoteImage] = [
            RemoteImage(hosted[path], (image.width, image.height))
            if hosted and path in hosted
            else image
            for path, image in zip(images, prepared, strict=True)
        ]
        return draft_edit(
            inputs,
            mask,
            image_urls=urls,
            mask_image_url=mask_url if mask is None else None,
            model=model,
            **whole_numbers(endpoint, values),
        )

    async def edit_for_agent(
        self,
        endpoint: Endpoint,
        values: Mapping[str, Any],
        image_urls: object,
        mask_image_url: object = None,
    ) -> EditDraft:
        """An edit whose images are https URLs or data URIs, as an MCP tool gets them
        (backend/agent_inputs.py): data URIs are checked like uploads."""
        folder = self.settings.results_dir / "agent-inputs"
        with agent_images(image_urls, mask_image_url, folder) as given:
            return await self.edit(
                endpoint,
                values,
                given.files,
                image_urls=given.urls,
                mask_file=given.mask_file,
                mask_image_url=given.mask_url,
            )

    async def _mask_for_url(
        self, main_url: str, canvas: dict[str, Any] | None, invert: bool, mask_file: str | None
    ) -> tuple[Mask | None, tuple[int, int] | None]:
        """A local mask for a first image given by URL; its size is read from fal's
        storage only when there is a mask to check against it."""
        painted = mask_file or painted_anything(canvas)
        if not painted:
            return None, None
        cdn = self.settings.fal_cdn_url
        size = await fal_image_size(main_url, cdn_url=cdn, what="image_urls[0] (masked)")
        if mask_file:
            return await asyncio.to_thread(read_mask, mask_file, size), size
        return await asyncio.to_thread(mask_from_editor, canvas, size, invert=invert), size

    async def _check_mask_url(
        self, mask_url: str, main_size: tuple[int, int] | None, urls: Sequence[str]
    ) -> None:
        """A mask_image_url the size of the first image, where both can be read here
        (local, or on fal's media hosts); anything else is left for fal to judge."""
        cdn = self.settings.fal_cdn_url
        if not on_fal_media(mask_url, cdn):
            return
        if main_size is None:
            if not urls or not on_fal_media(urls[0], cdn):
                return
            main_size = await fal_image_size(urls[0], cdn_url=cdn, what="image_urls[0]")
        size = await fal_image_size(mask_url, cdn_url=cdn, what="mask_image_url")
        if size != main_size:
            raise InvalidInput(
                f"The mask is {size[0]}x{size[1]} but the first image is "
                f"{main_size[0]}x{main_size[1]}; they must be the same size."
            )

    # -- the run ---------------------------------------------------------------

    async def run(
        self, endpoint: Endpoint, build: Callable[[], Awaitable[Job]], caller: Caller
    ) -> AsyncIterator[Progress]:
        """Run the job `build` makes, for `caller`: progress events, then `Finished`.

        The key is chosen before the job is built (a missing key is the first thing
        to say), the job is built before a slot is taken. A finished run is in the
        caller's history before `Finished` is handed out, and its outputs are saved
        while the caller shows it. Failures raise StudioError with their sentence.
        """
        key = self._key_or_demo(caller.fal_key)
        job = await build()
        generator = self._demo if key is DEMO_KEY else self._fal
        charge = await self._charge(key, caller, self.cost(endpoint, job).total_usd)
        ran = False  # fal started running it: a charge is kept even if it is stopped then
        finished = False
        try:
            with self._stop_signal(caller, endpoint.tab) as stop:
                events = until_stopped(self._in_turn(generator, job, key, caller.visitor), stop)
                async with closing(events):
                    async for event in events:
                        ran = ran or isinstance(event, Running | Fetching | Finished)
                        if not isinstance(event, Finished):
                            yield event
                            continue
                        finished = True
                        saving = asyncio.ensure_future(self._save(event.result))
                        if caller.browser_id:
                            cost = self.cost(endpoint, job).total_usd
                            entry = entry_from_result(
                                event.result, endpoint.tab, cost, self.endpoints
                            )
                            self.history.add(caller.browser_id, entry)
                        try:
                            yield event
                        finally:
                            await saving
                        return
        except BaseException as exc:
            # Failed, or stopped (or the caller gone) before fal ran it: nothing to pay
            # for. Once fal ran it, a Stop or a closed tab keeps the charge; once it
            # finished, so does everything (GeneratorExit: the caller is done with us).
            failed = isinstance(exc, StudioError) and not isinstance(exc, Cancelled)
            if charge is not None and not finished and (failed or not ran):
                # Shielded: a closed connection must not cancel the refund itself.
                await asyncio.shield(self.budget.refund(charge))
            raise

    async def _in_turn(
        self, generator: ImageGenerator, job: Job, key: KeyChoice, visitor: str
    ) -> AsyncIterator[Progress]:
        """The job's events, once the scheduler gives the visitor a slot; `Waiting`
        events while it does not (backend/scheduler.py)."""
        started = time.monotonic()
        finished: Finished | None = None
        async with self.scheduler.slot(visitor) as wait:
            # The request's deadline covers its wait for a slot too: a call that
            # never gets one ends in a sentence, and its place in line goes. (Each
            # wait is bounded on its own: a timeout around the `yield`s would be
            # armed in whichever task drove the generator first.)
            limit = self.settings.request_timeout_s
            deadline = time.monotonic() + limit
            places = aiter(wait)
            while not wait.started:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        place = await anext(places)
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    raise waited_too_long(limit) from None
                yield Waiting(place.yours_ahead, place.running, time.monotonic() - started)
            async with closing(generator.stream(job, key)) as events:
                async for event in events:
                    if isinstance(event, Finished):
                        finished = event
                        break
                    yield event
        # The slot is free once the images are here: showing them, recording the run
        # and saving the outputs take no capacity at fal.
        if finished is not None:
            yield finished

    async def _charge(self, key: KeyChoice, caller: Caller, usd: float) -> Charge | None:
        """A run on the host's key, against the caller's daily budget (if the host set one)."""
        if key.source != "the host's key":
            return None
        return await self.budget.charge(caller.visitor, usd)

    async def compare(
        self, jobs: list[TextToImageRequest], caller: Caller
    ) -> AsyncIterator[Comparison]:
        """Run every job at once; yield the comparison at the start and as each ends.

        Each setting takes its own slot, like any run. Stop (the "compare" tab's)
        raises Cancelled and cancels the rest at fal; what had finished stays in the
        comparison last yielded.
        """
        key = self._key_or_demo(caller.fal_key)
        comparison = Comparison(jobs)
        generator = self._demo if key is DEMO_KEY else self._fal
        endpoint = self.endpoints.text_to_image
        total = sum(self.cost(endpoint, job).total_usd for job in jobs)
        charge = await self._charge(key, caller, total)
        try:
            with self._stop_signal(caller, "compare") as stop:
                race = self._race(generator, comparison, key, caller.visitor)
                async with closing(until_stopped(race, stop)) as states:
                    async for state in states:
                        yield state
        except BaseException:
            if charge is not None and not comparison.done:
                await asyncio.shield(self.budget.refund(charge))
            raise

    async def _race(
        self, generator: ImageGenerator, comparison: Comparison, key: KeyChoice, visitor: str
    ) -> AsyncIterator[Comparison]:
        async def one(index: int) -> tuple[int, tuple[GenerationResult, float] | StudioError]:
            async with self.scheduler.slot(visitor) as wait:
                await wait.granted()
                started = time.monotonic()
                try:
                    result = await finished_result(generator.stream(comparison.jobs[index], key))
                except StudioError as exc:
                    return index, exc
            await self._save(result)
            return index, (result, time.monotonic() - started)

        pending = {asyncio.ensure_future(one(i)) for i in range(len(comparison.jobs))}
        try:
            yield comparison
            while pending:
                finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in finished:
                    index, outcome = task.result()
                    comparison.done[index] = outcome
                yield comparison
        finally:
            for task in pending:  # Stop, or a closed tab: cancel the rest at fal
                task.cancel()

    def comparison_jobs(
        self,
        prompt: str,
        qualities: Sequence[str] | None,
        sizes: Sequence[str] | None,
        **values: Any,
    ) -> list[TextToImageRequest]:
        """Every quality x size asked for, each checked before any is sent."""
        return comparison_jobs(prompt, qualities, sizes, **values)

    def stop(self, session: str | None, tab: str) -> None:
        """Stop this page's run in `tab`: it ends at once with a "Stopped" sentence,
        and its request is cancelled at fal."""
        signal = self._stops.get((session or "", tab))
        if signal is not None:
            signal.set()

    @contextlib.contextmanager
    def _stop_signal(self, caller: Caller, tab: str) -> Iterator[asyncio.Event]:
        """The Stop button's signal for this page's run in `tab` (API callers, who
        have no Stop button, get one nobody sets)."""
        stop = asyncio.Event()
        slot = (caller.session, tab) if caller.session is not None else None
        if slot is not None:
            self._stops[slot] = stop
        try:
            yield stop
        finally:
            if slot is not None and self._stops.get(slot) is stop:
                del self._stops[slot]

    def _key_or_demo(self, fal_key: str | None) -> KeyChoice:
        """The request's key; DEMO_KEY when no key is configured anywhere."""
        try:
            return choose_key(
                fal_key,
                self.settings.host_key,
                host_requires_own=self.settings.require_user_key,
            )
        except MissingKey:
            if self.settings.demo_mode and not self.settings.host_key:
                return DEMO_KEY
            raise

    def key_status(self, fal_key: str | None) -> KeyStatus:
        """Which key a request would use now, for the page to say (never the key)."""
        try:
            own = clean_user_key(fal_key)
        except InvalidInput as exc:
            return KeyStatus("invalid", problem=exc.message)
        if own:
            return KeyStatus("yours")
        settings = self.settings
        if settings.require_user_key:
            return KeyStatus("required", demo=settings.demo_mode and not settings.host_key)
        if settings.has_host_key:
            return KeyStatus("host")
        return KeyStatus("missing", demo=settings.demo_mode)

    async def allowance(self, caller: Caller) -> Allowance | None:
        """What `caller` may still spend on the host's key today, if their runs use it
        and the host set a daily budget; else None."""
        if not self.budget.enabled or self.key_status(caller.fal_key).kind != "host":
            return None
        return await self.budget.allowance(caller.visitor)

    async def _save(self, result: GenerationResult) -> None:
        """Keep a copy with its parameters in the outputs folder, if the host wants one.

        A failure to save never fails the request: the images are shown anyway."""
        if self.settings.outputs_dir is None or result.key_source == DEMO_KEY.source:
            return  # placeholders are not worth keeping
        try:
            await asyncio.to_thread(save_outputs, result, self.settings.outputs_dir)
        except OSError as exc:
            log.warning("could not save outputs to %s: %s", self.settings.outputs_dir, exc)

    # -- what a form asks before a run -------------------------------------------

    def cost(self, endpoint: Endpoint, job: Job) -> CostEstimate:
        """What fal will charge for a job, by the endpoint's price rule."""
        if isinstance(job, EditDraft):
            # An image given by URL is not downloaded to be priced: it is priced as
            # the largest size the price rule counts, so a budget is never undercharged.
            sizes = [size or UNKNOWN_INPUT_SIZE for size in job.sizes]
            return endpoint.price(job.request.model_dump(), sizes)
        return endpoint.price(job.model_dump(), ())

    async def estimate(
        self, endpoint: Endpoint, values: Mapping[str, Any], images: Sequence[str] = ()
    ) -> CostEstimate:
        """The cost of the form as it stands (the prompt may still be empty).
        Raises StudioError when a value cannot be priced."""
        sizes = await asyncio.to_thread(first_image_size, images) if images else []
        return endpoint.price(whole_numbers(endpoint, values), sizes)

    def estimate_comparison(
        self, prompt: str, qualities: Sequence[str] | None, sizes: Sequence[str] | None
    ) -> tuple[int, float]:
        """(how many runs, their total estimated cost) of a Compare form."""
        jobs = self.comparison_jobs(prompt or "x", qualities, sizes)
        endpoint = self.endpoints.text_to_image
        return len(jobs), sum(self.cost(endpoint, job).total_usd for job in jobs)

    async def keep_unmasked(
        self, draft: EditDraft, results: Sequence[str], *, seam: int
    ) -> list[KeptFiles]:
        """Each result of a masked edit with the original put back outside the mask,
        and its leak map (backend/mask_lock.py); fal's files are left as they are."""
        if draft.mask is None:
            return []
        main, edit = draft.images[0].data, draft.mask.edit_area()
        seam = max(0, min(int(seam), MAX_SEAM))
        return [
            await asyncio.to_thread(keep_unmasked_files, main, edit, Path(path), seam=seam)
            for path in results
        ]

    async def canvas_image(self, path: str) -> str:
        """The main image as the canvas should show it (upright, a mode it can draw)."""
        return await asyncio.to_thread(canvas_background, path, self._canvas_dir)

    async def preview_mask(
        self,
        images: Sequence[str],
        canvas: dict[str, Any] | None,
        invert: bool,
        mask_file: str | None,
    ) -> MaskPreview | None:
        """The mask as it will be sent, over the main image; None when nothing is painted."""
        prepared = await asyncio.to_thread(read_images, images[:1])
        if not prepared:
            raise InvalidInput("Add a reference image first; the mask applies to the first.")
        mask = await asyncio.to_thread(mask_for, prepared, canvas, invert, mask_file)
        if mask is None:
            return None
        image = await asyncio.to_thread(preview, prepared[0], mask)
        return MaskPreview(image, mask.edit_fraction)

    # -- history and saved parameters ------------------------------------------------

    @staticmethod
    def new_browser_id(current: str) -> str:
        """A random id for a browser's history, kept across reloads."""
        return current or uuid.uuid4().hex

    def history_of(self, browser_id: str) -> tuple[list[HistoryEntry], float]:
        """This browser's runs with images, newest first, and what all its runs cost."""
        if not browser_id:
            return [], 0.0
        entries = [e for e in self.history.entries(browser_id) if e.image_paths]
        return entries, self.history.total_cost(browser_id)

    def result_file(self, browser_id: str, request_id: str, index: int) -> str | None:
        """The app's copy of image `index` of this browser's run `request_id`."""
        for entry in self.history.entries(browser_id) if browser_id else []:
            if entry.request_id == request_id:
                paths = entry.image_paths
                return paths[index] if 0 <= index < len(paths) else None
        return None

    def hosted_copies(self, browser_id: str, paths: Sequence[str]) -> dict[str, str]:
        """Of `paths`, the app's copies of this browser's results on fal's media hosts,
        each with its fal URL (what an edit sends instead of the file)."""
        wanted = set(paths)
        found: dict[str, str] = {}
        cdn = self.settings.fal_cdn_url
        for entry in self.history.entries(browser_id) if browser_id else []:
            for path, url in zip(entry.image_paths, entry.image_urls, strict=False):
                if path in wanted and url and on_fal_media(url, cdn):
                    found[path] = url
        return found

    async def parameters_from_file(self, path: str) -> tuple[Endpoint, dict[str, Any]]:
        """The endpoint and the prompt and parameters saved in an image this app made."""
        data = await asyncio.to_thread(read_file, path)
        sidecar = await asyncio.to_thread(sidecar_of, path)
        tab, values = parameters_for_ui(read_metadata(data, sidecar=sidecar), self.endpoints)
        return self.endpoints.by_tab(tab), values
