"""Forms built from the request models: one control per field, under the field's name.

Choices, defaults and ranges come from the endpoint's model (`backend/schema.py`),
help lines from the registry's hints (`backend/endpoints.py`). Handlers get the
values by name (Gradio's `inputs_kwargs`), and restoring a run is a dict keyed by
component, so nothing here depends on the order of the fields: a new field in a
model is a new control, a new API parameter, and a value saved and restored.
"""

from __future__ import annotations

import types
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

import gradio as gr
from annotated_types import Ge, Le
from pydantic.fields import FieldInfo

from backend.endpoints import Endpoint
from backend.schema import PROMPT_MAX_CHARS

Control = gr.Dropdown | gr.Slider | gr.Number | gr.Checkbox | gr.Textbox


@dataclass
class Form:
    """The prompt and one control per parameter of an endpoint."""

    endpoint: Endpoint
    prompt: gr.Textbox
    controls: dict[str, Control]  # by field name, in the model's order

    def inputs(self) -> dict[str, Any]:
        """The page's inputs, by field name (for `inputs_kwargs`)."""
        return {"prompt": self.prompt, **self.controls}

    def api_inputs(self) -> dict[str, Any]:
        """The public API's inputs: the same, except that whole-number fields come in
        through a hidden Number without bounds.

        A Slider compares an API caller's value with its bounds before any handler
        runs, so "two" or null would end in Gradio's bare TypeError. A Number
        without bounds or rounding hands the value to the request model untouched,
        and the model says what is wrong in its own sentence.
        """
        inputs: dict[str, Any] = {"prompt": self.prompt}
        for name, control in self.controls.items():
            if isinstance(control, gr.Slider):
                control = gr.Number(
                    value=control.value,
                    label=name,
                    info=control.info,
                    precision=None,
                    visible=False,
                )
            inputs[name] = control
        return inputs

    def components(self) -> list[Any]:
        return [self.prompt, *self.controls.values()]

    def restore(self, values: dict[str, Any]) -> dict[Any, Any]:
        """Updates that put `values` (prompt included) back into this form."""
        named = self.inputs()
        return {named[name]: value for name, value in values.items() if name in named}


def parameter_controls(endpoint: Endpoint, prefix: str) -> dict[str, Control]:
    """Every parameter of `endpoint` as a control, laid out where this is called.

    Choices go two to a row, then the other controls, each group in the model's
    order: the form stays short without hiding anything.
    """
    names = endpoint.parameter_names
    choices = [name for name in names if _is_choice(endpoint.field(name))]
    controls: dict[str, Control] = {}
    for start in range(0, len(choices), 2):
        with gr.Row():
            for name in choices[start : start + 2]:
                controls[name] = control_for(endpoint, name, prefix)
    for name in names:
        if name not in controls:
            controls[name] = control_for(endpoint, name, prefix)
    # Handlers and restore look controls up by name; the API lists them in this order.
    return {name: controls[name] for name in names}


def prompt_box(prefix: str, placeholder: str) -> gr.Textbox:
    return gr.Textbox(
        value="",
        label="prompt",
        lines=4,
        max_length=PROMPT_MAX_CHARS,
        placeholder=placeholder,
        elem_id=f"{prefix}-prompt",
    )


def control_for(endpoint: Endpoint, name: str, prefix: str) -> Control:
    """The control a field's type calls for, labelled with the field's own name."""
    info = endpoint.field(name)
    common: dict[str, Any] = {
        "value": info.default,
        "label": name,
        "info": endpoint.hint(name) or None,
        "elem_id": f"{prefix}-{name.replace('_', '-')}",
    }
    annotation = _without_none(info.annotation)
    if get_origin(annotation) is Literal:
        return gr.Dropdown([str(choice) for choice in get_args(annotation)], **common)
    if annotation is bool:
        return gr.Checkbox(**common)
    if annotation in (int, float):
        low, high = _bounds(info)
        if low is not None and high is not None:
            step = 1 if annotation is int else (high - low) / 100
            precision = 0 if annotation is int else None
            return gr.Slider(low, high, step=step, precision=precision, **common)
        return gr.Number(precision=0 if annotation is int else None, **common)
    return gr.Textbox(**common)


def _is_choice(info: FieldInfo) -> bool:
    return get_origin(_without_none(info.annotation)) is Literal


def _without_none(annotation: Any) -> Any:
    """`X | None` -> X (an optional field is still shown as an X)."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _bounds(info: FieldInfo) -> tuple[float | None, float | None]:
    low = high = None
    for item in info.metadata:
        if isinstance(item, Ge):
            low = item.ge
        elif isinstance(item, Le):
            high = item.le
    return low, high  # type: ignore[return-value]
