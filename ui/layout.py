"""The Blocks app: a header, the key panel, one tab per endpoint, Compare, History."""

from __future__ import annotations

import os
from typing import Any

import gradio as gr
from starlette.middleware import Middleware

from backend.service import KeyStatus, RunService
from ui.agents import OnlyAgentTools, agent_tools, tools_prefix
from ui.compare_tab import compare_tab
from ui.controls import Shared
from ui.edit_tab import EXAMPLE_IMAGE, edit_tab
from ui.generate_tab import generate_tab
from ui.guards import RefuseRemoteFiles
from ui.history_panel import history_filters, history_gallery, history_panel, history_view
from ui.runs import caller_of, wire_resume
from ui.theme import CSS, PAGE_JS, theme

TITLE = "GPT Image 1.5 Studio"

_GET_A_KEY = "(get one at [fal.ai/dashboard/keys](https://fal.ai/dashboard/keys))"


def build_demo(service: RunService) -> gr.Blocks:
    """The whole page, for the endpoints `service` serves."""
    settings = service.settings
    # Gradio runs every event at once: the run service's scheduler decides which
    # run goes when (fair shares, a waiting line with its place shown), and Gradio's
    # own queue must not reorder calls ahead of it. Gradio reads this when the
    # Blocks make their queue; calling demo.queue(default_concurrency_limit=...)
    # afterwards would build the whole web app once more (0.17 s of start-up).
    os.environ["GRADIO_DEFAULT_CONCURRENCY_LIMIT"] = "none"
    endpoints = service.endpoints
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
            key_status = gr.Markdown(describe_key(service.key_status("")), elem_id="key-status")
        # Outside the key panel (closed when the host has a key): a visitor on a
        # budgeted host key sees what is left without opening anything.
        budget_status = gr.Markdown("", elem_id="budget-status", visible=service.budget.enabled)

        async def show_key(key: str, request: gr.Request) -> tuple[str, str]:
            """Which key runs use, and on the host's key with a daily budget, what is left."""
            caller = caller_of(service, request, key)
            allowance = await service.allowance(caller)
            left = f"💵 Left on the host's key: **{allowance.describe()}**." if allowance else ""
            return describe_key(service.key_status(key)), left

        browser_id = gr.BrowserState(
            "", storage_key="gpt-image-studio-browser", secret=service.browser_id_secret
        )
        filters = history_filters(service)
        shared = Shared(
            fal_key=fal_key,
            browser_id=browser_id,
            history=history_gallery(),
            history_total=gr.Markdown("", render=False, elem_id="history-total"),
            show_history=history_view(service),
            key_status=[key_status, budget_status],
            show_key=show_key,
        )
        shared.history_inputs = [browser_id, *filters.components()]
        shared.history_outputs = [shared.history, shared.history_total, *filters.updated()]
        if settings.mcp_server:
            agent_tools(service)  # before the tabs: see its docstring
        with gr.Tabs(elem_id="tabs") as tabs:
            with gr.Tab(endpoints.text_to_image.title, id=endpoints.text_to_image.tab):
                generated = generate_tab(service, shared, endpoints.text_to_image)
            with gr.Tab(endpoints.editing.title, id=endpoints.editing.tab):
                editing = edit_tab(service, shared, endpoints.editing)
            with gr.Tab("Compare", id="compare"):
                compared = compare_tab(service, shared, endpoints.text_to_image)
            with gr.Tab("History", id="history-tab"):
                history_panel(
                    service,
                    history=shared.history,
                    history_total=shared.history_total,
                    filters=filters,
                    browser_id=browser_id,
                    fal_key=fal_key,
                    tabs=tabs,
                    forms=[generated.form, editing.form],
                    results=[generated.panel, editing.panel, compared],
                    references=editing.references,
                )
        # The load only reads the browser's id: a browser gets one with its first run
        # (two places making ids would race each other).
        demo.load(
            shared.show_history,
            shared.history_inputs,
            shared.history_outputs,
            api_visibility="private",
            show_progress="hidden",
        )

        def page_closed(request: gr.Request) -> None:
            service.page_closed(request.session_hash)

        # Gradio notices a closed page only at a run's next update: a run waiting
        # for a slot would reach fal first. The unload event comes at once.
        demo.unload(page_closed)
        # Runs this browser left under way (a reload, a closed tab) are followed again.
        wire_resume(demo, service, endpoints.text_to_image.tab, generated.panel, shared)
        wire_resume(demo, service, endpoints.editing.tab, editing.panel, shared)
        generated.batch.resume(demo)
        gr.on(
            [fal_key.change, demo.load],
            show_key,
            inputs=fal_key,
            outputs=[key_status, budget_status],
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        )
        if settings.browser_secret_value:
            _remember_key(demo, settings.browser_secret_value, fal_key, remember)
    return demo


def describe_key(status: KeyStatus) -> str:
    """Which key the next request will use, in a sentence (never the key itself)."""
    if status.kind == "invalid":
        return f"🔑 {status.problem}"
    if status.kind == "yours":
        return "🔑 Requests use **your key**."
    if status.kind == "host":
        return "🔑 Requests use **the host's key**. Paste your own to use it instead."
    if status.kind == "required":
        demo = " Until then: demo mode." if status.demo else ""
        return (
            "🔑 **No key: add one.** This app runs on visitors' own keys: paste yours "
            f"above {_GET_A_KEY}.{demo}"
        )
    demo = (
        " Until then the app runs in **demo mode**: placeholder images, nothing is sent."
        if status.demo
        else ""
    )
    return (
        f"🔑 **No key: add one.** Paste a fal API key above {_GET_A_KEY}, "
        f"or set `FAL_KEY` in `.env` and restart.{demo}"
    )


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


def launch_options(service: RunService) -> dict[str, Any]:
    """Arguments for `demo.launch()` (Gradio 6 takes theme and css there).

    Results are handed to Gradio from `results_dir`, and the edit example from
    ui/examples: allowing just those folders lets a host put results anywhere
    without opening up any other path.
    """
    settings = service.settings
    return {
        "theme": theme(),
        "css": CSS,
        "js": PAGE_JS,
        # The kept copies of past runs are shown from where they are kept.
        "allowed_paths": [
            str(settings.results_dir),
            str(settings.kept_dir),
            str(EXAMPLE_IMAGE.parent),
        ],
        "max_file_size": settings.max_upload_mb * 1024 * 1024,
        # Gradio hands these to FastAPI: the guards see every call first.
        "app_kwargs": {
            "middleware": [
                Middleware(RefuseRemoteFiles),
                Middleware(OnlyAgentTools, prefix=tools_prefix(settings.space_id)),
            ]
        },
        # Gradio's MCP server at /gradio_api/mcp/ (tools: ui/agents.py).
        "mcp_server": settings.mcp_server,
    }
