"""Event handlers: verbs that turn UI values into backend calls and back.

They hold no layout. Their parameter names are the public API's parameter
names (Gradio reads them from the signatures), so they mirror the fal fields.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from backend import (
    Finished,
    ImageClient,
    Settings,
    StudioError,
    TextToImageRequest,
    choose_key,
)
from backend.errors import InvalidInput
from backend.keys import clean_user_key
from ui.progress import describe_error, describe_progress, describe_result

log = logging.getLogger("studio.ui")

# A streamed status update at most this often: elapsed time stays live without
# flooding many browsers with a message per queue poll.
_STATUS_EVERY_S = 0.4

GalleryItems = list[tuple[str, str]]
Outputs = tuple[Any, Any, str]


class Studio:
    """Handlers bound to one backend client and the host's settings."""

    def __init__(self, settings: Settings, client: ImageClient) -> None:
        self.settings = settings
        self.client = client

    async def generate(
        self,
        prompt: str,
        image_size: str,
        background: str,
        quality: str,
        num_images: int,
        output_format: str,
        sync_mode: bool,
        fal_key: str,
    ) -> AsyncIterator[Outputs]:
        """Generate images from a prompt with fal-ai/gpt-image-1.5.

        Returns the images, the JSON record of the request (arguments sent,
        fal request id, timings; never the key) and a status sentence.
        `fal_key` is the caller's own fal key; empty uses the server's.
        """
        try:
            request = TextToImageRequest.parse(
                prompt=prompt,
                image_size=image_size,
                background=background,
                quality=quality,
                num_images=_whole(num_images),
                output_format=output_format,
                sync_mode=sync_mode,
            )
            key = choose_key(fal_key, self.settings.fal_key)
        except StudioError as exc:
            yield gr.skip(), gr.skip(), describe_error(exc.message)
            raise gr.Error(exc.message, print_exception=False) from None

        last_sent = 0.0
        try:
            async for event in self.client.stream(request, key):
                if isinstance(event, Finished):
                    result = event.result
                    gallery = [(img.path, img.caption()) for img in result.images]
                    yield gallery, result.record(), describe_result(result)
                    return
                now = time.monotonic()
                if now - last_sent >= _STATUS_EVERY_S:
                    last_sent = now
                    yield gr.skip(), gr.skip(), describe_progress(event)
        except StudioError as exc:
            yield gr.skip(), gr.skip(), describe_error(exc.message)
            raise gr.Error(exc.message, print_exception=False) from None

    async def generate_in_page(self, *values: Any) -> AsyncIterator[Outputs]:
        """`generate` for the page: a failure ends with its sentence in the status
        line (already yielded) instead of an error popup over the results."""
        try:
            async for outputs in self.generate(*values):
                yield outputs
        except gr.Error:
            return

    def describe_key(self, fal_key: str) -> str:
        """Which key the next request will use, never the key itself."""
        try:
            own = clean_user_key(fal_key)
        except InvalidInput as exc:
            return f"🔑 {exc.message}"
        if own:
            return "🔑 Requests use **your key**."
        if self.settings.has_host_key:
            return "🔑 Requests use **the host's key**. Paste your own to use it instead."
        return (
            "🔑 **No key: add one.** Paste a fal API key above "
            "(get one at [fal.ai/dashboard/keys](https://fal.ai/dashboard/keys)), "
            "or set `FAL_KEY` in `.env` and restart."
        )


def _whole(value: Any) -> Any:
    """Sliders and JSON callers may send 2.0; a whole float means 2. Anything else
    goes through as it is, for the request model to refuse with a clear sentence."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value
