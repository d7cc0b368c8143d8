"""An edit before it leaves: checked images and mask, then sent to fal.

`draft_edit` does every check that can be done locally (prompt, parameters,
image count, each image readable and normalised, the mask the size of the
first image) so that nothing is sent, not even an upload, for a request fal
would refuse. `send_inputs` then turns the local images into URLs fal can read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from backend import fal
from backend.errors import InvalidInput
from backend.images import PreparedImage
from backend.masks import Mask
from backend.schema import MAX_REFERENCE_IMAGES, EditRequest

# Inputs up to this size travel inside the request as data URIs, while the
# request's inline total stays within INLINE_BUDGET_BYTES; the rest are uploaded
# to fal's storage, all at once. Measured on the fake (benchmarks/transfer.py,
# figures in the README): an upload costs a fixed ~40 ms of round trips, inline
# costs grow with size (base64 is a third bigger), and they cross between 1 and
# 4 MB. The budget keeps one request body small whatever the image count.
INLINE_LIMIT_BYTES = 2 * 1000 * 1000
INLINE_BUDGET_BYTES = 4 * 1000 * 1000

_PENDING = "pending:"  # placeholder URL while validating, before anything is sent


@dataclass(frozen=True)
class RemoteImage:
    """An input fal fetches itself, by its URL, sent unchanged."""

    url: str
    # Known when the app has a copy (a result of its own, sent back by URL); else
    # None: the file is not downloaded to find out.
    size: tuple[int, int] | None = None


Input = PreparedImage | RemoteImage


@dataclass(frozen=True)
class EditDraft:
    """A validated edit: its files still on this machine, its URLs as given.

    fal receives `inputs` in their order: local files inline or uploaded, URLs
    unchanged. The mask is the local `mask` or the caller's `mask_url` (never both).
    """

    request: EditRequest  # the local images' and mask's URLs are placeholders
    inputs: tuple[Input, ...]
    mask: Mask | None
    mask_url: str | None = None

    @property
    def images(self) -> tuple[PreparedImage, ...]:
        """The inputs that are files here (uploaded or sent inline)."""
        return tuple(item for item in self.inputs if isinstance(item, PreparedImage))

    @property
    def remote(self) -> tuple[str, ...]:
        """The inputs given by URL."""
        return tuple(item.url for item in self.inputs if isinstance(item, RemoteImage))

    @property
    def sizes(self) -> list[tuple[int, int] | None]:
        """Each input's (width, height) in order, None where it is not known here."""
        return [
            (item.width, item.height) if isinstance(item, PreparedImage) else item.size
            for item in self.inputs
        ]

    @property
    def main_size(self) -> tuple[int, int] | None:
        """The edited image's size, when it is known here."""
        return self.sizes[0] if self.inputs else None


def draft_edit(
    images: Sequence[Input],
    mask: Mask | None,
    *,
    image_urls: Sequence[str] = (),
    mask_image_url: str | None = None,
    model: type[EditRequest] = EditRequest,
    **parameters: Any,
) -> EditDraft:
    """Check an edit completely before anything is sent. Raises InvalidInput.

    `images` are files here, or URLs in their place (`RemoteImage`); `image_urls`
    and `mask_image_url` are URLs already checked as http(s) (backend/urls.py):
    they follow `images` and go to fal unchanged.
    `model` is the endpoint's request model (the registry's; a subclass of
    EditRequest with more fields is checked with those too)."""
    count = len(images) + len(image_urls)
    if not count:
        raise InvalidInput("Add at least one reference image (the first is the one you edit).")
    if count > MAX_REFERENCE_IMAGES:
        raise InvalidInput(
            f"You added {count} reference images; the model takes at most "
            f"{MAX_REFERENCE_IMAGES}. Remove some and try again."
        )
    if mask is not None and mask_image_url is not None:
        raise InvalidInput("Give one mask: a mask file or mask_image_url, not both.")
    inputs = (*images, *(RemoteImage(url) for url in image_urls))
    main = inputs[0]
    main_size = (main.width, main.height) if isinstance(main, PreparedImage) else main.size
    if mask is not None and main_size is not None and (mask.width, mask.height) != main_size:
        raise InvalidInput(
            f"The mask is {mask.width}x{mask.height} but the first image is "
            f"{main_size[0]}x{main_size[1]}; they must be the same size."
        )
    request = model.parse(
        image_urls=[
            item.url if isinstance(item, RemoteImage) else f"{_PENDING}{i}"
            for i, item in enumerate(inputs)
        ],
        mask_image_url=f"{_PENDING}mask" if mask is not None else mask_image_url,
        **parameters,
    )
    return EditDraft(request=request, inputs=inputs, mask=mask, mask_url=mask_image_url)


async def send_inputs(
    client: fal.Client,
    draft: EditDraft,
    *,
    inline_limit: int = INLINE_LIMIT_BYTES,
    inline_budget: int = INLINE_BUDGET_BYTES,
) -> EditRequest:
    """The draft's request with real URLs: small files inline, the rest uploaded in parallel.

    Each upload starts as soon as its file is ready: the references at once, the
    mask once encoded (in a thread, while they upload). The references share
    the inline budget by the rule in `_inline_choice`; the mask takes what they
    leave (a painted mask is a few kB, so in practice it always goes inline).
    """
    images = draft.images
    sizes = [len(image.data) for image in images]
    inline = _inline_choice(sizes, inline_limit, inline_budget)
    left = inline_budget - sum(size for size, keep in zip(sizes, inline, strict=True) if keep)
    uploads = [
        asyncio.ensure_future(
            _url_for(client, image.data, image.content_type, image.file_name, keep)
        )
        for image, keep in zip(images, inline, strict=True)
    ]
    try:
        mask_url = draft.mask_url
        if draft.mask is not None:
            mask = draft.mask
            png = await asyncio.to_thread(lambda: mask.png)
            keep = len(png) <= min(inline_limit, left)
            mask_url = await _url_for(client, png, "image/png", "mask.png", keep)
        sent = iter(await asyncio.gather(*uploads))
        image_urls = [
            item.url if isinstance(item, RemoteImage) else next(sent) for item in draft.inputs
        ]
    finally:
        # On any failure or cancellation (Stop, the deadline) no upload outlives the request.
        for upload in uploads:
            upload.cancel()
        await asyncio.gather(*uploads, return_exceptions=True)
    return draft.request.model_copy(update={"image_urls": image_urls, "mask_image_url": mask_url})


def needs_upload(
    draft: EditDraft,
    *,
    inline_limit: int = INLINE_LIMIT_BYTES,
    inline_budget: int = INLINE_BUDGET_BYTES,
) -> int:
    """How many references `send_inputs` will upload (for progress messages; the mask,
    not yet encoded when this is asked, goes inline in practice and is not counted)."""
    sizes = [len(image.data) for image in draft.images]
    return _inline_choice(sizes, inline_limit, inline_budget).count(False)


def _inline_choice(sizes: list[int], limit: int, budget: int) -> list[bool]:
    """Which files go inline: each within `limit`, smallest first, within the budget."""
    inline = [False] * len(sizes)
    for index in sorted(range(len(sizes)), key=sizes.__getitem__):
        if sizes[index] > limit or sizes[index] > budget:
            break
        inline[index] = True
        budget -= sizes[index]
    return inline


async def _url_for(
    client: fal.Client, data: bytes, content_type: str, file_name: str, inline: bool
) -> str:
    if inline:
        return fal.encode(data, content_type)
    return await client.upload(data, content_type, file_name)
