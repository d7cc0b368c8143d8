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
import dataclasses
import logging
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from backend.agent_inputs import agent_images
from backend.batch import (
    EMPTY_BATCH,
    Batch,
    BatchItem,
    LiveBatch,
    batch_jobs,
    failed,
    read_prompt_file,
    state_of,
)
from backend.budget import Allowance, Budget, Charge
from backend.client import ImageClient, Job, Resumed
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
from backend.history import COMPARISON_GROUP, History, HistoryEntry, Status
from backend.history_views import HistoryViews
from backend.images import PreparedImage
from backend.inputs import (
    canvas_background,
    first_image_size,
    mask_for,
    preview,
    read_images,
    read_mask,
)
from backend.keys import KeyChoice, choose_key, clean_user_key
from backend.mask_lock import DEFAULT_SEAM, MAX_SEAM, KeptFiles, keep_unmasked_files
from backend.masks import Mask, mask_from_editor, painted_anything
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
    LiveRun,
    MaskPreview,
    comparison_jobs,
    finished_result,
    job_prompt,
    new_run,
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
    "Batch",
    "Caller",
    "Cancelled",
    "Comparison",
    "CostEstimate",
    "EditDraft",
    "Fetching",
    "Finished",
    "HistoryEntry",
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

# A batch's table is updated at most this often (and whenever an item ends).
_BATCH_EVERY_S = 0.5


class RunService:
    """Runs jobs for callers, and answers the questions a form asks before one."""

    def __init__(
        self,
        settings: Settings,
        *,
        fal: ImageGenerator,
        demo: ImageGenerator,
        endpoints: Registry = ENDPOINTS,
    ) -> None:
        self.settings = settings
        self.endpoints = endpoints
        self._fal = fal
        self._demo = demo
        self.scheduler = Scheduler(settings.concurrency_limit, settings.max_waiting_per_visitor)
        self._proxies = TrustedProxies.of(settings.trusted_proxy_list)
        self.database = Database(settings.data_folder)
        self.budget = Budget(self.database, settings.host_key_budget_usd)
        self.history = History(self.database, settings.kept_dir)
        # What the page reads of the history: per browser, or "All runs" locally.
        self.views = HistoryViews(self.history, settings, endpoints)
        # A crash left these runs unfinished: say so, and keep their fal request id.
        # Only when no other app process uses the folder: its runs under way are its own.
        if not self.database.alone:
            log.info(
                "another app process is using the data folder %s: its runs under way "
                "are left to it",
                self.database.path.parent,
            )
        elif interrupted := self.history.recover():
            log.info(
                "%d run(s) left unfinished by the last stop are marked interrupted", interrupted
            )
        self.database.started()
        # The browser's history id is kept encrypted in its local storage; with a
        # secret made anew at each start (Gradio's default), a restart would lose it.
        self.browser_id_secret = self.database.kept_secret("browser-id")
        # The runs under way, each in its own task, by run id; the batches, by batch id.
        self._live: dict[str, LiveRun] = {}
        self._batches: dict[str, LiveBatch] = {}
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
        to say), the job is built before a slot is taken. The run is recorded in
        history before anything is sent, and runs in a task of its own (`LiveRun`)
        that this generator follows. A page's run that reached fal belongs to its
        browser: if the page goes away, the run goes on, lands in history, and a
        reopened page can follow it again (`follow`). A run that had not reached
        fal, or an API caller's, is cancelled with its caller. Failures raise
        StudioError with their sentence.
        """
        key = self._key_or_demo(caller.fal_key)
        job = await build()
        live = await self._launch(endpoint, job, key, caller)
        async with closing(self._follow(live, owner=caller)) as events:
            async for event in events:
                yield event

    async def _launch(
        self,
        endpoint: Endpoint,
        job: Job,
        key: KeyChoice,
        caller: Caller,
        *,
        stop_button: bool = True,
    ) -> LiveRun:
        """Charge the run (a budget on the host's key), record it, and start it in a
        task of its own. `stop_button`: the page's Stop button in the tab ends it
        (a batch has its own)."""
        generator = self._demo if key is DEMO_KEY else self._fal
        cost = self.cost(endpoint, job).total_usd
        charge = await self._charge(key, caller, cost)
        try:
            run_id = await self.history.start(new_run(endpoint, job, key, caller, cost))
        except BaseException:
            if charge is not None:
                await asyncio.shield(self.budget.refund(charge))
            raise
        live = LiveRun(run_id, endpoint.tab, caller.browser_id, job, session=caller.session)
        self._live[run_id] = live
        if stop_button:
            self._attach(live, caller.session)
        live.task = asyncio.create_task(self._drive(live, generator, job, key, caller, charge))
        return live

    async def _drive(
        self,
        live: LiveRun,
        generator: ImageGenerator,
        job: Job,
        key: KeyChoice,
        caller: Caller,
        charge: Charge | None,
    ) -> None:
        """The run itself, in its own task: events published to `live` for whoever
        follows it; the outcome recorded in history."""
        ran = False  # fal started running it: a charge is kept even if it is stopped then
        finished = False
        try:
            events = until_stopped(self._in_turn(generator, job, key, caller.visitor), live.stop)
            async with closing(events):
                async for event in events:
                    ran = ran or isinstance(event, Running | Fetching | Finished)
                    if isinstance(event, Submitted):
                        live.reached_fal = True
                        await self.history.submitted(live.run_id, event.request_id)
                    if isinstance(event, Finished):
                        finished = True
                        # Shown at once; the run ends once its files are kept.
                        live.publish(event)
                        await self._keep(live.run_id, event.result)
                        break
                    live.publish(event)
        except asyncio.CancelledError:
            # Its caller went away: before fal had the request, the run leaves no trace;
            # after (an API caller's), it was cancelled at fal and says so. Once fal
            # ran it, the charge is kept, as for Stop.
            if live.reached_fal:
                ending = self._ended(live.run_id, "stopped", Cancelled().message)
            else:
                ending = self.history.forget(live.run_id)
            with contextlib.suppress(Exception):
                await asyncio.shield(ending)
            if charge is not None and not finished and not ran:
                await asyncio.shield(self.budget.refund(charge))
            live.end(Cancelled("Stopped before anything was sent to fal."))
            raise
        except StudioError as exc:
            stopped = isinstance(exc, Cancelled)
            if charge is not None and not finished and (not stopped or not ran):
                await asyncio.shield(self.budget.refund(charge))
            await self._ended(live.run_id, "stopped" if stopped else "failed", exc.message)
            live.end(exc)
            return
        except Exception:
            log.exception("a run failed on our side")
            if charge is not None and not finished:
                await asyncio.shield(self.budget.refund(charge))
            await self._ended(live.run_id, "failed", InternalError().message)
            live.end(InternalError())
            return
        finally:
            self._live.pop(live.run_id, None)
            self._detach(live.stop)
        live.end(None)

    async def _keep(self, run_id: str, result: GenerationResult) -> None:
        """The run's files kept and the run marked finished. A failure to keep the
        files never fails the request: the images were shown anyway."""
        try:
            await self.history.finish(run_id, result)
        except OSError as exc:
            log.warning("could not keep the outputs of a run: %s", exc)
            await self._ended(run_id, "failed", "The images could not be saved on the server.")

    async def _ended(self, run_id: str, status: Status, error: str) -> None:
        try:
            await self.history.end(run_id, status, error)
        except sqlite3.Error as exc:  # the run's own sentence matters more
            log.warning("could not record the end of a run: %s", exc)

    async def _follow(
        self, live: LiveRun, *, owner: Caller | None = None
    ) -> AsyncIterator[Progress]:
        """`live`'s events as they come, ending with `Finished` (or its error raised).

        The run's owner leaving early (its page closed) cancels the run only if fal
        has not got it yet, or if there is no browser it could come back to."""
        try:
            async for event in live.events():
                yield event
                if isinstance(event, Finished):
                    # The event ends once the copy is kept (its history entry complete).
                    await asyncio.shield(live.done.wait())
                    return
        except (GeneratorExit, asyncio.CancelledError):
            task = live.task
            running = task is not None and not task.done()
            if live.finished:
                # The caller has its result and is done with us: the run still keeps
                # its files, and the caller's event ends once they are kept (a History
                # refresh after it then finds them).
                await asyncio.shield(live.done.wait())
            elif owner is not None and running and (not live.reached_fal or not owner.browser_id):
                assert task is not None
                task.cancel()
                # Its slot and its place in line are free once the caller is done.
                await asyncio.wait({task})
            raise

    def live_runs(self, browser_id: str, tab: str) -> list[LiveRun]:
        """This browser's runs under way in `tab`, oldest first."""
        if not browser_id:
            return []
        return [r for r in self._live.values() if r.browser_id == browser_id and r.tab == tab]

    async def follow(self, run_id: str, session: str | None) -> AsyncIterator[Progress]:
        """Follow a run under way from a reopened page, whose Stop button now ends it."""
        live = self._live.get(run_id)
        if live is None:
            return
        self._attach(live, session)
        async with closing(self._follow(live)) as events:
            async for event in events:
                yield event

    def _attach(self, live: LiveRun, session: str | None) -> None:
        """The page `session`'s Stop button in the run's tab ends this run."""
        if session is not None:
            live.session = session
            self._stops[(session, live.tab)] = live.stop

    def page_closed(self, session: str | None) -> None:
        """A page went away (closed, reloaded): its runs that fal has not got yet
        (waiting for a slot, uploading) are dropped; the others go on, and belong
        to the browser."""
        for live in list(self._live.values()):
            if live.session == session and not live.reached_fal and live.task is not None:
                live.task.cancel()

    def _detach(self, signal: asyncio.Event) -> None:
        """No page's Stop button ends this run or batch any more (it has ended)."""
        for slot in [slot for slot, stop in self._stops.items() if stop is signal]:
            del self._stops[slot]

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
                # Each setting is a run in history; together, one group.
                grouped = dataclasses.replace(caller, batch_id=COMPARISON_GROUP + uuid.uuid4().hex)
                race = self._race(generator, comparison, key, grouped)
                async with closing(until_stopped(race, stop)) as states:
                    async for state in states:
                        yield state
        except BaseException:
            if charge is not None and not comparison.done:
                await asyncio.shield(self.budget.refund(charge))
            raise

    async def _race(
        self, generator: ImageGenerator, comparison: Comparison, key: KeyChoice, caller: Caller
    ) -> AsyncIterator[Comparison]:
        endpoint = self.endpoints.text_to_image

        async def one(index: int) -> tuple[int, tuple[GenerationResult, float] | StudioError]:
            job = comparison.jobs[index]
            cost = self.cost(endpoint, job).total_usd
            run_id = await self.history.start(new_run(endpoint, job, key, caller, cost))
            sent = False
            try:
                async with self.scheduler.slot(caller.visitor) as wait:
                    await wait.granted()
                    started = time.monotonic()
                    try:
                        async with closing(generator.stream(job, key)) as events:
                            async for event in events:
                                if isinstance(event, Submitted):
                                    sent = True
                                    await self.history.submitted(run_id, event.request_id)
                                if isinstance(event, Finished):
                                    result = event.result
                                    break
                    except StudioError as exc:
                        await self._ended(run_id, "failed", exc.message)
                        return index, exc
                await self._keep(run_id, result)
                return index, (result, time.monotonic() - started)
            except asyncio.CancelledError:
                # Stop, or a closed tab: recorded as stopped if fal had it, else forgotten.
                ending = (
                    self._ended(run_id, "stopped", Cancelled().message)
                    if sent
                    else self.history.forget(run_id)
                )
                await asyncio.shield(ending)
                raise

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

    # -- batches -------------------------------------------------------------------

    def batch_jobs(self, endpoint: Endpoint, text: str, values: Mapping[str, Any]) -> list[Job]:
        """A batch's runs from its prompt list or CSV and the current parameters, each
        checked before any is sent. Raises InvalidInput (an empty batch included)."""
        base = {k: v for k, v in values.items() if k != "prompt"}
        return batch_jobs(text, base, endpoint, max_items=self.settings.batch_max_prompts)

    async def read_prompt_file(self, path: str) -> str:
        """The text of an uploaded prompt list or CSV. Raises InvalidInput."""
        return await asyncio.to_thread(read_prompt_file, path)

    def estimate_batch(
        self, endpoint: Endpoint, text: str, values: Mapping[str, Any]
    ) -> tuple[int, float]:
        """(how many runs, their total estimated cost). Raises InvalidInput."""
        jobs = self.batch_jobs(endpoint, text, values)
        return len(jobs), sum(self.cost(endpoint, job).total_usd for job in jobs)

    async def batch(
        self, endpoint: Endpoint, jobs: Sequence[Job], caller: Caller
    ) -> AsyncIterator[Batch]:
        """Run every job, at most `batch_concurrency` at once, each through the fair
        scheduler as the caller's run (so a batch never starves other visitors) and
        into history as one batch. Yields the batch as its items progress (at most
        every `_BATCH_EVERY_S`), and once more at the end.

        The batch runs in a task of its own. A page's batch (a caller with a browser
        id) belongs to the browser: if the page goes, the batch goes on, and the
        browser's next page follows it (`live_batch`, `follow_batch`). An API
        caller's batch ends with its caller. Stop (the "batch" tab's) cancels what
        has not finished, at fal too, and keeps what has; the batch then ends
        normally, its stopped items saying so.
        """
        if not jobs:
            raise InvalidInput(EMPTY_BATCH)
        key = self._key_or_demo(caller.fal_key)
        batch = Batch([BatchItem(i, job_prompt(job)) for i, job in enumerate(jobs)])
        live = LiveBatch(batch, caller.browser_id)
        live.task = asyncio.create_task(self._drive_batch(live, endpoint, jobs, key, caller))
        self._batches[batch.batch_id] = live
        self._attach_batch(live, caller.session)
        states = self._follow_batch(live, cancel_on_exit=not caller.browser_id)
        async with closing(states):
            async for state in states:
                yield state

    def live_batch(self, browser_id: str) -> LiveBatch | None:
        """This browser's newest batch under way, if any."""
        mine = [b for b in self._batches.values() if browser_id and b.browser_id == browser_id]
        return mine[-1] if mine else None

    async def follow_batch(self, live: LiveBatch, session: str | None) -> AsyncIterator[Batch]:
        """Follow a batch under way from a reopened page, whose Stop batch now ends it."""
        self._attach_batch(live, session)
        states = self._follow_batch(live, cancel_on_exit=False)
        async with closing(states):
            async for state in states:
                yield state

    def _attach_batch(self, live: LiveBatch, session: str | None) -> None:
        if session is not None:
            self._stops[(session, "batch")] = live.stop

    async def _follow_batch(self, live: LiveBatch, *, cancel_on_exit: bool) -> AsyncIterator[Batch]:
        task = live.task
        assert task is not None
        try:
            while not task.done():
                yield live.batch
                await asyncio.wait({task}, timeout=_BATCH_EVERY_S)
            yield live.batch
        except (GeneratorExit, asyncio.CancelledError):
            if cancel_on_exit and not task.done():
                task.cancel()
                await asyncio.wait({task})
            raise

    async def _drive_batch(
        self,
        live: LiveBatch,
        endpoint: Endpoint,
        jobs: Sequence[Job],
        key: KeyChoice,
        caller: Caller,
    ) -> None:
        batch = live.batch
        # Grouped in history. No page session for its runs: a closed page drops the
        # runs it had not sent yet, but a batch's belong to the batch, which goes on.
        caller = dataclasses.replace(caller, batch_id=batch.batch_id, session=None)
        room = asyncio.Semaphore(self.settings.batch_concurrency)
        lives: dict[int, LiveRun] = {}

        async def one(item: BatchItem) -> None:
            async with room:
                if batch.stopped:
                    item.state = "stopped"
                    return
                try:
                    run = await self._launch(
                        endpoint, jobs[item.index], key, caller, stop_button=False
                    )
                except StudioError as exc:
                    failed(item, exc, stopped=False)
                    return
                lives[item.index] = run
                item.run_id = run.run_id
                if batch.stopped:  # Stop came while it was being launched
                    run.stop.set()
                try:
                    async with closing(self._follow(run, owner=caller)) as events:
                        async for event in events:
                            item.last = event
                            if isinstance(event, Finished):
                                item.result = event.result
                            item.state = state_of(event)
                except StudioError as exc:
                    failed(item, exc, stopped=isinstance(exc, Cancelled))

        tasks = {asyncio.ensure_future(one(item)) for item in batch.items}
        stopping = asyncio.ensure_future(live.stop.wait())
        try:
            pending: set[asyncio.Future[Any]] = set(tasks)
            while pending:
                # Once stopped, only the items are waited on (a done `stopping` would
                # end every wait at once).
                watched = pending if batch.stopped else pending | {stopping}
                done, pending = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                pending.discard(stopping)
                if stopping in done and not batch.stopped:
                    batch.stopped = True
                    for run in lives.values():
                        run.stop.set()  # cancelled at fal; finished ones are kept
        except Exception:
            log.exception("a batch failed on our side")
        finally:
            stopping.cancel()
            for task in tasks:  # cancelled (an API caller went): so are the runs not at fal
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for item in batch.items:
                if item.state == "waiting":
                    item.state = "stopped"
            self._batches.pop(batch.batch_id, None)
            self._detach(live.stop)

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

    # -- history: what runs through fal again ---------------------------------------

    async def fetch_again(self, caller: Caller, run_id: str) -> HistoryEntry:
        """An interrupted run's result, fetched from fal by its request id (nothing is
        sent again), kept, and the run marked finished. Raises StudioError."""
        whose = (
            caller.browser_id if caller.browser_id or not self.views.all_runs_allowed() else None
        )
        entry = await self.history.get(whose, run_id) if run_id else None
        if entry is None or not entry.can_fetch:
            raise InvalidInput(
                "This run has no result to fetch from fal: choose an interrupted run "
                "in the History tab."
            )
        key = self._key_or_demo(caller.fal_key)
        if key is DEMO_KEY or not isinstance(self._fal, ImageClient):
            raise MissingKey("Fetching a result needs the fal key the run used: paste it above.")
        job = Resumed(
            entry.endpoint, entry.request_id, {"prompt": entry.prompt, **entry.parameters}
        )
        await self.history.end(run_id, "running")
        try:
            async with self.scheduler.slot(caller.visitor) as wait:
                await wait.granted()
                result = await finished_result(self._fal.stream(job, key))
            kept = await self.history.finish(run_id, result)
        except BaseException as exc:
            message = exc.message if isinstance(exc, StudioError) else InternalError().message
            await asyncio.shield(self.history.end(run_id, "interrupted", message))
            raise
        assert kept is not None
        return kept
