"""The Generate tab: `fal-ai/gpt-image-1.5`, text to image."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.schema import IMAGE_SIZES, TextToImageRequest
from ui.controls import ResultPanel, parameter_controls, prompt_box, result_panel, run_buttons
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


def generate_tab(studio: Studio, fal_key: gr.Textbox) -> ResultPanel:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("t2i", "Describe the image you want…")
            params = parameter_controls("t2i", TextToImageRequest, IMAGE_SIZES)
            run, stop = run_buttons("t2i", "Generate")
        with gr.Column(scale=3, min_width=320):
            panel = result_panel("t2i")

    fields = [prompt, *params.before_fidelity(), *params.after_fidelity()]
    gr.Examples([SEED_EXAMPLE], inputs=fields, label="Example from the API's documentation")
    inputs: list[Any] = [*fields, fal_key]
    # The page's event ends quietly: its status line already holds the sentence
    # (a raised error would stamp a bare "Error" over the results). Programs call
    # the public `/generate`, which raises the same sentence as an error.
    event = gr.on(
        [run.click, prompt.submit],
        studio.generate_in_page,
        inputs=inputs,
        outputs=panel.outputs(),
        api_visibility="private",
        show_progress="minimal",
        show_progress_on=[panel.gallery],
    )
    stop.click(None, cancels=[event], api_visibility="private")
    api_trigger = gr.Button(visible=False, elem_id="t2i-api")
    api_trigger.click(studio.generate, inputs=inputs, outputs=panel.outputs(), api_name="generate")
    return panel
