"""Input schemas of the two GPT Image 1.5 endpoints, hand-written from the seed pages.

This module is deliberately independent of the project's `backend/` package: the
fake is a second opinion on what a valid request looks like, so it must not share
code (or mistakes) with the code under test.

Errors mimic FastAPI/pydantic v2 422 items: `{"loc": ["body", field, ...], "msg",
"type", "input"[, "ctx"]}`. One deliberate difference: pydantic's lax mode would
coerce `true` -> 1, `"2"` -> 2 or `1` -> True; this fake reports those as type
errors, because an app that relies on coercion is sending the wrong types.

Unknown fields are reported as `extra_forbidden` but are not blocking: fal ignores
them, yet a test can still assert that the app sends none.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

TEXT_TO_IMAGE = "fal-ai/gpt-image-1.5"
EDIT = "fal-ai/gpt-image-1.5/edit"

PROMPT_MAX_CHARS = 32_000  # OpenAI's documented prompt limit
MAX_INPUT_IMAGES = 16  # OpenAI's documented limit for image inputs
SIZES: tuple[str, ...] = ("1024x1024", "1536x1024", "1024x1536")
BACKGROUNDS: tuple[str, ...] = ("auto", "transparent", "opaque")
QUALITIES: tuple[str, ...] = ("low", "medium", "high")
FIDELITIES: tuple[str, ...] = ("low", "high")
OUTPUT_FORMATS: tuple[str, ...] = ("jpeg", "png", "webp")

ErrorItem = dict[str, Any]
Kind = Literal["str", "int", "bool", "enum", "str_list"]


@dataclass(frozen=True)
class FieldSpec:
    """One input field, described the way the seed page describes it."""

    name: str
    kind: Kind
    required: bool = False
    default: Any = None
    choices: tuple[str, ...] = ()
    ge: int | None = None
    le: int | None = None
    max_length: int | None = None  # characters for str, items for lists
    min_items: int | None = None
    nullable: bool = False  # `Optional[...] = None` fields accept JSON null


@dataclass(frozen=True)
class EndpointSchema:
    endpoint_id: str
    fields: tuple[FieldSpec, ...]

    def field(self, name: str) -> FieldSpec:
        for spec in self.fields:
            if spec.name == name:
                return spec
        raise KeyError(name)

    def validate(self, body: Any) -> list[ErrorItem]:
        """All problems with `body`, blocking ones and `extra_forbidden` alike."""
        if not isinstance(body, dict):
            return [
                _error(
                    ("body",),
                    "Input should be a valid dictionary or object to extract fields from",
                    "model_attributes_type",
                    body,
                )
            ]
        errors: list[ErrorItem] = []
        for spec in self.fields:
            if spec.name not in body:
                if spec.required:
                    errors.append(_error(("body", spec.name), "Field required", "missing", body))
                continue
            errors.extend(_check_field(spec, body[spec.name]))
        if not errors:
            # Cross-field rules run after the fields themselves, like a pydantic
            # model validator would.
            errors.extend(_check_combinations(body))
        known = {spec.name for spec in self.fields}
        for name, value in body.items():
            if name not in known:
                errors.append(
                    _error(
                        ("body", name), "Extra inputs are not permitted", "extra_forbidden", value
                    )
                )
        return errors

    def with_defaults(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments the model would see: defaults filled in, extras dropped."""
        resolved: dict[str, Any] = {}
        for spec in self.fields:
            value = body.get(spec.name)
            resolved[spec.name] = spec.default if value is None else value
        return resolved


def blocking(errors: list[ErrorItem]) -> list[ErrorItem]:
    """The errors fal would refuse the request for (extras are ignored by fal)."""
    return [item for item in errors if item["type"] != "extra_forbidden"]


def _error(
    loc: tuple[str | int, ...], msg: str, type_: str, value: Any, ctx: dict[str, Any] | None = None
) -> ErrorItem:
    item: ErrorItem = {"loc": list(loc), "msg": msg, "type": type_, "input": value}
    if ctx is not None:
        item["ctx"] = ctx
    return item


def _expected(choices: tuple[str, ...]) -> str:
    quoted = [f"'{choice}'" for choice in choices]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _check_field(spec: FieldSpec, value: Any) -> list[ErrorItem]:
    loc = ("body", spec.name)
    if value is None and spec.nullable:
        return []
    if spec.kind == "str":
        return _check_str(loc, spec, value)
    if spec.kind == "int":
        return _check_int(loc, spec, value)
    if spec.kind == "bool":
        if isinstance(value, bool):
            return []
        return [_error(loc, "Input should be a valid boolean", "bool_type", value)]
    if spec.kind == "enum":
        if isinstance(value, str) and value in spec.choices:
            return []
        expected = _expected(spec.choices)
        return [_error(loc, f"Input should be {expected}", "enum", value, {"expected": expected})]
    return _check_str_list(loc, spec, value)


def _check_str(loc: tuple[str | int, ...], spec: FieldSpec, value: Any) -> list[ErrorItem]:
    if not isinstance(value, str):
        return [_error(loc, "Input should be a valid string", "string_type", value)]
    if spec.max_length is not None and len(value) > spec.max_length:
        return [
            _error(
                loc,
                f"String should have at most {spec.max_length} characters",
                "string_too_long",
                value,
                {"max_length": spec.max_length},
            )
        ]
    return []


def _check_int(loc: tuple[str | int, ...], spec: FieldSpec, value: Any) -> list[ErrorItem]:
    # bool is a subclass of int in Python; JSON true is not an integer.
    if isinstance(value, bool) or not isinstance(value, int):
        return [_error(loc, "Input should be a valid integer", "int_type", value)]
    if spec.ge is not None and value < spec.ge:
        return [
            _error(
                loc,
                f"Input should be greater than or equal to {spec.ge}",
                "greater_than_equal",
                value,
                {"ge": spec.ge},
            )
        ]
    if spec.le is not None and value > spec.le:
        return [
            _error(
                loc,
                f"Input should be less than or equal to {spec.le}",
                "less_than_equal",
                value,
                {"le": spec.le},
            )
        ]
    return []


def _check_str_list(loc: tuple[str | int, ...], spec: FieldSpec, value: Any) -> list[ErrorItem]:
    if not isinstance(value, list):
        return [_error(loc, "Input should be a valid list", "list_type", value)]
    count = len(value)
    if spec.min_items is not None and count < spec.min_items:
        return [
            _error(
                loc,
                f"List should have at least {spec.min_items} item after validation, not {count}",
                "too_short",
                value,
                {"field_type": "List", "min_length": spec.min_items, "actual_length": count},
            )
        ]
    if spec.max_length is not None and count > spec.max_length:
        return [
            _error(
                loc,
                f"List should have at most {spec.max_length} items after validation, not {count}",
                "too_long",
                value,
                {"field_type": "List", "max_length": spec.max_length, "actual_length": count},
            )
        ]
    return [
        _error((*loc, index), "Input should be a valid string", "string_type", item)
        for index, item in enumerate(value)
        if not isinstance(item, str)
    ]


def _check_combinations(body: Mapping[str, Any]) -> list[ErrorItem]:
    # OpenAI: a transparent background needs an output format with alpha.
    if body.get("background") == "transparent" and body.get("output_format") == "jpeg":
        return [
            _error(
                ("body", "background"),
                "Value error, transparent background requires output_format "
                "'png' or 'webp', not 'jpeg'",
                "value_error",
                "transparent",
            )
        ]
    return []


_COMMON: tuple[FieldSpec, ...] = (
    FieldSpec("prompt", "str", required=True, max_length=PROMPT_MAX_CHARS),
)
_TAIL: tuple[FieldSpec, ...] = (
    FieldSpec("background", "enum", default="auto", choices=BACKGROUNDS),
    FieldSpec("quality", "enum", default="high", choices=QUALITIES),
)
_OUTPUT: tuple[FieldSpec, ...] = (
    FieldSpec("num_images", "int", default=1, ge=1, le=4),
    FieldSpec("output_format", "enum", default="png", choices=OUTPUT_FORMATS),
    FieldSpec("sync_mode", "bool", default=False),
)

TEXT_TO_IMAGE_SCHEMA = EndpointSchema(
    TEXT_TO_IMAGE,
    (
        *_COMMON,
        # Text-to-image has no "auto" size (its page lists three sizes only).
        FieldSpec("image_size", "enum", default="1024x1024", choices=SIZES),
        *_TAIL,
        *_OUTPUT,
    ),
)

EDIT_SCHEMA = EndpointSchema(
    EDIT,
    (
        *_COMMON,
        FieldSpec(
            "image_urls", "str_list", required=True, min_items=1, max_length=MAX_INPUT_IMAGES
        ),
        FieldSpec("image_size", "enum", default="auto", choices=("auto", *SIZES)),
        *_TAIL,
        FieldSpec("input_fidelity", "enum", default="high", choices=FIDELITIES),
        *_OUTPUT,
        FieldSpec("mask_image_url", "str", nullable=True),
    ),
)

SCHEMAS: dict[str, EndpointSchema] = {
    schema.endpoint_id: schema for schema in (TEXT_TO_IMAGE_SCHEMA, EDIT_SCHEMA)
}
