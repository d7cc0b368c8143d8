"""The Generate tab: a prompt and every parameter of the text-to-image endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.endpoints import Endpoint
from backend.service import RunService, StudioError
from ui.batch_area import BatchArea, batch_area
from ui.controls import ResultPanel, Shared, result_panel, run_buttons
from ui.forms import Form, parameter_controls, prompt_box
from ui.runs import caller_of, for_api, for_page, run_outputs, wire_stop

# The example on the endpoint's API page (its "prompt" example, with its defaults).
SEED_PROMPT = (
    "create a realistic image taken with iphone at these coordinates "
    "41°43′32″N 49°56′49″W 15 April 1912"
)


@dataclass
class GenerateTab:
    form: Form
    panel: ResultPanel
    batch: BatchArea


def generate_tab(service: RunService, shared: Shared, endpoint: Endpoint) -> GenerateTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("t2i", "Describe the image you want…")
            form = Form(endpoint, prompt, parameter_controls(endpoint, "t2i"))
            run, stop, cost = run_buttons("t2i", endpoint.title)
        with gr.Column(scale=3, min_width=320):
            panel = result_panel("t2i", one_hop=True)

    example = {"prompt": SEED_PROMPT, **endpoint.defaults()}
    gr.Examples(
        [[example[name] for name in form.inputs()]],
        inputs=form.components(),
        label="Example from the API's documentation",
    )

    batch = batch_area(service, shared, endpoint, form)

    async def generate_in_page(
        request: gr.Request, fal_key: str, browser_id: str, **values: Any
    ) -> AsyncIterator[Any]:
        browser_id = service.views.new_browser_id(browser_id)
        caller = caller_of(service, request, fal_key, browser_id=browser_id, page=True)

        async def build() -> Any:
            return service.request(endpoint, values)

        async for outputs in for_page(
            run_outputs(service, endpoint, build, caller, in_page=True), browser_id
        ):
            yield outputs

    async def generate(
        request: gr.Request, fal_key: str = "", **values: Any
    ) -> AsyncIterator[tuple[Any, Any, str]]:
        """Generate images from a prompt with fal-ai/gpt-image-1.5.

        Returns the images, the JSON record of the request (arguments sent, fal
        request id, timings; never the key) and a status sentence. `fal_key` is the
        caller's own fal key; empty uses the server's.
        """
        caller = caller_of(service, request, fal_key)

        async def build() -> Any:
            return service.request(endpoint, values)

        async for outputs in for_api(run_outputs(service, endpoint, build, caller)):
            yield outputs

    async def estimate(**values: Any) -> str:
        try:
            estimate = await service.estimate(endpoint, values)
        except StudioError:
            return ""
        return f"Estimated cost: **{estimate.describe()}**"

    shared.on_run([run.click, prompt.submit], generate_in_page, form.inputs(), panel)
    wire_stop(stop, service, endpoint.tab)
    # The public endpoint: one hidden trigger, the same core as the page.
    gr.Button(visible=False, elem_id="t2i-api").click(
        generate,
        inputs_kwargs={**form.api_inputs(), "fal_key": shared.fal_key},
        outputs=panel.outputs(),
        api_name=endpoint.tab,
    )
    gr.on(
        [*(control.change for control in form.controls.values()), prompt.blur],
        estimate,
        inputs_kwargs=form.inputs(),
        outputs=cost,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    return GenerateTab(form, panel, batch)
