"""Files on this machine turned into what a run needs: checked images and masks.

The Edit tab and the public `/edit` hand over file paths (Gradio's uploads) and
the canvas' layers; everything here reads and checks them, so that a file that
cannot be used is refused in a sentence before anything is sent. All of it is
CPU or disk work: callers run it in a thread.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from backend.errors import InvalidInput
from backend.images import MAX_INPUT_BYTES, PreparedImage, image_size, prepare_image
from backend.masks import Mask, mask_from_editor, mask_from_upload, mask_preview


def read_file(path: str) -> bytes:
    """A file's bytes, refused in a sentence when too large or unreadable."""
    file = Path(path)
    try:
        if file.stat().st_size > MAX_INPUT_BYTES:
            raise InvalidInput(
                f"'{file.name}' is larger than 50 MB, the model's limit. Use a smaller file."
            )
        return file.read_bytes()
    except OSError:
        raise InvalidInput(f"'{file.name}' could not be read. Add it again.") from None


def read_images(paths: Sequence[str]) -> list[PreparedImage]:
    """Each file checked and normalised as it will be sent (see backend/images.py)."""
    return [prepare_image(read_file(path), name=Path(path).name) for path in paths]


def first_image_size(paths: Sequence[str]) -> list[tuple[int, int]]:
    """The (width, height) of the first image, from its header: what pricing needs."""
    return [image_size(read_file(path)) for path in paths[:1]]


def read_mask(path: str, size: tuple[int, int]) -> Mask:
    """An uploaded mask, checked against the first image's size."""
    if size == (0, 0):
        raise InvalidInput("Add at least one reference image (the first is the one you edit).")
    return mask_from_upload(read_file(path), size)


def mask_for(
    prepared: Sequence[PreparedImage],
    canvas: dict[str, Any] | None,
    invert: bool,
    mask_file: str | None,
) -> Mask | None:
    """An uploaded mask wins over painting; no paint and no file means no mask."""
    if not prepared:
        return None
    size = (prepared[0].width, prepared[0].height)
    if mask_file:
        return read_mask(mask_file, size)
    return mask_from_editor(canvas, size, invert=invert)


def preview(image: PreparedImage, mask: Mask) -> Image.Image:
    """The mask drawn over the image it applies to (tinted = edited)."""
    with Image.open(io.BytesIO(image.data)) as opened:
        return mask_preview(opened.convert("RGB"), mask)


def canvas_background(path: str, folder: Path) -> str:
    """The main image as the canvas should show it: upright, in a mode it can draw.

    The mask is made at this image's size, so canvas and mask always agree. A file
    that needs no change is shown as it is; another is written once into `folder`.
    """
    prepared = read_images([path])[0]
    with open(path, "rb") as original:
        if original.read() == prepared.data:
            return path
    digest = hashlib.sha256(prepared.data).hexdigest()[:16]
    target = folder / f"{digest}.{prepared.file_name.rsplit('.', 1)[-1]}"
    if not target.exists():
        folder.mkdir(parents=True, exist_ok=True)
        target.write_bytes(prepared.data)
    return str(target)


def sidecar_of(path: str) -> bytes | None:
    """The JSON saved beside a jpeg/webp output, if the user picked the image itself."""
    sidecar = Path(path + ".json")
    return sidecar.read_bytes() if sidecar.is_file() else None
