"""The History panel: this browser's runs (click one to restore it), chaining edits
from any result, and parameters read back from an image this app saved."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gradio as gr

from backend.schema import MAX_REFERENCE_IMAGES
from backend.service import RunService, StudioError, format_usd
from ui.controls import ResultPanel, clicked_index, gallery_paths, picked
from ui.forms import Form
from ui.progress import describe_error


def history_gallery() -> gr.Gallery:
    """Made before the tabs (their runs update it), shown in the panel below them."""
    return gr.Gallery(
        label="Your runs (click one to restore its prompt and parameters)",
        columns=8,
        height=200,
        object_fit="cover",
        allow_preview=False,
        interactive=False,
        render=False,
        elem_id="history",
    )


def history_view(service: RunService):  # type: ignore[no-untyped-def]
    """The handler that lists a browser's runs, newest first, and their total."""

    def show_history(browser_id: str) -> tuple[Any, str]:
        entries, total = service.history_of(browser_id)
        count = len(service.history.entries(browser_id)) if browser_id else 0
        runs = "run" if count == 1 else "runs"
        items = [(entry.image_paths[0], entry.caption()) for entry in entries]
        return items, f"{count} {runs} in this browser · session total {format_usd(total)}"

    return show_history


def history_panel(
    service: RunService,
    *,
    history: gr.Gallery,
    history_total: gr.Markdown,
    browser_id: gr.BrowserState,
    tabs: gr.Tabs,
    forms: Sequence[Form],
    results: Sequence[ResultPanel],
    references: gr.Gallery,
) -> None:
    with gr.Accordion("History, and parameters from a saved image", open=False):
        history_total.render()  # type: ignore[no-untyped-call]
        history.render()  # type: ignore[no-untyped-call]
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

    by_tab = {form.endpoint.tab: form for form in forms}
    restorable = [tabs, *(c for form in forms for c in form.components())]

    def restore(tab: str, values: dict[str, Any]) -> dict[Any, Any]:
        return {tabs: gr.Tabs(selected=tab), **by_tab[tab].restore(values)}

    def restore_from_history(browser_id: str, event: gr.SelectData) -> dict[Any, Any]:
        """A history entry's prompt and parameters, back in its tab."""
        entries, _ = service.history_of(browser_id)
        if not 0 <= event.index < len(entries) or entries[event.index].tab not in by_tab:
            return {}
        entry = entries[event.index]
        return restore(entry.tab, {"prompt": entry.prompt, **entry.parameters})

    async def load_parameters(file: str | None) -> dict[Any, Any]:
        """Prompt and parameters read back from an image this app saved."""
        if not file:
            return {load_status: ""}
        try:
            endpoint, values = await service.parameters_from_file(file)
        except StudioError as exc:
            return {load_status: describe_error(exc.message)}
        said = f"Loaded the prompt and parameters into the {endpoint.title} tab."
        return {**restore(endpoint.tab, values), load_status: said}

    selected = gr.State(None)
    history.select(restore_from_history, browser_id, restorable, api_visibility="private")
    history.select(clicked_index, None, selected, api_visibility="private")
    load_file.upload(
        load_parameters, load_file, [*restorable, load_status], api_visibility="private"
    )

    # Any result (or history image) can start, or continue, a chain of edits.
    sources = [(p.gallery, p.selected, p.send_to_edit, p.add_reference) for p in results]
    sources.append((history, selected, history_send, history_add))
    for gallery, chosen, send, add in sources:
        for button, verb in ((send, send_to_edit), (add, add_as_reference)):
            button.click(
                verb,
                [gallery, chosen, references],
                [references, tabs],
                api_visibility="private",
            )


def send_to_edit(
    results: list[Any] | None, selected: int | None, references: list[Any] | None
) -> tuple[Any, Any]:
    """A result becomes the main image of the Edit tab (the others stay as references)."""
    chosen = picked(results, selected)
    if chosen is None:
        gr.Warning("There is no result to send yet.")
        return gr.skip(), gr.skip()
    rest = gallery_paths(references)[1:]
    return [chosen, *rest][:MAX_REFERENCE_IMAGES], gr.Tabs(selected="edit")


def add_as_reference(
    results: list[Any] | None, selected: int | None, references: list[Any] | None
) -> tuple[Any, Any]:
    """A result joins the Edit tab's references, after the others."""
    chosen = picked(results, selected)
    if chosen is None:
        gr.Warning("There is no result to add yet.")
        return gr.skip(), gr.skip()
    paths = gallery_paths(references)
    if len(paths) >= MAX_REFERENCE_IMAGES:
        gr.Warning(f"The Edit tab already has {MAX_REFERENCE_IMAGES} reference images.")
        return gr.skip(), gr.skip()
    return [*paths, chosen], gr.Tabs(selected="edit")
