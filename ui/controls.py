"""What every tab shares: the run buttons, the result panel, and the components
created before the tabs (the key, the browser's id, the History panel)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from backend.snippets import request_as_code


@dataclass
class ResultPanel:
    status: gr.Markdown
    gallery: gr.Gallery
    record: gr.JSON
    send_to_edit: gr.Button
    add_reference: gr.Button
    selected: gr.State  # index of the result image the user clicked, if any
    code: list[gr.Markdown]  # the run's request as Python, JavaScript and cURL
    # The gallery shows fal's URLs for hosted results (ui/runs.py, in_page): a
    # result is then found through the record, not the gallery's value.
    one_hop: bool = False

    def outputs(self) -> list[Any]:
        return [self.gallery, self.record, self.status]


@dataclass
class Shared:
    """Components every tab's events use: created before the tabs, some shown after."""

    fal_key: gr.Textbox
    browser_id: gr.BrowserState
    history: gr.Gallery  # rendered in the History tab
    history_total: gr.Markdown
    show_history: Callable[..., Any]
    key_status: list[gr.Markdown]  # which key runs use, and what is left of a daily budget
    show_key: Callable[..., Any]
    # What `show_history` reads (the browser's id, the History tab's filters) and shows.
    history_inputs: list[Any] = field(default_factory=list)
    history_outputs: list[Any] = field(default_factory=list)

    def on_run(
        self,
        triggers: list[Any],
        handler: Callable[..., Any],
        inputs: dict[str, Any],
        panel: ResultPanel,
    ) -> None:
        """A tab's run in the page: status and results (and this browser's id) as it
        goes, then the History panel. `handler` gets its values by name, with the
        key and the browser's id as `fal_key` and `browser_id`."""
        gr.on(
            triggers,
            handler,
            inputs_kwargs={**inputs, "fal_key": self.fal_key, "browser_id": self.browser_id},
            outputs=[*panel.outputs(), self.browser_id],
            api_visibility="private",
            show_progress="minimal",
            show_progress_on=[panel.gallery],
        ).then(
            # Copy as code, from the record the run left (empty after a failure).
            code_of,
            panel.record,
            panel.code,
            api_visibility="private",
            queue=False,
            show_progress="hidden",
        ).then(
            self.show_history,
            self.history_inputs,
            self.history_outputs,
            api_visibility="private",
            show_progress="hidden",
        ).then(
            self.show_key,
            self.fal_key,
            self.key_status,
            api_visibility="private",
            show_progress="hidden",
        )


#: The keyboard shortcuts (ui/static/page.js), said next to every tab's run buttons.
SHORTCUT_HINT = "⌨️ **Ctrl+Enter** (⌘+Enter on a Mac) runs · **Esc** stops"


def run_buttons(prefix: str, label: str) -> tuple[gr.Button, gr.Button, gr.Markdown]:
    with gr.Row(elem_classes=["run-row"]):
        run = gr.Button(label, variant="primary", elem_id=f"{prefix}-run", scale=3)
        stop = gr.Button("Stop", variant="stop", elem_id=f"{prefix}-stop", scale=1)
    shortcut_hint(prefix)
    cost = gr.Markdown("", elem_id=f"{prefix}-cost")
    return run, stop, cost


def shortcut_hint(prefix: str) -> gr.Markdown:
    return gr.Markdown(SHORTCUT_HINT, elem_id=f"{prefix}-shortcuts", elem_classes=["shortcut-hint"])


def result_panel(prefix: str, columns: int = 2, *, one_hop: bool = False) -> ResultPanel:
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
    with gr.Accordion("Details", open=False, elem_id=f"{prefix}-details"):
        record = gr.JSON(label="Request record", elem_id=f"{prefix}-record")
        code = copy_as_code(prefix)
    selected = gr.State(None)
    gallery.select(clicked_index, None, selected, api_visibility="private", queue=False)
    # New results: an old click no longer points at the same image.
    gallery.change(lambda: None, None, selected, api_visibility="private", queue=False)
    return ResultPanel(
        status, gallery, record, send_to_edit, add_reference, selected, code, one_hop
    )


def clicked_index(event: gr.SelectData) -> int:
    return int(event.index)


def gallery_paths(value: Sequence[Any] | None) -> list[str]:
    """File paths from a Gallery value: (path, caption) pairs, dicts or plain paths."""
    paths = []
    for item in value or []:
        if isinstance(item, (tuple, list)):
            item = item[0]
        if isinstance(item, dict):
            item = item.get("path") or (item.get("image") or {}).get("path")
        if isinstance(item, (str, Path)):
            paths.append(str(item))
    return paths


def picked(results: Sequence[Any] | None, selected: int | None) -> str | None:
    """The result image the user clicked, or the first one."""
    paths = gallery_paths(results)
    if not paths:
        return None
    return paths[selected] if selected is not None and 0 <= selected < len(paths) else paths[0]


def url_list_input(label: str) -> gr.JSON:
    """A hidden input for a list of URLs, described to API callers (and to tools
    built from the API's description) as an array of strings, not "any JSON"."""
    component = gr.JSON(label=label, value=None, visible=False)
    # An instance setting, not a subclass: Gradio writes a .pyi stub beside the
    # source of every Component subclass when the class is made.
    component.api_info = _url_list_schema  # type: ignore[method-assign]
    return component


def _url_list_schema() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}}


def copy_as_code(prefix: str) -> list[gr.Markdown]:
    """The run's request as code to copy: Python, JavaScript and cURL.

    Markdown code blocks (each with Gradio's copy button), filled after each run
    (`Shared.on_run`): `gr.Code`, or filling them on the record's `change`, kept the
    page from settling for a full-page screenshot (tests/test_browser_workflow.py)."""
    gr.Markdown(
        "**Copy as code**: the exact request this run sent. The key is read from "
        "`FAL_KEY`; files from your machine are uploaded by the code, never pasted.",
        elem_id=f"{prefix}-code-note",
    )
    return [gr.Markdown("", elem_id=f"{prefix}-code-{language}") for language in _CODE_LANGUAGES]


# The snippets' languages, as Markdown names them, in the order they are shown.
_CODE_LANGUAGES = ("python", "javascript", "shell")
_CODE_TITLES = {
    "python": "Python, with fal_client",
    "javascript": "JavaScript, with @fal-ai/client",
    "shell": "cURL, through fal's queue",
}


def code_of(record: dict[str, Any] | list[Any] | None) -> tuple[str, str, str]:
    """The three snippets for a run's record, as Markdown; empty while there is none.

    Compare's record is a list, one record per setting: each finished setting gets
    its own snippet, headed by the setting."""
    runs = record if isinstance(record, list) else [record]
    sent = [
        run for run in runs if isinstance(run, dict) and "arguments" in run and "endpoint" in run
    ]
    if not sent:
        return "", "", ""
    blocks: dict[str, list[str]] = {language: [] for language in _CODE_LANGUAGES}
    for run in sent:
        snippets = request_as_code(run)
        texts = {
            "python": snippets.python,
            "javascript": snippets.javascript,
            "shell": snippets.curl,
        }
        heading = (
            f"**{run['setting']}**\n\n" if isinstance(record, list) and "setting" in run else ""
        )
        for language in _CODE_LANGUAGES:
            blocks[language].append(f"{heading}```{language}\n{texts[language]}```")
    python, javascript, shell = (
        f"{_CODE_TITLES[language]}:\n\n" + "\n\n".join(blocks[language])
        for language in _CODE_LANGUAGES
    )
    return python, javascript, shell
