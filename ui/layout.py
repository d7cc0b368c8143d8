"""The Blocks layout: controls named after the API's fields, wired to handlers."""

from __future__ import annotations

from typing import Any

import gradio as gr

from backend import ImageClient, Settings
from backend.schema import (
    BACKGROUNDS,
    IMAGE_SIZES,
    NUM_IMAGES_MAX,
    NUM_IMAGES_MIN,
    OUTPUT_FORMATS,
    PROMPT_MAX_CHARS,
    QUALITIES,
    TextToImageRequest,
)
from ui.handlers import Studio

TITLE = "GPT Image 1.5 Studio"

_CSS = """
#status { min-height: 2.5em; }
#status pre { max-height: 9em; overflow-y: auto; font-size: 0.85em; }
footer { display: none !important; }
"""

# Defaults come from the request model, which mirrors the seeds.
_T2I = TextToImageRequest.model_fields


def build_demo(settings: Settings, client: ImageClient) -> gr.Blocks:
    studio = Studio(settings, client)
    demo = gr.Blocks(title=TITLE)
    with demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "OpenAI's GPT Image 1.5 on [fal.ai](https://fal.ai/models/fal-ai/gpt-image-1.5): "
            "every parameter of the API at hand."
        )
        with gr.Accordion("fal API key", open=not settings.has_host_key):
            fal_key = gr.Textbox(
                value="",
                label="fal API key",
                type="password",
                placeholder="Paste your own key to use it for your requests (optional)"
                if settings.has_host_key
                else "Paste your fal key here",
                info="Used only for your own requests; never stored on the server.",
                elem_id="fal-key",
            )
            key_status = gr.Markdown(studio.describe_key(""), elem_id="key-status")

        with gr.Tabs():
            with gr.Tab("Generate", id="generate"):
                _generate_tab(studio, fal_key)

        fal_key.change(
            studio.describe_key,
            inputs=fal_key,
            outputs=key_status,
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    return demo


def _generate_tab(studio: Studio, fal_key: gr.Textbox) -> None:
    with gr.Row(equal_height=False):
        with gr.Column(scale=2, min_width=320):
            prompt = gr.Textbox(
                label="prompt",
                lines=4,
                max_length=PROMPT_MAX_CHARS,
                placeholder="Describe the image you want…",
                elem_id="t2i-prompt",
            )
            with gr.Row():
                image_size = gr.Dropdown(
                    list(IMAGE_SIZES),
                    value=_default("image_size"),
                    label="image_size",
                    info="Width x height in pixels",
                    elem_id="t2i-image-size",
                )
                quality = gr.Dropdown(
                    list(QUALITIES),
                    value=_default("quality"),
                    label="quality",
                    info="Higher is slower and costs more",
                    elem_id="t2i-quality",
                )
            with gr.Row():
                background = gr.Dropdown(
                    list(BACKGROUNDS),
                    value=_default("background"),
                    label="background",
                    info="transparent needs png or webp",
                    elem_id="t2i-background",
                )
                output_format = gr.Dropdown(
                    list(OUTPUT_FORMATS),
                    value=_default("output_format"),
                    label="output_format",
                    info="File format of the results",
                    elem_id="t2i-output-format",
                )
            num_images = gr.Slider(
                NUM_IMAGES_MIN,
                NUM_IMAGES_MAX,
                value=_default("num_images"),
                step=1,
                precision=0,
                label="num_images",
                info="How many images to generate",
                elem_id="t2i-num-images",
            )
            sync_mode = gr.Checkbox(
                value=_default("sync_mode"),
                label="sync_mode",
                info="Return images inline as data URIs; fal keeps no copy in its request history",
                elem_id="t2i-sync-mode",
            )
            with gr.Row():
                run = gr.Button("Generate", variant="primary", elem_id="t2i-run", scale=3)
                stop = gr.Button("Stop", variant="stop", elem_id="t2i-stop", scale=1)
        with gr.Column(scale=3, min_width=320):
            status = gr.Markdown("", elem_id="status")
            gallery = gr.Gallery(
                label="Results",
                columns=2,
                height="auto",
                object_fit="contain",
                interactive=False,
                buttons=["download", "fullscreen"],
                elem_id="t2i-gallery",
            )
            with gr.Accordion("Details", open=False):
                record = gr.JSON(label="Request record", elem_id="t2i-record")

    inputs: list[Any] = [
        prompt,
        image_size,
        background,
        quality,
        num_images,
        output_format,
        sync_mode,
        fal_key,
    ]
    # The page's event ends quietly: its status line already holds the sentence
    # (a raised error would stamp a bare "Error" over the results). Programs call
    # the public `/generate`, which raises the same sentence as an error.
    event = gr.on(
        [run.click, prompt.submit],
        studio.generate_in_page,
        inputs=inputs,
        outputs=[gallery, record, status],
        api_visibility="private",
        show_progress="minimal",
        show_progress_on=[gallery],
    )
    stop.click(None, cancels=[event], api_visibility="private")
    api_trigger = gr.Button(visible=False, elem_id="t2i-api")
    api_trigger.click(
        studio.generate,
        inputs=inputs,
        outputs=[gallery, record, status],
        api_name="generate",
    )


def _default(name: str) -> Any:
    return _T2I[name].default


def launch_options(settings: Settings) -> dict[str, Any]:
    """Arguments for `demo.launch()` (Gradio 6 takes theme and css there).

    Results are handed to Gradio from `results_dir`; allowing just that folder
    lets a host put it anywhere without opening up any other path.
    """
    return {
        "theme": gr.themes.Soft(),
        "css": _CSS,
        "allowed_paths": [str(settings.results_dir)],
    }
