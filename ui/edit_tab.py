"""The Edit tab: reference images, a painted mask, and every parameter of the edit endpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from backend.endpoints import Endpoint
from backend.schema import MAX_REFERENCE_IMAGES
from backend.service import RunService, StudioError
from ui.controls import (
    ResultPanel,
    Shared,
    clicked_index,
    gallery_paths,
    result_panel,
    run_buttons,
    url_list_input,
)
from ui.forms import Form, parameter_controls, prompt_box
from ui.progress import describe_error
from ui.runs import caller_of, for_api, for_page, run_outputs, wire_stop

# The example prompt on the endpoint's API page, with an image we drew ourselves.
EXAMPLE_PROMPT = (
    "Same workers, same beam, same lunch boxes - but they're all on their phones now. "
    "One is taking a selfie. One is on a call looking annoyed. Same danger, new "
    "priorities. A hard hat has AirPods."
)
EXAMPLE_IMAGE = Path(__file__).parent / "examples" / "workers-on-a-beam.png"
EMPTY_CANVAS: dict[str, Any] = {"background": None, "layers": [], "composite": None}

_MASK_NOTE = (
    "Drop, paste or upload images above; select one and click *Make main* to edit it "
    "instead. Paint over the area to change on the main image below. The model treats "
    "the mask as **guidance**: it may still touch other parts of the image. Nothing "
    "painted means the whole image may change."
)


@dataclass
class EditTab:
    form: Form
    references: gr.Gallery
    panel: ResultPanel


def edit_tab(service: RunService, shared: Shared, endpoint: Endpoint) -> EditTab:
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
            form = Form(endpoint, prompt, parameter_controls(endpoint, "edit"))
            run, stop, cost = run_buttons("edit", endpoint.title)
            panel = result_panel("edit", one_hop=True)

    shown_main = gr.State(None)
    selected = gr.State(None)

    async def edit_in_page(
        request: gr.Request,
        fal_key: str,
        browser_id: str,
        references: list[Any] | None,
        canvas: dict[str, Any] | None,
        invert: bool,
        mask_file: str | None,
        **values: Any,
    ) -> AsyncIterator[Any]:
        browser_id = service.new_browser_id(browser_id)
        caller = caller_of(service, request, fal_key, browser_id=browser_id, page=True)
        paths = gallery_paths(references)

        # A result of this browser's on fal's media hosts goes back as its URL.
        hosted = service.hosted_copies(browser_id, paths)

        async def build() -> Any:
            return await service.edit(
                endpoint,
                values,
                paths,
                mask_file=mask_file,
                canvas=canvas,
                invert=invert,
                hosted=hosted,
            )

        async for outputs in for_page(
            run_outputs(service, endpoint, build, caller, in_page=True), browser_id
        ):
            yield outputs

    async def edit(
        request: gr.Request,
        images: list[str] | None = None,
        image_urls: Any = None,
        mask: str | None = None,
        mask_image_url: str | None = None,
        fal_key: str = "",
        **values: Any,
    ) -> AsyncIterator[tuple[Any, Any, str]]:
        """Edit images with fal-ai/gpt-image-1.5/edit.

        `images`: image files; `image_urls`: http(s) URLs fal fetches itself (a
        result's fal URL chains an edit with nothing uploaded). 1 to 16 in all,
        the files first; the first is the one edited (and the one the mask
        applies to). `mask`: optional PNG the size of the first image whose fully
        transparent pixels mark the area to edit (checked, not trusted), or
        `mask_image_url`, its URL. Returns the images, the JSON record and a
        status sentence.
        """
        caller = caller_of(service, request, fal_key)

        async def build() -> Any:
            return await service.edit(
                endpoint,
                values,
                images or [],
                image_urls=image_urls,
                mask_file=mask,
                mask_image_url=mask_image_url or None,
            )

        async for outputs in for_api(run_outputs(service, endpoint, build, caller)):
            yield outputs

    async def show_main_image(references: list[Any] | None, shown: str | None) -> Any:
        """Put the first reference image on the canvas, when it changed.

        Adding more references must not wipe the strokes on the main image, so
        the canvas is only reset when the main image itself is another one.
        """
        paths = gallery_paths(references)
        main = paths[0] if paths else None
        if main == shown:
            return gr.skip(), shown
        if main is None:
            return EMPTY_CANVAS, None
        try:
            background = await service.canvas_image(main)
        except StudioError as exc:
            gr.Warning(exc.message)
            return EMPTY_CANVAS, None
        return {"background": background, "layers": [], "composite": None}, main

    def make_main_image(references: list[Any] | None, selected: int | None) -> Any:
        """Move the selected reference to the front: it becomes the edited image."""
        items = list(references or [])
        if selected is None or not 0 < selected < len(items):
            return gr.skip()
        items.insert(0, items.pop(selected))
        # Leave the gallery's preview too: the new order is then seen at a glance.
        return gr.Gallery(value=items, selected_index=None)

    async def preview_mask(
        references: list[Any] | None,
        canvas: dict[str, Any] | None,
        invert: bool,
        mask_file: str | None,
    ) -> tuple[Any, str]:
        """The mask as it will be sent, drawn over the main image."""
        try:
            shown = await service.preview_mask(gallery_paths(references), canvas, invert, mask_file)
        except StudioError as exc:
            return None, describe_error(exc.message)
        if shown is None:
            return None, "Nothing painted: the whole image may change (no mask is sent)."
        return shown.image, (
            f"The tinted area ({shown.edit_fraction:.0%} of the image) will be edited."
        )

    async def estimate(references: list[Any] | None, **values: Any) -> str:
        try:
            estimate = await service.estimate(endpoint, values, gallery_paths(references))
        except StudioError:
            return ""
        return f"Estimated cost: **{estimate.describe()}**"

    references.change(
        show_main_image,
        inputs=[references, shown_main],
        outputs=[canvas, shown_main],
        api_visibility="private",
        show_progress="hidden",
    )
    references.select(clicked_index, None, selected, api_visibility="private", queue=False)
    make_main.click(make_main_image, [references, selected], references, api_visibility="private")
    load_example.click(
        lambda: (EXAMPLE_PROMPT, [str(EXAMPLE_IMAGE)]),
        None,
        [prompt, references],
        api_visibility="private",
    )
    gr.on(
        [preview_button.click, invert.change],
        preview_mask,
        inputs=[references, canvas, invert, mask_file],
        outputs=[preview, preview_text],
        api_visibility="private",
    )

    drawn = {"references": references, "canvas": canvas, "invert": invert, "mask_file": mask_file}
    shared.on_run([run.click, prompt.submit], edit_in_page, {**drawn, **form.inputs()}, panel)
    wire_stop(stop, service, endpoint.tab)

    # The public endpoint: plain files in, as a program has them; the same core.
    images_in = gr.File(label="images", file_count="multiple", file_types=["image"], visible=False)
    mask_in = gr.File(label="mask", file_types=["image"], visible=False)
    urls_in = url_list_input("image_urls")
    mask_url_in = gr.Textbox(label="mask_image_url", value="", visible=False)
    api_inputs = form.api_inputs()
    gr.Button(visible=False, elem_id="edit-api").click(
        edit,
        inputs_kwargs={
            "prompt": api_inputs.pop("prompt"),
            "images": images_in,
            "image_urls": urls_in,
            "mask": mask_in,
            "mask_image_url": mask_url_in,
            **api_inputs,
            "fal_key": shared.fal_key,
        },
        outputs=panel.outputs(),
        api_name=endpoint.tab,
    )
    gr.on(
        [
            *(control.change for control in form.controls.values()),
            references.change,
            prompt.blur,
        ],
        estimate,
        inputs_kwargs={"references": references, **form.inputs()},
        outputs=cost,
        api_visibility="private",
        show_progress="hidden",
    )
    return EditTab(form, references, panel)
