"""The Edit tab: reference images, a painted mask, and every parameter of the edit endpoint."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from backend.endpoints import Endpoint
from backend.schema import MAX_REFERENCE_IMAGES, GenerationResult
from backend.service import (
    DEFAULT_SEAM,
    MAX_SEAM,
    EditDraft,
    KeptFiles,
    RunService,
    StudioError,
)
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
from ui.runs import Outputs, caller_of, for_api, for_page, run_outputs, wire_stop

log = logging.getLogger("studio.ui")

# The example prompt on the endpoint's API page, with an image we drew ourselves.
EXAMPLE_PROMPT = (
    "Same workers, same beam, same lunch boxes - but they're all on their phones now. "
    "One is taking a selfie. One is on a call looking annoyed. Same danger, new "
    "priorities. A hard hat has AirPods."
)
EXAMPLE_IMAGE = Path(__file__).parent / "examples" / "workers-on-a-beam.png"
EMPTY_CANVAS: dict[str, Any] = {"background": None, "layers": [], "composite": None}

_MASK_NOTE = (
    "Drop, paste or upload the image to edit on the canvas below (or into the gallery "
    "above; select one and click *Make main* to edit it instead). Paint over the area to "
    "change on the main image. The model treats "
    "the mask as **guidance**: it may still touch other parts of the image (tick *Keep "
    "the unmasked area exactly* for a version where it cannot). Nothing painted means the "
    "whole image may change."
)


def kept_items(kept: list[KeptFiles], seam: int) -> list[tuple[str, str]]:
    """The gallery items for composited results: each composite, then its leak map."""
    items = []
    for number, files in enumerate(kept, start=1):
        which = f" {number}" if len(kept) > 1 else ""
        scaled = ", scaled to the main image" if files.scaled else ""
        items.append(
            (
                str(files.composite),
                f"Composited{which}: outside the mask exactly the original "
                f"(seam {seam} px{scaled})",
            )
        )
        items.append(
            (
                str(files.leak_picture),
                f"Leak map{which}: the model changed {_share(files.leak_share)} of the "
                "pixels outside the mask (red)",
            )
        )
    return items


def kept_note(kept: list[KeptFiles]) -> str:
    shares = ", ".join(_share(files.leak_share) for files in kept)
    return (
        f"🧩 Composited results added: the unmasked area is kept exactly. The model itself "
        f"changed {shares} of the pixels outside the mask (red in the leak map)."
    )


def _share(share: float) -> str:
    return f"{share:.1%}" if 0 < share < 0.1 else f"{share:.0%}"


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
                # Dropped, pasted or uploaded here, an image becomes the main reference:
                # ui/static/page.js hands the file to `canvas_drop` before the editor
                # sees it. (The editor's own paste button reads the clipboard without
                # an event to catch, so it is left out; Ctrl+V over the canvas works.)
                sources=["upload"],
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
            canvas_drop = gr.File(
                label="Image dropped on the canvas",
                file_types=["image"],
                type="filepath",
                visible="hidden",
                elem_id="edit-canvas-drop",
            )
            with gr.Row():
                invert = gr.Checkbox(
                    label="invert: edit everything except what I painted",
                    elem_id="edit-invert",
                )
                preview_button = gr.Button("Preview mask", size="sm", elem_id="edit-preview")
            with gr.Row():
                keep = gr.Checkbox(
                    label="Keep the unmasked area exactly: add a composited result, with a "
                    "leak map of what the model changed outside the mask",
                    elem_id="edit-keep",
                )
                seam = gr.Slider(
                    0,
                    MAX_SEAM,
                    value=DEFAULT_SEAM,
                    step=1,
                    label="Seam width (px)",
                    info="how far outside the mask the edit fades into the original",
                    elem_id="edit-seam",
                )
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
        keep: bool,
        seam: float,
        **values: Any,
    ) -> AsyncIterator[Any]:
        browser_id = service.views.new_browser_id(browser_id)
        caller = caller_of(service, request, fal_key, browser_id=browser_id, page=True)
        paths = gallery_paths(references)
        drafts: list[EditDraft] = []

        # A result of this browser's on fal's media hosts goes back as its URL.
        hosted = await service.views.hosted_copies(browser_id, paths)

        async def build() -> Any:
            draft = await service.edit(
                endpoint,
                values,
                paths,
                mask_file=mask_file,
                canvas=canvas,
                invert=invert,
                hosted=hosted,
            )
            drafts.append(draft)
            return draft

        finished: list[GenerationResult] = []
        outputs = run_outputs(service, endpoint, build, caller, in_page=True, finished=finished)
        if keep:
            outputs = with_kept(outputs, drafts, finished, int(seam))
        async for shown in for_page(outputs, browser_id):
            yield shown

    async def with_kept(
        outputs: AsyncIterator[Outputs],
        drafts: list[EditDraft],
        finished: list[GenerationResult],
        seam: int,
    ) -> AsyncIterator[Outputs]:
        """fal's results, then each one composited over the original outside the mask
        and its leak map, as extra labelled results (fal's files are not touched)."""
        async for gallery, record, status in outputs:
            # Only the final results (with their record) get extras; the gallery may
            # show fal's URLs, so the composite reads the app's own copies.
            if not gallery or not record or not drafts or not finished:
                yield gallery, record, status
                continue
            if drafts[0].mask is None:
                note = "Nothing painted, so there is no unmasked area to keep."
                yield gallery, record, f"{status}\n\n{note}"
                continue
            try:
                local = [image.path for image in finished[0].images]
                kept = await service.keep_unmasked(drafts[0], local, seam=seam)
            except Exception:  # fal's results stand; only the extra is missing
                log.exception("keeping the unmasked area failed")
                note = "The composited version could not be made; fal's results are above."
                yield gallery, record, f"{status}\n\n{note}"
                continue
            yield [*gallery, *kept_items(kept, seam)], record, f"{status}\n\n{kept_note(kept)}"

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
        return await main_on_canvas(main)

    async def take_dropped(
        dropped: str | None, references: list[Any] | None, shown: str | None
    ) -> Any:
        """An image dropped, pasted or uploaded on the canvas (ui/static/page.js hands
        the file over here) becomes the main reference, first in the gallery, and goes
        on the canvas at once (a gallery that was empty says no "change" when the
        server fills it)."""
        if not dropped:
            return gr.skip(), None, gr.skip(), shown
        items = [dropped, *(references or [])]
        if len(items) > MAX_REFERENCE_IMAGES:
            gr.Warning(
                f"There are now {len(items)} reference images and an edit takes at most "
                f"{MAX_REFERENCE_IMAGES}; remove one before you run the edit."
            )
        canvas_value, main = await main_on_canvas(dropped)
        return gr.Gallery(value=items, selected_index=None), None, canvas_value, main

    async def main_on_canvas(main: str) -> tuple[dict[str, Any], str | None]:
        """The canvas' value for a new main image (its strokes cleared), and what it shows."""
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
    canvas_drop.upload(
        take_dropped,
        inputs=[canvas_drop, references, shown_main],
        outputs=[references, canvas_drop, canvas, shown_main],
        api_visibility="private",
        show_progress="hidden",
    )
    references.select(clicked_index, None, selected, api_visibility="private", queue=False)
    make_main.click(make_main_image, [references, selected], references, api_visibility="private")

    async def example() -> tuple[Any, ...]:
        """The endpoint page's example: its prompt, and our picture on the canvas."""
        canvas_value, main = await main_on_canvas(str(EXAMPLE_IMAGE))
        return EXAMPLE_PROMPT, [str(EXAMPLE_IMAGE)], canvas_value, main

    load_example.click(
        example, None, [prompt, references, canvas, shown_main], api_visibility="private"
    )
    gr.on(
        [preview_button.click, invert.change],
        preview_mask,
        inputs=[references, canvas, invert, mask_file],
        outputs=[preview, preview_text],
        api_visibility="private",
    )

    drawn = {
        "references": references,
        "canvas": canvas,
        "invert": invert,
        "mask_file": mask_file,
        "keep": keep,
        "seam": seam,
    }
    shared.on_run([run.click, prompt.submit], edit_in_page, {**drawn, **form.inputs()}, panel)
    wire_stop(stop, service, endpoint.tab)

    # The public endpoint: plain files in, as a program has them; the same core.
    # No `file_types`: Gradio would judge a file by its name's extension, and a
    # JavaScript Blob (`handle_file(blob)`) has none. The run service decodes every
    # file anyway, so a PNG, JPEG, WebP or GIF is taken whatever it is called, and
    # anything else gets the service's own sentence.
    images_in = gr.File(label="images", file_count="multiple", visible=False)
    mask_in = gr.File(label="mask", visible=False)
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
