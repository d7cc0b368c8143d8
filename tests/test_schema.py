"""The request models mirror the seeds and refuse, in plain words, what fal would refuse."""

from __future__ import annotations

import pytest

from backend.errors import InvalidInput
from backend.schema import (
    EDIT_IMAGE_SIZES,
    IMAGE_SIZES,
    EditRequest,
    GenerationResult,
    ResultImage,
    TextToImageRequest,
)


def test_text_to_image_defaults_are_the_seeds_defaults():
    request = TextToImageRequest.parse(prompt="a red fox")
    assert request.to_arguments() == {
        "prompt": "a red fox",
        "image_size": "1024x1024",
        "background": "auto",
        "quality": "high",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
    }
    assert request.endpoint == "fal-ai/gpt-image-1.5"


def test_edit_defaults_are_the_seeds_defaults_and_mask_is_omitted_when_absent():
    request = EditRequest.parse(prompt="add a hat", image_urls=["https://x/a.png"])
    arguments = request.to_arguments()
    assert arguments == {
        "prompt": "add a hat",
        "image_urls": ["https://x/a.png"],
        "image_size": "auto",
        "background": "auto",
        "quality": "high",
        "input_fidelity": "high",
        "num_images": 1,
        "output_format": "png",
        "sync_mode": False,
    }
    assert "mask_image_url" not in arguments
    assert request.endpoint == "fal-ai/gpt-image-1.5/edit"


def test_choices_are_exactly_the_seeds():
    assert IMAGE_SIZES == ("1024x1024", "1536x1024", "1024x1536")
    assert EDIT_IMAGE_SIZES == ("auto", "1024x1024", "1536x1024", "1024x1536")


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"prompt": ""}, "The prompt is empty"),
        ({"prompt": "   \n\t"}, "The prompt is empty"),
        ({"prompt": "x" * 32_001}, "32,001 characters; the model accepts at most 32,000"),
        ({"prompt": "p", "num_images": 5}, "num_images must be a whole number from 1 to 4"),
        ({"prompt": "p", "num_images": 0}, "num_images must be a whole number from 1 to 4"),
        ({"prompt": "p", "num_images": True}, "num_images must be a whole number from 1 to 4"),
        ({"prompt": "p", "num_images": "2"}, "num_images must be a whole number from 1 to 4"),
        ({"prompt": "p", "image_size": "auto"}, "image_size must be one of"),
        ({"prompt": "p", "image_size": "512x512"}, "image_size must be one of"),
        ({"prompt": "p", "quality": "ultra"}, "quality must be one of"),
        ({"prompt": "p", "output_format": "gif"}, "output_format must be one of"),
        (
            {"prompt": "p", "background": "transparent", "output_format": "jpeg"},
            "transparent background needs png or webp",
        ),
        ({"prompt": "p", "seed": 3}, "'seed' is not a parameter of this endpoint"),
        ({"prompt": "p", "sync_mode": "yes"}, "sync_mode"),
    ],
)
def test_text_to_image_refuses_with_a_sentence(values, expected):
    with pytest.raises(InvalidInput) as caught:
        TextToImageRequest.parse(**values)
    assert expected in caught.value.message
    assert caught.value.message.endswith(".")
    assert "pydantic" not in caught.value.message.lower()


def test_unusual_unicode_prompt_is_accepted_verbatim():
    prompt = "🦊 un zorro — 狐 «ж» \u200d e\u0301"
    assert TextToImageRequest.parse(prompt=prompt).to_arguments()["prompt"] == prompt


def test_prompt_at_the_limit_is_accepted():
    assert TextToImageRequest.parse(prompt="x" * 32_000).prompt == "x" * 32_000


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"prompt": "p", "image_urls": []}, "Add at least one reference image"),
        ({"prompt": "p", "image_urls": ["u"] * 17}, "at most 16 reference images"),
        ({"prompt": "p", "image_urls": ["u"], "input_fidelity": "medium"}, "input_fidelity"),
        ({"prompt": "p"}, "Add at least one reference image"),
        ({"image_urls": ["u"]}, "The prompt is required"),
    ],
)
def test_edit_refuses_with_a_sentence(values, expected):
    with pytest.raises(InvalidInput) as caught:
        EditRequest.parse(**values)
    assert expected in caught.value.message


def test_transparent_png_and_webp_are_fine():
    for fmt in ("png", "webp"):
        request = TextToImageRequest.parse(prompt="p", background="transparent", output_format=fmt)
        assert request.background == "transparent"


def test_record_never_holds_data_uris_in_full():
    image = ResultImage("/tmp/a.png", "image/png", 1024, 1024, 2_000_000, None)
    big = "data:image/png;base64," + "A" * 100_000
    result = GenerationResult(
        endpoint="fal-ai/gpt-image-1.5/edit",
        request_id="r1",
        arguments={"prompt": "p", "image_urls": [big]},
        images=[image],
        key_source="your key",
    )
    record = result.record()
    assert record["arguments"]["image_urls"][0].startswith("data:image/png;base64,…")
    assert len(record["arguments"]["image_urls"][0]) < 100
    assert record["key"] == "your key"
    assert record["images"][0]["width"] == 1024
    assert image.caption() == "1024×1024 PNG · 1.9 MB"
