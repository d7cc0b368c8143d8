"""What the offline demo draws over, for each endpoint (its registry entry's `demo_inputs`).

A text-to-image placeholder is drawn on nothing; an edit's is drawn over its
first input image with the mask's area tinted, so the edit workflow reads
sensibly in demo mode too. Nothing is ever fetched: images come from memory (an
edit draft) or from data URIs.
"""

from __future__ import annotations

import io

from PIL import Image, UnidentifiedImageError

from backend.client import Job
from backend.edits import EditDraft
from backend.formats import DataURIError, decode_data_uri
from backend.images import PreparedImage
from backend.schema import EditRequest

# (the encoded image a placeholder is drawn over, the mask PNG: alpha 0 = edited)
DemoInputs = tuple[bytes | None, bytes | None]


def nothing(job: Job) -> DemoInputs:
    """A placeholder made from the prompt alone."""
    return None, None


def first_image_and_mask(job: Job) -> DemoInputs:
    """The first input image and the mask, from memory or from data URIs (never fetched)."""
    if isinstance(job, EditDraft):
        main = job.inputs[0]
        if not isinstance(main, PreparedImage):  # a URL: the demo does not download it
            return None, None
        return main.data, job.mask.png if job.mask is not None else None
    if isinstance(job, EditRequest):
        base = _from_data_uri(job.image_urls[0])
        mask = _from_data_uri(job.mask_image_url) if job.mask_image_url else None
        # A base that cannot be read is drawn without: a placeholder is still useful.
        return (base, mask) if base is not None and _readable(base) else (None, None)
    return None, None


def _from_data_uri(url: str) -> bytes | None:
    try:
        return decode_data_uri(url)
    except DataURIError:
        return None  # e.g. an https URL: the demo does not download it


def _readable(data: bytes) -> bool:
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        return False
    return True
