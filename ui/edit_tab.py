"""The Edit tab: `fal-ai/gpt-image-1.5/edit`, reference images and a painted mask."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from backend.schema import EDIT_IMAGE_SIZES, MAX_REFERENCE_IMAGES, EditRequest
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

# The seed's example prompt, with an image we drew ourselves (ui/examples/).
EXAMPLE_PROMPT = (
    "Same workers, same beam, same lunch boxes - but they're all on their phones now. "
    "One is taking a selfie. One is on a call looking annoyed. Same danger, new "
    "priorities. A hard hat has AirPods."
)
EXAMPLE_IMAGE = Path(__file__).parent / "examples" / "workers-on-a-beam.png"


@dataclass
class EditTab:
    references: gr.Gallery
    prompt: gr.Textbox
    params: Parameters
    panel: ResultPanel

    def fields(self) -> list[Any]:
        """In the order of ui.handlers.EDIT_FIELDS."""
        assert self.params.input_fidelity is not None
        return [
            self.prompt,
            *self.params.before_fidelity(),
            self.params.input_fidelity,
            *self.params.after_fidelity(),
        ]


_MASK_NOTE = (
    "Drop, paste or upload images above; select one and click *Make main* to edit it "
    "instead. Paint over the area to change on the main image below. The model treats "
    "the mask as **guidance**: it may still touch other parts of the image. Nothing "
    "painted means the whole image may change."
)


def edit_tab(studio: Studio, shared: Shared) -> EditTab:
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=320):
            prompt = prompt_box("edit", "Describe the change, e.g. 'give the cat a red scarf'")
            references = gr.Gallery(
                label=f"Reference images (up to {MAX_REFERENCE_IMAGES}) · the first is edited",
                type="filepath",
                interactive=True,
                sources=["upload", "clipboard"],
                file_types=["image"],
                columns=4,
                height=220,
                object_fit="contain",
                elem_id="edit-references",
            )
            with gr.Row():
                make_main = gr.Button(
                    "Make main: edit the selected image", size="sm", elem_id="edit-make-main"
                )
                load_example = gr.Button("Load the example", size="sm", elem_id="edit-load-example")
            gr.Markdown(_MASK_NOTE)
            canvas = gr.ImageMask(
                label="Main image: paint the area to edit",
                type="numpy",
                sources=[],
                layers=False,
                transforms=[],
                format="png",
                brush=gr.Brush(
                    colors=["rgba(255, 0, 255, 0.6)"], color_mode="fixed", default_size=48
                ),
                eraser=gr.Eraser(default_size=48),
                height=460,
                elem_id="edit-canvas",
            )
            with gr.Row():
                invert = gr.Checkbox(
                    label="invert: edit everything except what I painted",
                    elem_id="edit-invert",
                )
                preview_button = gr.Button("Preview mask", size="sm", elem_id="edit-preview")
            with gr.Accordion("Mask preview, or upload a ready-made mask", open=False):
                preview_text = gr.Markdown("", elem_id="edit-preview-text")
                preview = gr.Image(
                    label="Mask as it will be sent (tinted = edited)",
                    interactive=False,
                    format="png",
                    elem_id="edit-preview-image",
                )
                mask_file = gr.File(
                    label="Ready-made mask: a PNG the size of the main image whose "
                    "transparent pixels mark the area to edit (used instead of painting)",
                    file_types=["image"],
                    type="filepath",
                    elem_id="edit-mask-file",
                )
        with gr.Column(scale=2, min_width=320):
            params = parameter_controls("edit", EditRequest, EDIT_IMAGE_SIZES)
            run, stop, cost = run_buttons("edit", "Edit")
            panel = result_panel("edit")

    shown_main = gr.State(None)
    selected = gr.State(None)
    assert params.input_fidelity is not None
    parameters: list[Any] = [
        *params.before_fidelity(),
        params.input_fidelity,
        *params.after_fidelity(),
    ]

    references.change(
        studio.show_main_image,
        inputs=[references, shown_main],
        outputs=[canvas, shown_main],
        api_visibility="private",
        show_progress="hidden",
    )
    references.select(
        studio.remember_selection, None, selected, api_visibility="private", queue=False
    )
    make_main.click(studio.make_main, [references, selected], references, api_visibility="private")
    load_example.click(
        lambda: (EXAMPLE_PROMPT, [str(EXAMPLE_IMAGE)]),
        None,
        [prompt, references],
        api_visibility="private",
    )
    gr.on(
        [preview_button.click, invert.change],
        studio.preview_mask,
        inputs=[references, canvas, invert, mask_file],
        outputs=[preview, preview_text],
        api_visibility="private",
    )

    shared.on_run(
        [run.click, prompt.submit],
        studio.edit_in_page,
        [prompt, references, canvas, invert, mask_file, *parameters, shared.fal_key],
        panel,
        studio.show_history,
    )
    # Stop ends the run itself (see Studio._stop); queue=False: it never waits in line.
    stop.click(studio.stop_edit, None, None, api_visibility="private", queue=False)

    # The public `/edit`: plain files in, as a program has them.
    images_in = gr.File(label="images", file_count="multiple", file_types=["image"], visible=False)
    mask_in = gr.File(label="mask", file_types=["image"], visible=False)
    api_trigger = gr.Button(visible=False, elem_id="edit-api")
    api_trigger.click(
        studio.edit,
        inputs=[prompt, images_in, mask_in, *params.for_api(parameters), shared.fal_key],
        outputs=panel.outputs(),
        api_name="edit",
    )
    assert params.input_fidelity is not None
    gr.on(
        [
            params.quality.change,
            params.image_size.change,
            params.num_images.change,
            params.input_fidelity.change,
            references.change,
            prompt.blur,
        ],
        studio.estimate_edit,
        [
            prompt,
            references,
            params.image_size,
            params.quality,
            params.input_fidelity,
            params.num_images,
        ],
        cost,
        api_visibility="private",
        show_progress="hidden",
    )
    return EditTab(references, prompt, params, panel)
