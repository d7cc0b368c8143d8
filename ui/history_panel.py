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

    # Any result (or history image) can start, or continue, a chain of edits. The
    # Edit tab gets the app's own copy (its canvas draws it); when the edit runs,
    # a copy of a result on fal's media hosts is sent as its fal URL (edit_tab.py).
    def picked_from_record(record: Any, selected: int | None, browser_id: str) -> str | None:
        """The app's copy of the result the user clicked (or the first) in a panel
        whose gallery may show fal's URLs: found through the run's record, in this
        browser's history, never from a URL the page sends."""
        if not isinstance(record, dict) or not isinstance(record.get("request_id"), str):
            return None
        return service.result_file(browser_id, record["request_id"], selected or 0)

    def wire(send: gr.Button, add: gr.Button, pick: Any, sources: list[Any]) -> None:
        """Send to edit / Add as reference for the image `pick(*sources)` names."""

        def sent(*values: Any) -> tuple[Any, Any]:
            return send_to_edit(pick(*values[:-1]), values[-1])

        def added(*values: Any) -> tuple[Any, Any]:
            return add_as_reference(pick(*values[:-1]), values[-1])

        for button, verb in ((send, sent), (add, added)):
            button.click(verb, [*sources, references], [references, tabs], api_visibility="private")

    for panel in results:
        # The Generate and Edit panels show fal's URLs (their record says which run);
        # Compare's shows the app's files, read from the gallery as before.
        if panel.one_hop:
            sources = [panel.record, panel.selected, browser_id]
            wire(panel.send_to_edit, panel.add_reference, picked_from_record, sources)
        else:
            wire(panel.send_to_edit, panel.add_reference, picked, [panel.gallery, panel.selected])
    wire(history_send, history_add, picked, [history, selected])


def send_to_edit(chosen: str | None, references: list[Any] | None) -> tuple[Any, Any]:
    """A result becomes the main image of the Edit tab (the others stay as references)."""
    if chosen is None:
        gr.Warning("There is no result to send yet.")
        return gr.skip(), gr.skip()
    rest = gallery_paths(references)[1:]
    return [chosen, *rest][:MAX_REFERENCE_IMAGES], gr.Tabs(selected="edit")


def add_as_reference(chosen: str | None, references: list[Any] | None) -> tuple[Any, Any]:
    """A result joins the Edit tab's references, after the others."""
    if chosen is None:
        gr.Warning("There is no result to add yet.")
        return gr.skip(), gr.skip()
    paths = gallery_paths(references)
    if len(paths) >= MAX_REFERENCE_IMAGES:
        gr.Warning(f"The Edit tab already has {MAX_REFERENCE_IMAGES} reference images.")
        return gr.skip(), gr.skip()
    return [*paths, chosen], gr.Tabs(selected="edit")
