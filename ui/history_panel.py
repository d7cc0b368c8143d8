"""The History tab: this browser's runs, kept in the database (click one to restore
it; search, filter by tab, delete, fetch an interrupted run's result again),
chaining edits from any result, and parameters read back from an image this app
saved.

Its own tab rather than a strip beside the results: it needs room for its
search, filters and actions, and a newcomer finds a tab named History at once,
where a strip of thumbnails beside each tab's results would repeat itself in
every tab and crowd the results it sits beside."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import gradio as gr

from backend.schema import MAX_REFERENCE_IMAGES
from backend.service import HistoryEntry, RunService, StudioError, format_usd
from ui.controls import ResultPanel, gallery_paths, picked
from ui.forms import Form
from ui.progress import describe_error
from ui.runs import caller_of


def history_gallery() -> gr.Gallery:
    """Made before the tabs (their runs update it), shown in the History tab."""
    return gr.Gallery(
        label="Your runs (click one to restore its prompt and parameters)",
        columns=6,
        height="auto",
        object_fit="cover",
        allow_preview=False,
        interactive=False,
        render=False,
        elem_id="history",
    )


@dataclass
class HistoryFilters:
    """The History tab's controls that every refresh of the list reads (search, tab,
    "All runs") or updates (the runs to export, the interrupted runs to fetch):
    made before the tabs, whose runs refresh the list."""

    search: gr.Textbox
    tab: gr.Dropdown
    everyone: gr.Checkbox
    export: gr.Dropdown  # the runs to export, among those shown
    interrupted: gr.Dropdown  # interrupted runs whose result fal may still hold
    fetch: gr.Button

    def components(self) -> list[Any]:
        """What a refresh reads, after the browser's id."""
        return [self.search, self.tab, self.everyone]

    def updated(self) -> list[Any]:
        """What a refresh updates, after the gallery and its totals."""
        return [self.interrupted, self.fetch, self.export]


def history_filters(service: RunService) -> HistoryFilters:
    choices = [("All tabs", ""), *((e.title, e.tab) for e in service.endpoints)]
    return HistoryFilters(
        search=gr.Textbox(
            label="Search prompts",
            placeholder="words from a prompt",
            render=False,
            elem_id="history-search",
        ),
        tab=gr.Dropdown(choices, value="", label="Tab", render=False, elem_id="history-tab"),
        everyone=gr.Checkbox(
            label="All runs (every browser on this machine)",
            visible=service.views.all_runs_allowed(),
            render=False,
            elem_id="history-all",
        ),
        export=gr.Dropdown(
            [],
            multiselect=True,
            label="Runs to export",
            render=False,
            elem_id="history-export-choice",
        ),
        interrupted=gr.Dropdown(
            [],
            label="Interrupted runs (fal may still hold their result)",
            visible=False,
            render=False,
            elem_id="history-interrupted",
        ),
        fetch=gr.Button(
            "Fetch result", size="sm", visible=False, render=False, elem_id="history-fetch"
        ),
    )


def history_view(service: RunService):  # type: ignore[no-untyped-def]
    """The handler that lists a browser's runs, newest first, their totals, and
    the runs that ended without images (interrupted ones can be fetched again)."""

    async def show_history(
        browser_id: str, search: str = "", tab: str = "", everyone: bool = False
    ) -> tuple[Any, ...]:
        whose = None if everyone and service.views.all_runs_allowed() else browser_id
        entries, totals = await service.views.history_of(whose, search=search or "", tab=tab or "")
        with_images = [e for e in entries if e.image_paths]
        shown = await service.views.thumbnails(with_images)
        items = [(path, entry.caption()) for path, entry in zip(shown, with_images, strict=True)]
        runs = "run" if totals.runs == 1 else "runs"
        where = "on this machine" if whose is None else "in this browser"
        total = (
            f"{totals.runs} {runs} {where} · session total {format_usd(totals.session_usd)}"
            f" · today {format_usd(totals.today_usd)}"
        )
        if search or tab:
            total += f" · {len(entries)} shown"
        fetchable = [
            (f"{e.caption()} · {e.request_id}", e.entry_id) for e in entries if e.can_fetch
        ]
        exportable = [(e.caption(), e.entry_id) for e in with_images]
        return (
            items,
            total,
            gr.Dropdown(choices=fetchable, value=None, visible=bool(fetchable)),
            gr.Button(visible=bool(fetchable)),
            gr.Dropdown(choices=exportable, value=[]),
        )

    return show_history


def history_panel(
    service: RunService,
    *,
    history: gr.Gallery,
    history_total: gr.Markdown,
    filters: HistoryFilters,
    browser_id: gr.BrowserState,
    fal_key: gr.Textbox,
    tabs: gr.Tabs,
    forms: Sequence[Form],
    results: Sequence[ResultPanel],
    references: gr.Gallery,
) -> None:
    """The History tab: search, filter, restore, delete, fetch, chain edits."""
    if service.settings.data_is_temporary:
        gr.Markdown(
            "⚠️ History is kept in a temporary folder here: it will not outlast a "
            "restart of the server.",
            elem_id="history-temporary",
        )
    with gr.Row():
        filters.search.render()  # type: ignore[no-untyped-call]
        filters.tab.render()  # type: ignore[no-untyped-call]
        filters.everyone.render()  # type: ignore[no-untyped-call]
    history_total.render()  # type: ignore[no-untyped-call]
    history.render()  # type: ignore[no-untyped-call]
    with gr.Row():
        history_send = gr.Button("Send selected to edit", size="sm")
        history_add = gr.Button("Add selected as reference", size="sm")
        delete = gr.Button(
            "Delete selected run", size="sm", variant="stop", elem_id="history-delete"
        )
    # The buttons keep a button's height, level with the foot of the list beside them.
    with gr.Row(equal_height=False, elem_classes=["pick-and-act"]):
        filters.interrupted.render()  # type: ignore[no-untyped-call]
        filters.fetch.render()  # type: ignore[no-untyped-call]
    history_status = gr.Markdown("", elem_id="history-status")
    with gr.Row(equal_height=False, elem_classes=["pick-and-act"]):
        filters.export.render()  # type: ignore[no-untyped-call]
        export = gr.Button("Export selected as zip", size="sm", elem_id="history-export")
    exported = gr.File(label="Export", visible=False, elem_id="history-export-file")
    load_file = gr.File(
        label="Load parameters from an image this app saved (PNG, or the JPEG/WebP with its .json)",
        file_types=["image", ".json"],
        type="filepath",
        height=120,
        elem_id="load-parameters",
    )
    load_status = gr.Markdown("", elem_id="load-status")

    by_tab = {form.endpoint.tab: form for form in forms}
    restorable = [tabs, *(c for form in forms for c in form.components())]
    show = history_view(service)
    listing = [browser_id, *filters.components()]
    shown = [history, history_total, *filters.updated()]

    def restore(tab: str, values: dict[str, Any]) -> dict[Any, Any]:
        return {tabs: gr.Tabs(selected=tab), **by_tab[tab].restore(values)}

    async def shown_entry(
        browser_id: str, search: str, tab: str, everyone: bool, index: int
    ) -> HistoryEntry | None:
        """The entry at `index` of the gallery as the filters show it."""
        whose = None if everyone and service.views.all_runs_allowed() else browser_id
        entries, _ = await service.views.history_of(whose, search=search or "", tab=tab or "")
        with_images = [e for e in entries if e.image_paths]
        return with_images[index] if 0 <= index < len(with_images) else None

    async def restore_from_history(
        browser_id: str, search: str, tab: str, everyone: bool, event: gr.SelectData
    ) -> dict[Any, Any]:
        """A history entry's prompt and parameters, back in its tab."""
        entry = await shown_entry(browser_id, search, tab, everyone, event.index)
        if entry is None or entry.tab not in by_tab:
            return {}
        return restore(entry.tab, {"prompt": entry.prompt, **entry.parameters})

    async def choose(
        browser_id: str, search: str, tab: str, everyone: bool, event: gr.SelectData
    ) -> str:
        entry = await shown_entry(browser_id, search, tab, everyone, event.index)
        return entry.entry_id if entry else ""

    async def delete_run(
        browser_id: str, run_id: str, search: str, tab: str, everyone: bool
    ) -> tuple[Any, ...]:
        whose = None if everyone and service.views.all_runs_allowed() else browser_id
        if not run_id or not await service.views.delete_run(whose, run_id):
            said = describe_error("Click a run in the list first, then Delete.")
        else:
            said = "🗑️ Deleted the run and its images."
        return (*(await show(browser_id, search, tab, everyone)), "", said)

    async def fetch_run(
        browser_id: str, run_id: str | None, fal_key: str, request: gr.Request
    ) -> AsyncIterator[str]:
        if not run_id:
            yield describe_error("Choose an interrupted run first, then Fetch result.")
            return
        caller = caller_of(service, request, fal_key, browser_id=browser_id)
        yield "⏳ Asking fal for the result…"
        try:
            entry = await service.fetch_again(caller, run_id)
        except StudioError as exc:
            yield describe_error(exc.message)
            return
        count = len(entry.files)
        yield f"✅ Fetched {count} image{'s' if count != 1 else ''} from fal into your history."

    async def export_runs(browser_id: str, run_ids: list[str] | None, everyone: bool) -> Any:
        whose = None if everyone and service.views.all_runs_allowed() else browser_id
        try:
            path = await service.views.export_runs(whose, run_ids or [])
        except StudioError as exc:
            return gr.File(visible=False), describe_error(exc.message)
        count = len(run_ids or [])
        said = (
            f"📦 {count} run{'s' if count != 1 else ''} exported: the images, and "
            "runs.json, which *Load parameters* reads back."
        )
        return gr.File(value=str(path), visible=True), said

    async def load_parameters(file: str | None) -> dict[Any, Any]:
        """Prompt and parameters read back from an image this app saved."""
        if not file:
            return {load_status: ""}
        try:
            endpoint, values = await service.views.parameters_from_file(file)
        except StudioError as exc:
            return {load_status: describe_error(exc.message)}
        said = f"Loaded the prompt and parameters into the {endpoint.title} tab."
        return {**restore(endpoint.tab, values), load_status: said}

    selected_run = gr.State("")
    history.select(restore_from_history, listing, restorable, api_visibility="private")
    history.select(choose, listing, selected_run, api_visibility="private")
    gr.on(
        [filters.search.submit, filters.tab.change, filters.everyone.change],
        show,
        listing,
        shown,
        api_visibility="private",
        show_progress="hidden",
    )
    delete.click(
        delete_run,
        [browser_id, selected_run, *filters.components()],
        [*shown, selected_run, history_status],
        api_visibility="private",
    )
    filters.fetch.click(
        fetch_run,
        [browser_id, filters.interrupted, fal_key],
        history_status,
        api_visibility="private",
    ).then(show, listing, shown, api_visibility="private", show_progress="hidden")
    export.click(
        export_runs,
        [browser_id, filters.export, filters.everyone],
        [exported, history_status],
        api_visibility="private",
    )
    load_file.upload(
        load_parameters, load_file, [*restorable, load_status], api_visibility="private"
    )

    # Any result (or history image) can start, or continue, a chain of edits. The
    # Edit tab gets the app's own copy (its canvas draws it); when the edit runs,
    # a copy of a result on fal's media hosts is sent as its fal URL (edit_tab.py).
    async def picked_from_record(record: Any, selected: int | None, browser_id: str) -> str | None:
        """The app's copy of the result the user clicked (or the first) in a panel
        whose gallery may show fal's URLs: found through the run's record, in this
        browser's history, never from a URL the page sends."""
        if not isinstance(record, dict) or not isinstance(record.get("request_id"), str):
            return None
        return await service.views.result_file(browser_id, record["request_id"], selected or 0)

    async def picked_in_gallery(gallery: Any, selected: int | None) -> str | None:
        return picked(gallery, selected)

    async def picked_from_history(browser_id: str, run_id: str, everyone: bool) -> str | None:
        """The selected run's own first image (the History gallery shows thumbnails)."""
        whose = None if everyone and service.views.all_runs_allowed() else browser_id
        entry = await service.views.history_entry(whose, run_id)
        return entry.image_paths[0] if entry and entry.image_paths else None

    def wire(send: gr.Button, add: gr.Button, pick: Any, sources: list[Any]) -> None:
        """Send to edit / Add as reference for the image `await pick(*sources)` names."""

        async def sent(*values: Any) -> tuple[Any, Any]:
            return send_to_edit(await pick(*values[:-1]), values[-1])

        async def added(*values: Any) -> tuple[Any, Any]:
            return add_as_reference(await pick(*values[:-1]), values[-1])

        for button, verb in ((send, sent), (add, added)):
            button.click(verb, [*sources, references], [references, tabs], api_visibility="private")

    for panel in results:
        # The Generate and Edit panels show fal's URLs (their record says which run);
        # Compare's shows the app's files, read from the gallery as before.
        if panel.one_hop:
            sources = [panel.record, panel.selected, browser_id]
            wire(panel.send_to_edit, panel.add_reference, picked_from_record, sources)
        else:
            wire(
                panel.send_to_edit,
                panel.add_reference,
                picked_in_gallery,
                [panel.gallery, panel.selected],
            )
    wire(
        history_send,
        history_add,
        picked_from_history,
        [browser_id, selected_run, filters.everyone],
    )


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
