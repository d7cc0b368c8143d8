"""Edits are checked whole before anything leaves; inputs go inline or uploaded by rule."""

from __future__ import annotations

import io
import time
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from backend import ImageClient, Settings, choose_key
from backend.edits import (
    INLINE_BUDGET_BYTES,
    INLINE_LIMIT_BYTES,
    _inline_choice,
    draft_edit,
)
from backend.errors import InvalidInput
from backend.images import prepare_image
from backend.masks import mask_from_layers

KEY = "aaaaaaaa-0000-4000-8000-00000000000a:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"


def png(width: int, height: int, colour=(10, 20, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(buffer, "PNG")
    return buffer.getvalue()


def stroke_mask(width: int, height: int):
    layer = np.zeros((height, width, 4), np.uint8)
    layer[10:20, 10:20, 3] = 255
    return mask_from_layers([layer], (width, height))


def test_a_draft_validates_parameters_with_placeholder_urls():
    draft = draft_edit([prepare_image(png(64, 48))], None, prompt="add a hat", quality="low")
    assert draft.request.quality == "low"
    assert draft.request.image_urls == ["pending:0"]
    assert draft.request.mask_image_url is None
    assert draft.main_size == (64, 48)


def test_a_draft_with_a_mask_names_its_place():
    draft = draft_edit([prepare_image(png(64, 48))], stroke_mask(64, 48), prompt="p")
    assert draft.request.mask_image_url == "pending:mask"


@pytest.mark.parametrize(
    ("count", "phrase"),
    [(0, "Add at least one reference image"), (17, "at most 16")],
)
def test_image_count_is_checked(count, phrase):
    images = [prepare_image(png(8, 8))] * count
    with pytest.raises(InvalidInput) as caught:
        draft_edit(images, None, prompt="p")
    assert phrase in caught.value.message


def test_a_mask_of_another_size_than_the_first_image_is_refused():
    with pytest.raises(InvalidInput) as caught:
        draft_edit([prepare_image(png(64, 48))], stroke_mask(48, 64), prompt="p")
    assert "48x64" in caught.value.message and "64x48" in caught.value.message


def test_bad_parameters_are_refused_before_any_upload():
    with pytest.raises(InvalidInput) as caught:
        draft_edit(
            [prepare_image(png(8, 8))],
            None,
            prompt="p",
            background="transparent",
            output_format="jpeg",
        )
    assert "png or webp" in caught.value.message


def test_small_files_go_inline_and_large_ones_are_uploaded():
    small, large = 100_000, INLINE_LIMIT_BYTES + 1
    assert _inline_choice([small, large, small], INLINE_LIMIT_BYTES, INLINE_BUDGET_BYTES) == [
        True,
        False,
        True,
    ]


def test_the_inline_budget_caps_one_request_body():
    sizes = [1_500_000] * 5  # each may go inline, all together may not
    inline = _inline_choice(sizes, INLINE_LIMIT_BYTES, INLINE_BUDGET_BYTES)
    assert sum(s for s, keep in zip(sizes, inline, strict=True) if keep) <= INLINE_BUDGET_BYTES
    assert inline.count(True) == 2


def test_a_zero_limit_uploads_everything():
    assert _inline_choice([10, 20], 0, INLINE_BUDGET_BYTES) == [False, False]


# ---- sending: each upload starts as soon as its file is ready ----------------------------------


async def test_references_upload_while_the_mask_is_still_being_encoded(fake, tmp_path, monkeypatch):
    """The mask's PNG is encoded only once both references' uploads have reached fal:
    its encoder (zlib's, run-length, as only the mask asks for it; references are not
    re-encoded) is held until then (for 10 s at most, which fails the test)."""
    holding: list[int] = []
    original = zlib.compressobj

    def compressobj(*args: Any, **kwargs: Any) -> Any:
        if args[4:5] == (zlib.Z_RLE,):
            deadline = time.monotonic() + 10
            while len(fake.uploads) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            holding.append(len(fake.uploads))
        return original(*args, **kwargs)

    monkeypatch.setattr(zlib, "compressobj", compressobj)
    settings = Settings(fal_key=KEY, results_dir=tmp_path, inline_limit_bytes=0)
    client = ImageClient(settings)
    references = [
        prepare_image(png(300, 200), name="a.png"),
        prepare_image(png(64, 64), name="b.png"),
    ]
    draft = draft_edit(references, stroke_mask(300, 200), prompt="add a kite")
    try:
        result = await client.run(draft, choose_key(KEY, None))
    finally:
        await client.aclose()
    assert holding == [2], "both references were uploading before the mask existed"
    assert [u.file_name for u in fake.uploads][-1] == "mask.png"
    (sub,) = fake.submissions
    assert [(d.role, d.width, d.height) for d in sub.decoded_inputs] == [
        ("image", 300, 200),
        ("image", 64, 64),
        ("mask", 300, 200),
    ]
    assert result.images


def test_urls_follow_the_files_and_count_towards_the_limit():
    image = prepare_image(png(64, 48))
    urls = ["https://v3.fal.media/files/a.png", "https://example.com/b.png"]
    draft = draft_edit([image], None, image_urls=urls, prompt="p")
    assert draft.request.image_urls == ["pending:0", *urls]
    assert draft.remote == tuple(urls)
    only_urls = draft_edit([], None, image_urls=urls, prompt="p")
    assert only_urls.request.image_urls == urls and only_urls.main_size is None
    with pytest.raises(InvalidInput, match="17 reference images"):
        draft_edit([image], None, image_urls=urls[:1] * 16, prompt="p")


def test_one_mask_only():
    with pytest.raises(InvalidInput, match="not both"):
        draft_edit(
            [prepare_image(png(64, 48))],
            stroke_mask(64, 48),
            mask_image_url="https://v3.fal.media/files/m.png",
            prompt="p",
        )
