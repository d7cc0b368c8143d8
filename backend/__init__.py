"""The studio's backend: typed requests, the fal client wrapper, images and errors.

Nothing here imports Gradio; the UI depends on this package, never the reverse.
"""

from backend.client import ImageClient
from backend.edits import EditDraft, draft_edit
from backend.errors import StudioError
from backend.keys import KeyChoice, choose_key
from backend.progress import Fetching, Finished, Progress, Queued, Running, Submitted, Uploading
from backend.schema import EditRequest, GenerationResult, ResultImage, TextToImageRequest
from backend.settings import Settings

__all__ = [
    "EditDraft",
    "EditRequest",
    "Fetching",
    "Finished",
    "GenerationResult",
    "ImageClient",
    "KeyChoice",
    "Progress",
    "Queued",
    "ResultImage",
    "Running",
    "Settings",
    "StudioError",
    "Submitted",
    "TextToImageRequest",
    "Uploading",
    "choose_key",
    "draft_edit",
]
