"""Controls both tabs share: the API's parameters, the run buttons, the result panel.

Labels are the API's own field names; choices and defaults come from the
request models in `backend.schema`, which mirror the seeds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
from pydantic import BaseModel

from backend.schema import (
    BACKGROUNDS,
    INPUT_FIDELITIES,
    NUM_IMAGES_MAX,
    NUM_IMAGES_MIN,
    OUTPUT_FORMATS,
    PROMPT_MAX_CHARS,
    QUALITIES,
)


@dataclass
class Parameters:
    """The parameter controls of one tab, in the API's order."""

    image_size: gr.Dropdown
    background: gr.Dropdown
    quality: gr.Dropdown
    input_fidelity: gr.Dropdown | None
    num_images: gr.Slider
    output_format: gr.Dropdown
    sync_mode: gr.Checkbox

    def before_fidelity(self) -> list[Any]:
        return [self.image_size, self.background, self.quality]

    def after_fidelity(self) -> list[Any]:
        return [self.num_images, self.output_format, self.sync_mode]

    def for_api(self, fields: list[Any]) -> list[Any]:
        """`fields` with num_images swapped for a hidden Number a public endpoint can take.

        The Slider compares an API caller's value with its bounds before any
        handler runs, so "two" or null would end in Gradio's bare TypeError. A
        Number without bounds or rounding hands the value to the request model
        untouched, and the model says what is wrong in its own sentence.
        """
        count = gr.Number(
            value=self.num_images.value,
            label="num_images",
            info=f"How many images to make, {NUM_IMAGES_MIN} to {NUM_IMAGES_MAX}",
            precision=None,
            visible=False,
        )
        return [count if field is self.num_images else field for field in fields]


@dataclass
class Shared:
    """Components every tab's events use: created before the tabs, some shown after."""

    fal_key: gr.Textbox
    browser_id: gr.BrowserState
    history: gr.Gallery  # rendered in the History panel, below the tabs
    history_total: gr.Markdown

    def on_run(
        self,
        triggers: list[Any],
        handler: Callable[..., Any],
        inputs: list[Any],
        panel: ResultPanel,
        show_history: Callable[..., Any],
    ) -> None:
        """A tab's run in the page: status and results (and this browser's id) as it
        goes, then the History panel.

        The event ends quietly: its status line already holds the sentence (a raised
        error would stamp a bare "Error" over the results). Programs call the public
        endpoints instead, which raise the same sentence as an error.
        """
        gr.on(
            triggers,
            handler,
            inputs=[*inputs, self.browser_id],
            outputs=[*panel.outputs(), self.browser_id],
            api_visibility="private",
            show_progress="minimal",
            show_progress_on=[panel.gallery],
        ).then(
            show_history,
            self.browser_id,
            [self.history, self.history_total],
            api_visibility="private",
            show_progress="hidden",
        )


@dataclass
class ResultPanel:
    status: gr.Markdown
    gallery: gr.Gallery
    record: gr.JSON
    send_to_edit: gr.Button
    add_reference: gr.Button
    selected: gr.State  # index of the result image the user clicked, if any

    def outputs(self) -> list[Any]:
        return [self.gallery, self.record, self.status]


def prompt_box(prefix: str, placeholder: str) -> gr.Textbox:
    return gr.Textbox(
        value="",
        label="prompt",
        lines=4,
        max_length=PROMPT_MAX_CHARS,
        placeholder=placeholder,
        elem_id=f"{prefix}-prompt",
    )


def parameter_controls(
    prefix: str, model: type[BaseModel], image_sizes: tuple[str, ...]
) -> Parameters:
    """Every parameter of `model` (besides prompt and images) as a control."""
    fields = model.model_fields

    def dropdown(name: str, choices: tuple[str, ...], info: str) -> gr.Dropdown:
        return gr.Dropdown(
            list(choices),
            value=fields[name].default,
            label=name,
            info=info,
            elem_id=f"{prefix}-{name.replace('_', '-')}",
        )

    with gr.Row():
        size_info = "auto follows the first image" if "auto" in image_sizes else "Width x height"
        image_size = dropdown("image_size", image_sizes, size_info)
        quality = dropdown("quality", QUALITIES, "Higher is slower and costs more")
    with gr.Row():
        background = dropdown("background", BACKGROUNDS, "transparent needs png or webp")
        output_format = dropdown("output_format", OUTPUT_FORMATS, "File format of the results")
    input_fidelity = None
    if "input_fidelity" in fields:
        input_fidelity = dropdown(
            "input_fidelity", INPUT_FIDELITIES, "How closely to keep the input's details"
        )
    num_images = gr.Slider(
        NUM_IMAGES_MIN,
        NUM_IMAGES_MAX,
        value=fields["num_images"].default,
        step=1,
        precision=0,
        label="num_images",
        info="How many images to make",
        elem_id=f"{prefix}-num-images",
    )
    sync_mode = gr.Checkbox(
        value=fields["sync_mode"].default,
        label="sync_mode",
        info="Return images inline as data URIs; fal keeps no copy in its request history",
        elem_id=f"{prefix}-sync-mode",
    )
    return Parameters(
        image_size, background, quality, input_fidelity, num_images, output_format, sync_mode
    )


def run_buttons(prefix: str, label: str) -> tuple[gr.Button, gr.Button, gr.Markdown]:
    with gr.Row():
        run = gr.Button(label, variant="primary", elem_id=f"{prefix}-run", scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", scale=1)
    cost = gr.Markdown("", elem_id=f"{prefix}-cost")
    return run, stop, cost


def result_panel(prefix: str, columns: int = 2) -> ResultPanel:
    status = gr.Markdown("", elem_id=f"{prefix}-status", elem_classes=["status"])
    gallery = gr.Gallery(
        label="Results",
        columns=columns,
        height="auto",
        object_fit="contain",
        interactive=False,
        buttons=["download", "fullscreen"],
        elem_id=f"{prefix}-gallery",
    )
    with gr.Row():
        send_to_edit = gr.Button(
            "Send to edit", size="sm", elem_id=f"{prefix}-send-to-edit", min_width=120
        )
        add_reference = gr.Button(
            "Add as reference", size="sm", elem_id=f"{prefix}-add-reference", min_width=120
        )
    with gr.Accordion("Details", open=False):
        record = gr.JSON(label="Request record", elem_id=f"{prefix}-record")
    selected = gr.State(None)
    gallery.select(_clicked_index, None, selected, api_visibility="private", queue=False)
    # New results: an old click no longer points at the same image.
    gallery.change(lambda: None, None, selected, api_visibility="private", queue=False)
    return ResultPanel(status, gallery, record, send_to_edit, add_reference, selected)


def _clicked_index(event: gr.SelectData) -> int:
    return int(event.index)
