"""The Compare tab: one prompt at several settings, side by side, started together."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, get_args

import gradio as gr

from backend.endpoints import Endpoint
from backend.service import (
    Caller,
    Cancelled,
    Comparison,
    RunService,
    StudioError,
    format_usd,
)
from ui.controls import ResultPanel, Shared, result_panel, shortcut_hint
from ui.forms import prompt_box
from ui.progress import describe_error
from ui.runs import CLEARED, Outputs, caller_of, for_api, for_page, wire_stop


def compare_tab(service: RunService, shared: Shared, endpoint: Endpoint) -> ResultPanel:
    def choices(name: str) -> list[str]:
        return list(get_args(endpoint.field(name).annotation))

    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("cmp", "One prompt, several settings…")
            qualities = gr.CheckboxGroup(
                choices("quality"),
                value=choices("quality"),
                label="quality",
                info="Each one checked is a run",
                elem_id="cmp-qualities",
            )
            sizes = gr.CheckboxGroup(
                choices("image_size"),
                value=[endpoint.field("image_size").default],
                label="image_size",
                info="…times each size checked (at most 9 runs)",
                elem_id="cmp-sizes",
            )
            with gr.Row():
                background = gr.Dropdown(
                    choices("background"),
                    value=endpoint.field("background").default,
                    label="background",
                    elem_id="cmp-background",
                )
                output_format = gr.Dropdown(
                    choices("output_format"),
                    value=endpoint.field("output_format").default,
                    label="output_format",
                    elem_id="cmp-output-format",
                )
            with gr.Row(elem_classes=["run-row"]):
                run = gr.Button("Compare", variant="primary", elem_id="cmp-run", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="cmp-stop", scale=1)
            shortcut_hint("cmp")
            cost = gr.Markdown("", elem_id="cmp-cost")
        with gr.Column(scale=3, min_width=320):
            panel = result_panel("cmp", columns=3)

    async def compared_as_it_goes(
        caller: Caller,
        prompt: str,
        qualities: list[str] | None,
        sizes: list[str] | None,
        background: str,
        output_format: str,
    ) -> AsyncIterator[Outputs]:
        """Status lines as the settings finish, then (images, records, sentence); a
        failure is its sentence in the status line, then raised."""
        state: Comparison | None = None
        try:
            jobs = service.comparison_jobs(
                prompt, qualities, sizes, background=background, output_format=output_format
            )
            async for state in service.compare(jobs, caller):
                finished = len(state.done)
                yield (
                    *CLEARED,
                    f"⏳ {finished} of {len(jobs)} settings finished · {state.elapsed_s:.1f} s",
                )
        except Cancelled:
            if state is not None:
                yield compared(state, stopped=True)
            return
        except StudioError as exc:
            yield *CLEARED, describe_error(exc.message)
            raise
        assert state is not None  # compare() always yields once, at the start
        yield compared(state)

    async def compare_in_page(
        request: gr.Request,
        fal_key: str,
        browser_id: str,
        prompt: str,
        qualities: list[str] | None,
        sizes: list[str] | None,
        background: str,
        output_format: str,
    ) -> AsyncIterator[Any]:
        # The page's own handler, so each setting's run is in this browser's history.
        browser_id = service.views.new_browser_id(browser_id)
        caller = caller_of(service, request, fal_key, browser_id=browser_id, page=True)
        outputs = compared_as_it_goes(caller, prompt, qualities, sizes, background, output_format)
        async for item in for_page(outputs, browser_id):
            yield item

    async def compare(
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
        caller = caller_of(service, request, fal_key)
        outputs = compared_as_it_goes(caller, prompt, qualities, sizes, background, output_format)
        async for item in for_api(outputs):
            yield item

    def compared(state: Comparison, *, stopped: bool = False) -> Outputs:
        gallery, records, failures = [], [], []
        for index, job in enumerate(state.jobs):
            setting = f"{job.quality} · {job.image_size}"
            outcome = state.done.get(index)
            if isinstance(outcome, tuple):
                result, seconds = outcome
                price = format_usd(service.cost(endpoint, job).total_usd)
                for image in result.images:
                    gallery.append((image.path, f"{setting} · {seconds:.1f} s · {price}"))
                records.append(
                    {"setting": setting, "seconds": round(seconds, 2), **result.record()}
                )
            else:
                reason = outcome.message if isinstance(outcome, StudioError) else "stopped"
                failures.append(f"{setting}: {reason}")
        total = len(state.jobs)
        status = f"✅ {len(records)} of {total} settings, side by side."
        if stopped and len(state.done) < total:
            status = (
                f"⏹️ Stopped: {len(records)} of {total} settings had finished and are shown; "
                "the rest were cancelled at fal."
            )
        elif failures:
            status = f"⚠️ {len(records)} of {total} settings finished. " + " ".join(failures)
        return gallery, records, status

    def estimate(prompt: str, qualities: list[str] | None, sizes: list[str] | None) -> str:
        try:
            count, total = service.estimate_comparison(prompt, qualities, sizes)
        except StudioError as exc:
            return exc.message
        runs = "run" if count == 1 else "runs"
        return f"{count} {runs} · estimated cost: **≈ {format_usd(total)}**"

    inputs = {
        "prompt": prompt,
        "qualities": qualities,
        "sizes": sizes,
        "background": background,
        "output_format": output_format,
    }
    shared.on_run([run.click, prompt.submit], compare_in_page, inputs, panel)
    wire_stop(stop, service, "compare")
    # The public endpoint: one hidden trigger, the same core as the page.
    gr.Button(visible=False, elem_id="cmp-api").click(
        compare,
        inputs=[prompt, qualities, sizes, background, output_format, shared.fal_key],
        outputs=panel.outputs(),
        api_name="compare",
    )
    gr.on(
        [qualities.change, sizes.change, prompt.blur],
        estimate,
        [prompt, qualities, sizes],
        cost,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    return panel
