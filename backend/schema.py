"""Typed requests and results for the two fal endpoints this app serves.

The field names, choices, ranges and defaults mirror fal's API pages for the
two endpoints exactly (ARCHITECTURE.md, "The contract"): a request object *is*
the JSON fal receives. The checks here run before anything leaves the machine,
so fal never gets a body it would refuse (the queue would accept it and only fail at result time).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic.fields import FieldInfo

from backend.errors import InvalidInput
from backend.formats import format_named
from backend.urls import on_fal_media

TEXT_TO_IMAGE_ENDPOINT = "fal-ai/gpt-image-1.5"
EDIT_ENDPOINT = "fal-ai/gpt-image-1.5/edit"

ImageSize = Literal["1024x1024", "1536x1024", "1024x1536"]
EditImageSize = Literal["auto", "1024x1024", "1536x1024", "1024x1536"]
Background = Literal["auto", "transparent", "opaque"]
Quality = Literal["low", "medium", "high"]
InputFidelity = Literal["low", "high"]
OutputFormat = Literal["jpeg", "png", "webp"]

# Choices as tuples, for the UI's dropdowns (one source of truth: the Literals).
IMAGE_SIZES: tuple[str, ...] = get_args(ImageSize)
EDIT_IMAGE_SIZES: tuple[str, ...] = get_args(EditImageSize)
BACKGROUNDS: tuple[str, ...] = get_args(Background)
QUALITIES: tuple[str, ...] = get_args(Quality)
INPUT_FIDELITIES: tuple[str, ...] = get_args(InputFidelity)
OUTPUT_FORMATS: tuple[str, ...] = get_args(OutputFormat)

NUM_IMAGES_MIN = 1
NUM_IMAGES_MAX = 4
# OpenAI's documented limits for GPT Image prompts and edit inputs.
PROMPT_MAX_CHARS = 32_000
MAX_REFERENCE_IMAGES = 16

MIME_TYPES: dict[str, str] = {name: format_named(name).mime for name in OUTPUT_FORMATS}

_FIELD_LABELS = {
    "prompt": "The prompt",
    "image_urls": "The reference images",
    "mask_image_url": "The mask",
    "num_images": "num_images",
}


class _Request(BaseModel):
    """What both endpoints share: the prompt, its checks, and how a request reads.

    Each endpoint's model declares its other fields itself, in the seed's order:
    that order is the order of the form's controls and of the public API's
    parameters. A field marked `IMAGE_INPUT` is filled from files (the Edit tab's
    references and mask), never from a control.
    """

    # strict: an API caller's "2" or True is not silently turned into num_images=2/1.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    endpoint: ClassVar[str]

    prompt: str

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        value = clean_prompt(value)
        if not has_visible_text(value):
            raise ValueError("is empty: describe the image you want")
        if len(value) > PROMPT_MAX_CHARS:
            raise ValueError(
                f"has {len(value):,} characters; the model accepts at most {PROMPT_MAX_CHARS:,}"
            )
        return value

    @model_validator(mode="after")
    def _transparent_needs_alpha(self) -> Self:
        background = getattr(self, "background", None)
        if background == "transparent" and getattr(self, "output_format", None) == "jpeg":
            raise ValueError(
                "a transparent background needs png or webp output (jpeg has no transparency)"
            )
        return self

    def to_arguments(self) -> dict[str, Any]:
        """The JSON body fal receives: every field, under its seed name."""
        return self.model_dump(exclude_none=True)

    @classmethod
    def parse(cls, **values: Any) -> Self:
        """Validate values (from the UI or an API caller) into a request.

        Raises InvalidInput with one readable sentence per problem.
        """
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidInput(describe_validation_error(exc)) from None

    @classmethod
    def parameter_names(cls) -> tuple[str, ...]:
        """The fields a form shows as controls: all but the prompt and image inputs."""
        return tuple(
            name
            for name, info in cls.model_fields.items()
            if name != "prompt" and not is_image_input(info)
        )

    @classmethod
    def image_inputs(cls) -> tuple[str, ...]:
        return tuple(name for name, info in cls.model_fields.items() if is_image_input(info))


# The mark of a field whose value comes from image files, not from a control.
IMAGE_INPUT: dict[str, Any] = {"studio_input": "image"}


def is_image_input(info: FieldInfo) -> bool:
    extra = info.json_schema_extra
    return isinstance(extra, dict) and extra.get("studio_input") == "image"


NumImages = Annotated[int, Field(ge=NUM_IMAGES_MIN, le=NUM_IMAGES_MAX)]


class TextToImageRequest(_Request):
    """Input of `fal-ai/gpt-image-1.5`."""

    endpoint: ClassVar[str] = TEXT_TO_IMAGE_ENDPOINT

    image_size: ImageSize = "1024x1024"
    background: Background = "auto"
    quality: Quality = "high"
    num_images: NumImages = 1
    output_format: OutputFormat = "png"
    sync_mode: bool = False


class EditRequest(_Request):
    """Input of `fal-ai/gpt-image-1.5/edit`.

    `image_urls` are URLs fal can fetch (its storage) or data URIs; the mask, if
    any, applies to the first image.
    """

    endpoint: ClassVar[str] = EDIT_ENDPOINT

    image_urls: list[str] = Field(
        min_length=1, max_length=MAX_REFERENCE_IMAGES, json_schema_extra=IMAGE_INPUT
    )
    image_size: EditImageSize = "auto"
    background: Background = "auto"
    quality: Quality = "high"
    input_fidelity: InputFidelity = "high"
    num_images: NumImages = 1
    output_format: OutputFormat = "png"
    sync_mode: bool = False
    mask_image_url: str | None = Field(default=None, json_schema_extra=IMAGE_INPUT)


# Any endpoint's request model.
Request = TextToImageRequest | EditRequest


# Control characters a prompt may keep: the ones that lay out text.
_LAYOUT_CONTROLS = frozenset("\t\n\r")


def clean_prompt(text: str) -> str:
    """The prompt as sent: control characters (NUL, escape codes...) removed.

    Everything printable stays exactly as typed, including emoji sequences,
    right-to-left text and combining marks. Unpaired surrogates (half an emoji,
    from a broken copy or a cut string) cannot be sent as UTF-8 at all, so they
    are refused rather than silently dropped.
    """
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        raise ValueError(
            "contains a broken character (half of an emoji or symbol); type or paste it again"
        )
    return "".join(ch for ch in text if ch in _LAYOUT_CONTROLS or unicodedata.category(ch) != "Cc")


def has_visible_text(text: str) -> bool:
    """Whether `text` has anything but spaces and invisible format characters."""
    return any(not ch.isspace() and unicodedata.category(ch) not in ("Cf", "Cc") for ch in text)


# pydantic's wrong-type errors, as the end of a sentence ("The prompt must be text.").
_TYPE_SENTENCES = {
    "string_type": "must be text",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
}


def describe_validation_error(exc: ValidationError) -> str:
    """Turn pydantic's report into sentences a person can act on."""
    sentences = []
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error.get("loc", ())]
        name = loc[0] if loc else ""
        label = _FIELD_LABELS.get(name, name)
        kind = error.get("type", "")
        ctx = error.get("ctx") or {}
        if kind == "value_error":
            # Our own validators: their message is already a sentence fragment.
            message = str(ctx.get("error", error.get("msg", "")))
            sentences.append(f"{label} {message}." if label else _capitalise(message) + ".")
        elif kind == "literal_error":
            sentences.append(f"{label} must be one of {ctx.get('expected')}.")
        elif name == "num_images":
            sentences.append(
                f"{label} must be a whole number from {NUM_IMAGES_MIN} to {NUM_IMAGES_MAX}."
            )
        elif kind == "missing" and name != "image_urls":
            sentences.append(f"{label} is required.")
        elif kind in _TYPE_SENTENCES and name not in ("image_urls",):
            sentences.append(f"{label} {_TYPE_SENTENCES[kind]}.")
        elif kind == "extra_forbidden":
            sentences.append(f"'{name}' is not a parameter of this endpoint.")
        elif kind in ("too_short", "missing") and name == "image_urls":
            sentences.append("Add at least one reference image.")
        elif kind == "too_long" and name == "image_urls":
            sentences.append(f"Use at most {MAX_REFERENCE_IMAGES} reference images.")
        else:
            sentences.append(f"{label}: {error.get('msg')}." if label else f"{error.get('msg')}.")
    # Field names stay lower-case as the API spells them, even first in a sentence.
    return " ".join(dict.fromkeys(sentences))


def _capitalise(text: str) -> str:
    return text[:1].upper() + text[1:]


@dataclass(frozen=True)
class ResultImage:
    """One image fal produced, saved locally byte for byte as fal sent it."""

    path: str
    content_type: str
    width: int
    height: int
    size_bytes: int
    source_url: str | None  # fal's CDN URL; None for sync_mode data URIs

    @property
    def format_name(self) -> str:
        return self.content_type.removeprefix("image/").upper()

    def caption(self) -> str:
        return f"{self.width}×{self.height} {self.format_name} · {_human_bytes(self.size_bytes)}"

    def shown_at(self, cdn_url: str | None) -> str:
        """What a gallery shows for it: fal's URL when the file is on fal's media
        hosts (the browser fetches it there, one hop), else the app's own copy."""
        if self.source_url and on_fal_media(self.source_url, cdn_url):
            return self.source_url
        return self.path


@dataclass(frozen=True)
class ImageFailure:
    """A result image fal listed but that could not be fetched or read."""

    index: int
    reason: str


@dataclass(frozen=True)
class Timings:
    queued_s: float
    running_s: float
    fetching_s: float
    total_s: float


@dataclass(frozen=True)
class GenerationResult:
    endpoint: str
    request_id: str
    arguments: dict[str, Any]
    images: list[ResultImage]
    failures: list[ImageFailure] = field(default_factory=list)
    timings: Timings | None = None
    key_source: str = ""
    metrics: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON record shown in the details panel and returned to API callers.

        It holds the arguments sent and never the key: only where it came from.
        """
        return {
            "endpoint": self.endpoint,
            "request_id": self.request_id,
            "key": self.key_source,
            "arguments": _redact_data_uris(self.arguments),
            "images": [
                {
                    "file_name": img.path.rsplit("/", 1)[-1],
                    "content_type": img.content_type,
                    "width": img.width,
                    "height": img.height,
                    "bytes": img.size_bytes,
                    "url": img.source_url,
                }
                for img in self.images
            ],
            "failures": [{"index": f.index, "reason": f.reason} for f in self.failures],
            "timings": None
            if self.timings is None
            else {k: round(v, 3) for k, v in self.timings.__dict__.items()},
            "metrics": self.metrics,
        }


def _redact_data_uris(arguments: dict[str, Any]) -> dict[str, Any]:
    """Data URIs can be megabytes long: show their type and size instead."""

    def shorten(value: Any) -> Any:
        if isinstance(value, str) and value.startswith("data:"):
            head = value.split(",", 1)[0]
            return f"{head},… ({len(value):,} characters)"
        if isinstance(value, list):
            return [shorten(v) for v in value]
        return value

    return {k: shorten(v) for k, v in arguments.items()}


def _human_bytes(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"
