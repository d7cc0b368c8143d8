"""The Generate tab: `fal-ai/gpt-image-1.5`, text to image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.schema import IMAGE_SIZES, TextToImageRequest
from ui.controls import (
    Parameters,
    ResultPanel,
    Shared,
    parameter_controls,
    prompt_box,
    result_panel,
    run_buttons,
)
from ui.handlers import Studio

# The seed's own example (shared/seeds/fal-ai-gpt-image-1.5.md).
SEED_EXAMPLE = [
    "create a realistic image taken with iphone at these coordinates "
    "41°43′32″N 49°56′49″W 15 April 1912",
    "1024x1024",
    "auto",
    "high",
    1,
    "png",
    False,
]


@dataclass
class GenerateTab:
    prompt: gr.Textbox
    params: Parameters
    panel: ResultPanel

    def fields(self) -> list[Any]:
        """In the order of backend.metadata.GENERATE_FIELDS."""
        return [self.prompt, *self.params.before_fidelity(), *self.params.after_fidelity()]


def generate_tab(studio: Studio, shared: Shared) -> GenerateTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("t2i", "Describe the image you want…")
            params = parameter_controls("t2i", TextToImageRequest, IMAGE_SIZES)
            run, stop, cost = run_buttons("t2i", "Generate")
        with gr.Column(scale=3, min_width=320):
            panel = result_panel("t2i")

    tab = GenerateTab(prompt, params, panel)
    fields = tab.fields()
    gr.Examples([SEED_EXAMPLE], inputs=fields, label="Example from the API's documentation")
    inputs: list[Any] = [*fields, shared.fal_key]
    shared.on_run(
        [run.click, prompt.submit], studio.generate_in_page, inputs, panel, studio.show_history
    )
    # Stop ends the run itself (see Studio._stop); queue=False: it never waits in line.
    stop.click(studio.stop_generate, None, None, api_visibility="private", queue=False)
    api_trigger = gr.Button(visible=False, elem_id="t2i-api")
    api_trigger.click(
        studio.generate,
        inputs=params.for_api(inputs),
        outputs=panel.outputs(),
        api_name="generate",
    )
    gr.on(
        [params.quality.change, params.image_size.change, params.num_images.change, prompt.blur],
        studio.estimate_generate,
        [prompt, params.image_size, params.quality, params.num_images],
        cost,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    return tab
