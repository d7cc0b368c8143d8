"""The Generate tab: `fal-ai/gpt-image-1.5`, text to image."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend.schema import IMAGE_SIZES, TextToImageRequest
from ui.controls import parameter_controls, prompt_box, result_panel, run_buttons
from ui.handlers import Studio


def generate_tab(studio: Studio, fal_key: gr.Textbox) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("t2i", "Describe the image you want…")
            params = parameter_controls("t2i", TextToImageRequest, IMAGE_SIZES)
            run, stop = run_buttons("t2i", "Generate")
        with gr.Column(scale=3, min_width=320):
            panel = result_panel("t2i")

    inputs: list[Any] = [prompt, *params.before_fidelity(), *params.after_fidelity(), fal_key]
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
