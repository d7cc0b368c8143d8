"""The price table and the cost estimate."""

from __future__ import annotations

import math

import pytest

from backend.errors import InvalidInput
from backend.pricing import (
    PRICES_PER_IMAGE,
    CostEstimate,
    closest_size,
    estimate_cost,
    format_usd,
    input_image_tokens,
    price_per_image,
    resolve_size,
)
from backend.schema import IMAGE_SIZES, QUALITIES


def test_the_table_prices_every_quality_and_size_of_the_schema():
    assert set(PRICES_PER_IMAGE) == set(QUALITIES)
    for quality in QUALITIES:
        assert set(PRICES_PER_IMAGE[quality]) == set(IMAGE_SIZES)


@pytest.mark.parametrize(
    ("quality", "size", "price"),
    [
        ("low", "1024x1024", 0.009),
        ("low", "1536x1024", 0.013),
        ("low", "1024x1536", 0.013),
        ("medium", "1024x1024", 0.034),
        ("medium", "1024x1536", 0.051),
        ("medium", "1536x1024", 0.050),
        ("high", "1024x1024", 0.133),
        ("high", "1024x1536", 0.200),
        ("high", "1536x1024", 0.199),
    ],
)
def test_prices_are_fals(quality, size, price):
    assert price_per_image(quality, size) == price


def test_a_text_to_image_estimate_adds_images_and_prompt_tokens():
    prompt = "x" * 401  # 101 tokens, rounded up
    estimate = estimate_cost(quality="high", image_size="1024x1536", num_images=3, prompt=prompt)
    assert estimate.per_image_usd == 0.200
    assert estimate.images_usd == pytest.approx(0.600)
    assert estimate.text_usd == pytest.approx(101 * 0.005 / 1000)
    assert estimate.input_images_usd == 0
    assert estimate.total_usd == pytest.approx(0.600 + 101 * 0.005 / 1000)
    assert estimate.num_images == 3
    assert estimate.priced_size == "1024x1536"


def test_edit_inputs_cost_image_tokens_by_fidelity():
    square = [(1024, 1024)]
    low = estimate_cost(
        quality="low",
        image_size="1024x1024",
        num_images=1,
        input_sizes=square,
        input_fidelity="low",
    )
    high = estimate_cost(
        quality="low",
        image_size="1024x1024",
        num_images=1,
        input_sizes=square,
        input_fidelity="high",
    )
    assert low.input_images_usd == pytest.approx(135 * 0.008 / 1000)
    assert high.input_images_usd == pytest.approx(3050 * 0.008 / 1000)


def test_input_tokens_scale_with_area_between_a_floor_and_a_cap():
    assert input_image_tokens(1024, 1024, "high") == 3050
    # Smaller images count as one 1024x1024 unit.
    assert input_image_tokens(256, 256, "high") == 3050
    # In between, by area, rounded up.
    assert input_image_tokens(1024, 1280, "low") == math.ceil(135 * 1.25)
    # Larger ones at most as the model's largest working size, 1536x1024.
    assert input_image_tokens(1536, 1024, "low") == math.ceil(135 * 1.5)
    assert input_image_tokens(4032, 3024, "low") == math.ceil(135 * 1.5)


def test_every_reference_image_counts_once_per_request():
    sizes = [(1024, 1024)] * 3
    one = estimate_cost(quality="low", image_size="auto", num_images=1, input_sizes=sizes)
    four = estimate_cost(quality="low", image_size="auto", num_images=4, input_sizes=sizes)
    assert one.input_images_usd == pytest.approx(3 * 3050 * 0.008 / 1000)
    assert four.input_images_usd == one.input_images_usd
    assert four.images_usd == pytest.approx(4 * one.images_usd)


@pytest.mark.parametrize(
    ("size", "expected"),
    [
        ((1000, 1000), "1024x1024"),
        ((1920, 1080), "1536x1024"),
        ((1080, 1920), "1024x1536"),
        ((4000, 3000), "1536x1024"),
        ((3000, 4000), "1024x1536"),
        ((1100, 1000), "1024x1024"),
    ],
)
def test_auto_follows_the_first_inputs_aspect_ratio(size, expected):
    assert closest_size(*size) == expected
    assert resolve_size("auto", [size, (500, 2000)]) == expected


def test_portrait_and_landscape_are_treated_alike():
    for width, height in [(1250, 1000), (1300, 1000), (1200, 1000)]:
        landscape = closest_size(width, height)
        portrait = closest_size(height, width)
        assert landscape.split("x") == portrait.split("x")[::-1]


def test_auto_without_inputs_and_fixed_sizes():
    assert resolve_size("auto") == "1024x1024"
    assert resolve_size("1536x1024", [(1000, 3000)]) == "1536x1024"
    estimate = estimate_cost(
        quality="medium", image_size="auto", num_images=1, input_sizes=[(1080, 1920)]
    )
    assert estimate.per_image_usd == 0.051
    assert estimate.priced_size == "1024x1536"


@pytest.mark.parametrize(
    ("kwargs", "phrase"),
    [
        ({"quality": "ultra"}, "quality must be one of low, medium, high"),
        ({"image_size": "512x512"}, "image_size must be one of"),
        ({"num_images": 0}, "num_images must be a whole number from 1 to 4"),
        ({"num_images": 5}, "num_images"),
        ({"num_images": True}, "num_images"),
        ({"input_fidelity": "medium"}, "input_fidelity must be one of low, high"),
        ({"input_sizes": [(0, 100)]}, "no usable size"),
    ],
)
def test_invalid_values_are_refused_with_a_sentence(kwargs, phrase):
    values = {"quality": "high", "image_size": "1024x1024", "num_images": 1, **kwargs}
    with pytest.raises(InvalidInput) as info:
        estimate_cost(**values)
    assert phrase in info.value.message
    assert info.value.message.endswith(".")


def test_auto_is_no_price_of_its_own():
    with pytest.raises(InvalidInput):
        price_per_image("high", "auto")


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "$0.00"),
        (0.00025, "<$0.001"),
        (0.009, "$0.009"),
        (0.034, "$0.034"),
        (0.0999, "$0.10"),
        (0.26625, "$0.27"),
        (1.35, "$1.35"),
        (1234.5, "$1,234.50"),
    ],
)
def test_format_usd(value, text):
    assert format_usd(value) == text


def test_describe_is_short_and_names_the_parts():
    estimate = estimate_cost(
        quality="high", image_size="1024x1024", num_images=2, prompt="a red fox in snow " * 12
    )
    assert estimate.describe() == "≈ $0.27 (2 × $0.133 + <$0.001 in tokens)"
    edit = estimate_cost(
        quality="low",
        image_size="auto",
        num_images=1,
        prompt="add a hat",
        input_sizes=[(1024, 1024)],
    )
    assert edit.describe() == "≈ $0.033 (1 × $0.009 + $0.024 in tokens)"
    bare = CostEstimate(0.05, 0.05, 0.0, 0.0, 0.05)
    assert bare.describe() == "≈ $0.050 (1 × $0.050)"
