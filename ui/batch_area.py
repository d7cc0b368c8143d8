"""The Generate tab's Batch area, and the public `/batch` endpoint.

Many prompts with the tab's current parameters: one per line, or a CSV with a
`prompt` column and columns named like parameters (which override them). The
count and the total estimated cost show before anything starts; each prompt's
progress shows in a table as the batch runs; Stop ends what has not finished
and keeps what has.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.endpoints import Endpoint
from backend.service import Batch, RunService, StudioError, format_usd
from ui.controls import Shared
from ui.forms import Form
from ui.progress import describe_error
from ui.runs import caller_of

_STATES = {
    "waiting": "⏳ waiting",
    "sending": "⬆️ sending",
    "queued": "🕒 in fal's queue",
    "running": "🎨 generating",
    "done": "✅ done",
    "failed": "❌ failed",
    "stopped": "⏹️ stopped",
}
# The public endpoint's parameters besides `prompts` and `fal_key` (the issue's
# signature): the text-to-image parameters a batch varies, sync_mode left at its default.
API_PARAMETERS = ("image_size", "background", "quality", "num_images", "output_format")


@dataclass
class BatchArea:
    """What the page's load needs: a browser's batch still under way is followed again."""

    resume: Callable[[gr.Blocks], None]


def batch_area(service: RunService, shared: Shared, endpoint: Endpoint, form: Form) -> BatchArea:
    """Layout and handlers; the form's controls are the batch's parameters."""
    with gr.Accordion("Batch: many prompts at once", open=False, elem_id="t2i-batch") as area:
        with gr.Row():
            prompts = gr.Textbox(
                label="Prompts: one per line, or a CSV with a prompt column",
                info="CSV columns named like a parameter (quality, image_size…) override "
                "the values above for that row.",
                lines=6,
                max_lines=20,
                scale=3,
                elem_id="t2i-batch-prompts",
            )
            upload = gr.File(
                label="…or upload a .txt or .csv",
                file_types=[".txt", ".csv"],
                type="filepath",
                height=120,
                scale=1,
                elem_id="t2i-batch-file",
            )
        summary = gr.Markdown("", elem_id="t2i-batch-summary")
        with gr.Row():
            run = gr.Button("Run batch", variant="primary", scale=3, elem_id="t2i-batch-run")
            stop = gr.Button("Stop batch", variant="stop", scale=1, elem_id="t2i-batch-stop")
        status = gr.Markdown("", elem_id="t2i-batch-status", elem_classes=["status"])
        gallery = gr.Gallery(
            label="Batch results",
            columns=4,
            height="auto",
            object_fit="contain",
            interactive=False,
            elem_id="t2i-batch-gallery",
        )
        with gr.Accordion("Records", open=False):
            records = gr.JSON(label="One record per prompt", elem_id="t2i-batch-records")

    def estimate(batch_prompts: str, **values: Any) -> str:
        if not (batch_prompts or "").strip():
            return ""
        try:
            count, total = service.estimate_batch(endpoint, batch_prompts, values)
        except StudioError as exc:
            return describe_error(exc.message)
        runs = "prompt" if count == 1 else "prompts"
        return f"**{count} {runs}** · estimated cost **{format_usd(total)}** in all"

    async def load_file(file: str | None) -> Any:
        if not file:
            return gr.skip()
        try:
            return await service.read_prompt_file(file)
        except StudioError as exc:
            gr.Warning(exc.message)
            return gr.skip()

    async def batch_in_page(
        request: gr.Request, fal_key: str, browser_id: str, batch_prompts: str, **values: Any
    ) -> AsyncIterator[Any]:
        browser_id = service.views.new_browser_id(browser_id)
        caller = caller_of(service, request, fal_key, browser_id=browser_id, page=True)
        try:
            jobs = service.batch_jobs(endpoint, batch_prompts, values)
            async for batch in service.batch(endpoint, jobs, caller):
                yield describe_batch(batch), batch.images() or None, batch.records(), browser_id
        except StudioError as exc:
            yield describe_error(exc.message), gr.skip(), gr.skip(), gr.skip()

    async def run_batch(
        request: gr.Request, prompts: str, fal_key: str = "", **values: Any
    ) -> tuple[Any, Any, str]:
        """Generate one run per prompt with fal-ai/gpt-image-1.5, the parameters shared.

        `prompts`: one prompt per line (blank lines ignored), or a CSV with a
        `prompt` column and optional columns named like the parameters, which
        override them for their row. Returns every image, one record per prompt
        (its status, the arguments sent, fal's request id, its images or its
        error; never the key) and a sentence. An empty list is refused, with
        nothing sent. `fal_key` is the caller's own fal key; empty uses the server's.
        """
        caller = caller_of(service, request, fal_key)
        last: Batch | None = None
        try:
            jobs = service.batch_jobs(endpoint, prompts, values)
            async for batch in service.batch(endpoint, jobs, caller):
                last = batch
        except StudioError as exc:
            raise gr.Error(exc.message, print_exception=False) from None
        assert last is not None
        return last.images(), last.records(), summary_line(last)

    inputs = {**form.inputs(), "batch_prompts": prompts}
    gr.on(
        [prompts.change, *(control.change for control in form.controls.values())],
        estimate,
        inputs_kwargs={k: v for k, v in inputs.items() if k != "prompt"},
        outputs=summary,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    upload.upload(load_file, upload, prompts, api_visibility="private")
    gr.on(
        [run.click],
        batch_in_page,
        inputs_kwargs={**inputs, "fal_key": shared.fal_key, "browser_id": shared.browser_id},
        outputs=[status, gallery, records, shared.browser_id],
        api_visibility="private",
        show_progress="minimal",
        show_progress_on=[gallery],
    ).then(
        shared.show_history,
        shared.history_inputs,
        shared.history_outputs,
        api_visibility="private",
        show_progress="hidden",
    )

    def stop_batch(request: gr.Request) -> None:
        service.stop(request.session_hash, "batch")

    stop.click(stop_batch, None, None, api_visibility="private", queue=False)

    history_outputs = len(shared.history_outputs)

    async def follow_again(
        browser_id: str, search: str, tab_filter: str, everyone: bool, request: gr.Request
    ) -> AsyncIterator[Any]:
        """A reopened page follows this browser's batch still under way (it went on
        while no page was open): the area opens on its table, and History is
        refreshed once it has ended. No batch, no update.
        (`shared.history_inputs`: the browser's id, then the History tab's filters.)"""
        unchanged = (gr.skip(),) * history_outputs
        live = service.live_batch(browser_id)
        if live is None:
            yield (gr.skip(),) * 4 + unchanged
            return
        async for batch in service.follow_batch(live, request.session_hash):
            images = batch.images() or None
            yield (
                gr.Accordion(open=True),
                describe_batch(batch),
                images,
                batch.records(),
                *unchanged,
            )
        history = await shared.show_history(browser_id, search, tab_filter, everyone)
        yield (*(gr.skip(),) * 4, *history)

    def resume(demo: gr.Blocks) -> None:
        demo.load(
            follow_again,
            shared.history_inputs,
            [area, status, gallery, records, *shared.history_outputs],
            api_visibility="private",
            show_progress="hidden",
        )

    api = form.api_inputs()
    gr.Button(visible=False, elem_id="t2i-batch-api").click(
        run_batch,
        inputs_kwargs={
            "prompts": gr.Textbox(visible=False),
            **{name: api[name] for name in API_PARAMETERS},
            "fal_key": shared.fal_key,
        },
        outputs=[gallery, records, status],
        api_name="batch",
    )
    return BatchArea(resume)


def describe_batch(batch: Batch) -> str:
    """The batch's line and its table: one row per prompt."""
    rows = "\n".join(
        f"| {item.index + 1} | {_cell(item.prompt)} | {_STATES[item.state]} |"
        f" {_cell(item.error) if item.error else ''} |"
        for item in batch.items
    )
    return f"{summary_line(batch)}\n\n| # | prompt | state | note |\n|---|---|---|---|\n{rows}"


def summary_line(batch: Batch) -> str:
    total = len(batch.items)
    done = batch.count("done")
    seconds = f"{batch.elapsed_s:.0f} s"
    if not batch.done:
        return f"⏳ Batch: {done} of {total} done · {seconds}"
    if batch.stopped:
        return f"⏹️ Batch stopped: {done} of {total} finished and kept · {seconds}"
    failed = batch.count("failed")
    if failed:
        return f"⚠️ Batch finished: {done} of {total} done, {failed} failed · {seconds}"
    return f"✅ Batch finished: all {total} done · {seconds}"


def _cell(text: str) -> str:
    """Text for one cell of a Markdown table."""
    return " ".join(text.split()).replace("|", "\\|")[:80]
