"""The Blocks app: a header, the key field, and the two tabs."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from backend import ImageClient, Settings
from ui.compare_tab import compare_tab
from ui.controls import Shared
from ui.edit_tab import EXAMPLE_IMAGE, edit_tab
from ui.generate_tab import generate_tab
from ui.guards import RefuseRemoteFiles
from ui.handlers import Studio

TITLE = "GPT Image 1.5 Studio"

_CSS = """
.status { min-height: 2.5em; }
.status pre { max-height: 9em; overflow-y: auto; font-size: 0.85em; }
footer { display: none !important; }
"""


def build_demo(settings: Settings, client: ImageClient) -> gr.Blocks:
    studio = Studio(settings, client)
    # How many runs of each event at once. Gradio reads this when the Blocks make
    # their queue; calling demo.queue(default_concurrency_limit=...) afterwards
    # would build the whole web app once more (0.17 s of start-up).
    os.environ["GRADIO_DEFAULT_CONCURRENCY_LIMIT"] = str(settings.concurrency_limit)
    demo = gr.Blocks(title=TITLE)
    with demo:
        gr.Markdown(
            f"# {TITLE}\n"
            "OpenAI's GPT Image 1.5 on [fal.ai](https://fal.ai/models/fal-ai/gpt-image-1.5): "
            "every parameter of the API at hand."
        )
        with gr.Accordion("fal API key", open=not settings.has_host_key, elem_id="key-panel"):
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
            remember = gr.Checkbox(
                label="Remember my key on this browser (stored encrypted in this browser only)",
                visible=settings.browser_secret_value is not None,
                elem_id="remember-key",
            )
            key_status = gr.Markdown(studio.describe_key(""), elem_id="key-status")

        browser_id = gr.BrowserState("", storage_key="gpt-image-studio-browser")
        shared = Shared(
            fal_key=fal_key,
            browser_id=browser_id,
            history=gr.Gallery(
                label="Your runs (click one to restore its prompt and parameters)",
                columns=8,
                height=200,
                object_fit="cover",
                allow_preview=False,
                interactive=False,
                render=False,
                elem_id="history",
            ),
            history_total=gr.Markdown("", render=False, elem_id="history-total"),
        )
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab("Generate", id="generate"):
                generated = generate_tab(studio, shared)
            with gr.Tab("Edit", id="edit"):
                editing = edit_tab(studio, shared)
            with gr.Tab("Compare", id="compare"):
                compared = compare_tab(studio, shared)

        with gr.Accordion("History, and parameters from a saved image", open=False):
            shared.history_total.render()  # type: ignore[no-untyped-call]
            shared.history.render()  # type: ignore[no-untyped-call]
            with gr.Row():
                history_send = gr.Button("Send selected to edit", size="sm")
                history_add = gr.Button("Add selected as reference", size="sm")
            load_file = gr.File(
                label="Load parameters from an image this app saved (PNG, or the "
                "JPEG/WebP with its .json)",
                file_types=["image", ".json"],
                type="filepath",
                height=120,
                elem_id="load-parameters",
            )
            load_status = gr.Markdown("", elem_id="load-status")

        restore_targets = [tabs, *generated.fields(), *editing.fields()]
        history_selected = gr.State(None)
        shared.history.select(
            studio.restore_from_history,
            browser_id,
            restore_targets,
            api_visibility="private",
        )
        shared.history.select(
            studio.remember_selection, None, history_selected, api_visibility="private"
        )
        load_file.upload(
            studio.load_parameters,
            load_file,
            [*restore_targets, load_status],
            api_visibility="private",
        )
        # The load only reads the browser's id: a browser gets one with its first run
        # (two places making ids would race each other).
        demo.load(
            studio.show_history,
            browser_id,
            [shared.history, shared.history_total],
            api_visibility="private",
        )

        # Any result (or history image) can start, or continue, a chain of edits.
        sources = [
            (panel.gallery, panel.selected, panel.send_to_edit, panel.add_reference)
            for panel in (generated.panel, editing.panel, compared)
        ]
        sources.append((shared.history, history_selected, history_send, history_add))
        for gallery, selected, send, add in sources:
            for button, verb in ((send, studio.send_to_edit), (add, studio.add_as_reference)):
                button.click(
                    verb,
                    [gallery, selected, editing.references],
                    [editing.references, tabs],
                    api_visibility="private",
                )

        fal_key.change(
            studio.describe_key,
            inputs=fal_key,
            outputs=key_status,
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
        if settings.browser_secret_value:
            _remember_key(demo, settings.browser_secret_value, fal_key, remember)
    return demo


def _remember_key(demo: gr.Blocks, secret: str, fal_key: gr.Textbox, remember: gr.Checkbox) -> None:
    """Opt-in: the visitor's key kept in their own browser, encrypted with the host's
    secret; the server stores nothing."""
    # A dict, not a bare string: an empty string would not overwrite what was stored.
    saved = gr.BrowserState({"key": ""}, storage_key="gpt-image-studio-fal-key", secret=secret)

    def keep(key: str, wanted: bool) -> dict[str, str]:
        return {"key": key if wanted else ""}

    def restore(stored: dict[str, str] | None) -> tuple[Any, Any]:
        key = (stored or {}).get("key", "")
        return (key, True) if key else (gr.skip(), gr.skip())

    gr.on(
        [fal_key.change, remember.change],
        keep,
        inputs=[fal_key, remember],
        outputs=saved,
        api_visibility="private",
        queue=False,
        show_progress="hidden",
    )
    demo.load(restore, saved, [fal_key, remember], api_visibility="private", queue=False)


def launch_options(settings: Settings) -> dict[str, Any]:
    """Arguments for `demo.launch()` (Gradio 6 takes theme and css there).

    Results are handed to Gradio from `results_dir`, and the edit example from
    ui/examples: allowing just those folders lets a host put results anywhere
    without opening up any other path.
    """
    return {
        "theme": gr.themes.Soft(),
        "css": _CSS,
        "allowed_paths": [str(settings.results_dir), str(EXAMPLE_IMAGE.parent)],
        "max_file_size": settings.max_upload_mb * 1024 * 1024,
        # Gradio hands these to FastAPI: the guard sees every call first.
        "app_kwargs": {"middleware": [Middleware(RefuseRemoteFiles)]},
    }
