"""The Compare tab: one prompt at several settings, side by side, started together."""

from __future__ import annotations

import gradio as gr

from backend.schema import BACKGROUNDS, IMAGE_SIZES, OUTPUT_FORMATS, QUALITIES
from ui.controls import ResultPanel, Shared, prompt_box, result_panel
from ui.handlers import Studio


def compare_tab(studio: Studio, shared: Shared) -> ResultPanel:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = prompt_box("cmp", "One prompt, several settings…")
            qualities = gr.CheckboxGroup(
                list(QUALITIES),
                value=list(QUALITIES),
                label="quality",
                info="Each one checked is a run",
                elem_id="cmp-qualities",
            )
            sizes = gr.CheckboxGroup(
                list(IMAGE_SIZES),
                value=[IMAGE_SIZES[0]],
                label="image_size",
                info="…times each size checked (at most 9 runs)",
                elem_id="cmp-sizes",
            )
            with gr.Row():
                background = gr.Dropdown(
                    list(BACKGROUNDS), value="auto", label="background", elem_id="cmp-background"
                )
                output_format = gr.Dropdown(
                    list(OUTPUT_FORMATS),
                    value="png",
                    label="output_format",
                    elem_id="cmp-output-format",
                )
            with gr.Row():
                run = gr.Button("Compare", variant="primary", elem_id="cmp-run", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="cmp-stop", scale=1)
            cost = gr.Markdown("", elem_id="cmp-cost")
        with gr.Column(scale=3, min_width=320):
            panel = result_panel("cmp", columns=3)

    inputs = [prompt, qualities, sizes, background, output_format, shared.fal_key]
    gr.on(
        [run.click, prompt.submit],
        studio.compare,
        inputs=inputs,
        outputs=panel.outputs(),
        api_name="compare",
        show_progress="minimal",
        show_progress_on=[panel.gallery],
    )
    # Stop ends the run itself, showing what had finished (see Studio._stop).
    stop.click(studio.stop_compare, None, None, api_visibility="private", queue=False)
    gr.on(
        [qualities.change, sizes.change, prompt.blur],
        studio.estimate_compare,
        [prompt, qualities, sizes],
        cost,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    return panel
