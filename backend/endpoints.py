"""The endpoint registry: one entry per fal endpoint this app serves.

An entry ties together what every layer needs to know about an endpoint: its
request model (fields, choices, ranges, defaults), the tab and public API name
it gets, the help text shown beside each control, how it is priced, and what the
offline demo draws its placeholders over. Forms, the public API, metadata,
history, restore and pricing all iterate over these entries; none of them lists
fields of its own. Adding an endpoint is one model in `backend/schema.py` plus
one entry here (ARCHITECTURE.md, "Adding an endpoint, a parameter or a tab").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from pydantic.fields import FieldInfo

from backend.client import Job
from backend.demo_inputs import DemoInputs, first_image_and_mask, nothing
from backend.errors import InvalidInput
from backend.pricing import CostEstimate, price_of
from backend.schema import EDIT_ENDPOINT, TEXT_TO_IMAGE_ENDPOINT, EditRequest, TextToImageRequest

# (values of the request's fields, (width, height) of each input image) -> the estimate.
PriceRule = Callable[[Mapping[str, Any], Sequence[tuple[int, int]]], CostEstimate]

# The help line under each control, by field name: one table for every endpoint.
# A field without a hint shows none; an entry may override a line for itself.
HINTS: Mapping[str, str] = MappingProxyType(
    {
        "image_size": "Width x height",
        "background": "transparent needs png or webp",
        "quality": "Higher is slower and costs more",
        "input_fidelity": "How closely to keep the input's details",
        "num_images": "How many images to make",
        "output_format": "File format of the results",
        "sync_mode": "Return images inline as data URIs; fal keeps no copy in its request history",
    }
)


@dataclass(frozen=True)
class Endpoint:
    """Everything the app knows about one fal endpoint."""

    endpoint_id: str
    tab: str  # the tab's id, the public API's name (`/generate`), history's label
    title: str  # the tab's label and its run button
    model: type[TextToImageRequest] | type[EditRequest]
    price: PriceRule = price_of
    # What the offline demo draws its placeholders over (backend/demo_inputs.py).
    demo_inputs: Callable[[Job], DemoInputs] = nothing
    hints: Mapping[str, str] = field(default_factory=dict)  # overrides of HINTS

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The fields shown as controls, in the model's (the seed's) order."""
        return self.model.parameter_names()

    @property
    def image_inputs(self) -> tuple[str, ...]:
        """The fields filled from image files (the Edit tab's references and mask)."""
        return self.model.image_inputs()

    @property
    def takes_images(self) -> bool:
        return bool(self.image_inputs)

    def field(self, name: str) -> FieldInfo:
        return self.model.model_fields[name]

    def hint(self, name: str) -> str:
        return self.hints.get(name, HINTS.get(name, ""))

    def defaults(self) -> dict[str, Any]:
        """Each control's default: the API's own."""
        return {name: self.field(name).default for name in self.parameter_names}


GENERATE = Endpoint(
    endpoint_id=TEXT_TO_IMAGE_ENDPOINT,
    tab="generate",
    title="Generate",
    model=TextToImageRequest,
)
EDIT = Endpoint(
    endpoint_id=EDIT_ENDPOINT,
    tab="edit",
    title="Edit",
    model=EditRequest,
    demo_inputs=first_image_and_mask,
    hints={"image_size": "auto follows the first image"},
)


@dataclass(frozen=True)
class Registry:
    """The endpoints one app serves (the app's, or a test's with a changed model)."""

    endpoints: tuple[Endpoint, ...]

    def __iter__(self) -> Any:
        return iter(self.endpoints)

    def by_tab(self, tab: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.tab == tab:
                return endpoint
        raise ValueError(f"no endpoint has the tab {tab!r}")

    def by_id(self, endpoint_id: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.endpoint_id == endpoint_id:
                return endpoint
        raise InvalidInput("These saved parameters are for an endpoint this app does not serve.")

    @property
    def text_to_image(self) -> Endpoint:
        """The endpoint that makes images from a prompt alone (what Compare runs)."""
        return next(e for e in self.endpoints if not e.takes_images)

    @property
    def editing(self) -> Endpoint:
        """The endpoint that takes reference images (what the Edit tab runs)."""
        return next(e for e in self.endpoints if e.takes_images)


ENDPOINTS = Registry((GENERATE, EDIT))
