"""What a request will cost: the one table of GPT Image 1.5 prices on fal.

The figures are fal's (its model pages; ARCHITECTURE.md, "Prices"), in USD. Nothing else in the app
may hold a price: the UI and the history read them from here.

An estimate is shown before anything is sent, so it must be honest about what
it cannot know:
- Output images are billed per image by quality and size: that part is exact.
- Text input tokens are estimated as one token per 4 characters of the prompt.
- Edit input images are billed as image tokens. fal gives ~135 tokens for a
  1024x1024 image at input_fidelity "low" and ~3,050 at "high". Other sizes are
  scaled by pixel area, and the factor is clamped to [1, 1.5]: we assume the
  model reads no image for less than one 1024x1024 unit, and scales larger
  inputs down to its own working size (at most 1536x1024, the largest it
  makes) before reading them, so a 12 MP phone photo is not priced as twelve
  units. Token counts are rounded up.
- Input tokens are counted once per request, however many images it makes.
- The mask and text output tokens (the model writes none we see) are left out.
fal's own invoice is what counts; the UI says "≈".
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from backend.errors import InvalidInput
from backend.schema import (
    EDIT_IMAGE_SIZES,
    IMAGE_SIZES,
    INPUT_FIDELITIES,
    NUM_IMAGES_MAX,
    NUM_IMAGES_MIN,
    QUALITIES,
)

# USD per output image, by quality, then size. The only place prices live.
PRICES_PER_IMAGE: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "low": MappingProxyType({"1024x1024": 0.009, "1536x1024": 0.013, "1024x1536": 0.013}),
        "medium": MappingProxyType({"1024x1024": 0.034, "1536x1024": 0.050, "1024x1536": 0.051}),
        "high": MappingProxyType({"1024x1024": 0.133, "1536x1024": 0.199, "1024x1536": 0.200}),
    }
)

TEXT_INPUT_USD_PER_1K_TOKENS = 0.005
IMAGE_INPUT_USD_PER_1K_TOKENS = 0.008
# Image input tokens for one 1024x1024-equivalent image, by input_fidelity.
IMAGE_INPUT_TOKENS: Mapping[str, int] = MappingProxyType({"low": 135, "high": 3050})
CHARS_PER_TOKEN = 4

_UNIT_AREA = 1024 * 1024
_MIN_AREA_FACTOR = 1.0
_MAX_AREA_FACTOR = 1536 * 1024 / _UNIT_AREA

_DEFAULT_SIZE = "1024x1024"
# An input image the app did not download (given by URL): priced at the largest
# area the rule counts, and the dearer output shape for image_size "auto".
UNKNOWN_INPUT_SIZE = (1024, 1536)


@dataclass(frozen=True)
class CostEstimate:
    """An estimate in USD, split the way fal bills it."""

    per_image_usd: float
    images_usd: float
    text_usd: float
    input_images_usd: float
    total_usd: float
    num_images: int = 1
    # The size the output images were priced at ("auto" resolved).
    priced_size: str = _DEFAULT_SIZE

    @property
    def tokens_usd(self) -> float:
        return self.text_usd + self.input_images_usd

    def describe(self) -> str:
        """One short line, e.g. "≈ $0.27 (2 × $0.133 + $0.001 in tokens)"."""
        # The unit price keeps the table's three decimals: it is a quoted price.
        parts = f"{self.num_images} × ${self.per_image_usd:.3f}"
        if self.tokens_usd > 0:
            parts += f" + {format_usd(self.tokens_usd)} in tokens"
        return f"≈ {format_usd(self.total_usd)} ({parts})"


def estimate_cost(
    *,
    quality: str,
    image_size: str,
    num_images: int,
    prompt: str = "",
    input_sizes: Sequence[tuple[int, int]] = (),
    input_fidelity: str = "high",
) -> CostEstimate:
    """Estimate one request's cost. Raises InvalidInput for values fal would refuse.

    `input_sizes` are the (width, height) of an edit's reference images, the
    first being the one edited; empty for text-to-image.
    """
    _check_count(num_images)
    _check_choice("input_fidelity", input_fidelity, INPUT_FIDELITIES)
    size = resolve_size(image_size, input_sizes)
    per_image = price_per_image(quality, size)
    images_usd = per_image * num_images
    text_usd = text_tokens(prompt) * TEXT_INPUT_USD_PER_1K_TOKENS / 1000
    image_tokens = sum(input_image_tokens(w, h, input_fidelity) for w, h in input_sizes)
    input_images_usd = image_tokens * IMAGE_INPUT_USD_PER_1K_TOKENS / 1000
    return CostEstimate(
        per_image_usd=per_image,
        images_usd=images_usd,
        text_usd=text_usd,
        input_images_usd=input_images_usd,
        total_usd=images_usd + text_usd + input_images_usd,
        num_images=num_images,
        priced_size=size,
    )


def price_of(
    values: Mapping[str, Any], input_sizes: Sequence[tuple[int, int]] = ()
) -> CostEstimate:
    """The price rule of both GPT Image 1.5 endpoints, from a request's field values.

    Values come from a request model or from the form as it stands (the prompt may
    still be empty): a field the endpoint does not have takes the API's default.
    """
    return estimate_cost(
        quality=values.get("quality", "high"),
        image_size=values.get("image_size", _DEFAULT_SIZE),
        num_images=values.get("num_images", 1),
        prompt=str(values.get("prompt") or ""),
        input_sizes=input_sizes,
        input_fidelity=values.get("input_fidelity", "high"),
    )


def price_per_image(quality: str, image_size: str) -> float:
    """USD for one output image of `quality` at a concrete `image_size` (not "auto")."""
    _check_choice("quality", quality, QUALITIES)
    _check_choice("image_size", image_size, IMAGE_SIZES)
    return PRICES_PER_IMAGE[quality][image_size]


def resolve_size(image_size: str, input_sizes: Sequence[tuple[int, int]] = ()) -> str:
    """The output size `image_size` stands for: "auto" follows the first input image."""
    _check_choice("image_size", image_size, EDIT_IMAGE_SIZES)
    for width, height in input_sizes:
        _check_dimensions(width, height)
    if image_size != "auto":
        return image_size
    if not input_sizes:
        return _DEFAULT_SIZE
    width, height = input_sizes[0]
    return closest_size(width, height)


def closest_size(width: int, height: int) -> str:
    """The output size nearest in aspect ratio to width x height.

    Compared on a log scale so that portrait and landscape are treated alike
    (4:3 and 3:4 are equally far from square); a tie goes to the square.
    """
    _check_dimensions(width, height)
    ratio = math.log(width / height)

    def distance(size: str) -> float:
        w, h = (int(part) for part in size.split("x"))
        return abs(math.log(w / h) - ratio)

    return min(IMAGE_SIZES, key=distance)


def text_tokens(prompt: str) -> int:
    return math.ceil(len(prompt) / CHARS_PER_TOKEN)


def input_image_tokens(width: int, height: int, input_fidelity: str) -> int:
    """Estimated image input tokens for one reference image (see the module notes)."""
    _check_dimensions(width, height)
    _check_choice("input_fidelity", input_fidelity, INPUT_FIDELITIES)
    factor = min(max(width * height / _UNIT_AREA, _MIN_AREA_FACTOR), _MAX_AREA_FACTOR)
    return math.ceil(IMAGE_INPUT_TOKENS[input_fidelity] * factor)


def format_usd(value: float) -> str:
    """A dollar amount at a precision that reads well: "$0.009", "$0.27", "$1.35"."""
    if value < 0:
        return "-" + format_usd(-value)
    if value == 0:
        return "$0.00"
    if value < 0.001:
        return "<$0.001"
    # Under ten cents the third decimal carries the information (low quality is $0.009).
    if round(value, 3) < 0.1:
        return f"${value:.3f}"
    return f"${value:,.2f}"


def _check_choice(name: str, value: object, choices: Sequence[str]) -> None:
    if value not in choices:
        options = ", ".join(choices)
        raise InvalidInput(f"{name} must be one of {options} (it is '{value}').")


def _check_count(num_images: object) -> None:
    # bool is an int to Python, but True images is not a number anyone meant.
    if (
        isinstance(num_images, bool)
        or not isinstance(num_images, int)
        or not NUM_IMAGES_MIN <= num_images <= NUM_IMAGES_MAX
    ):
        raise InvalidInput(
            f"num_images must be a whole number from {NUM_IMAGES_MIN} to {NUM_IMAGES_MAX}."
        )


def _check_dimensions(width: object, height: object) -> None:
    for side in (width, height):
        if isinstance(side, bool) or not isinstance(side, int) or side <= 0:
            raise InvalidInput("An input image has no usable size; add it again.")
