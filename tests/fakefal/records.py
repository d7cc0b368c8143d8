"""What the fake remembers about the traffic it saw (read by tests)."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image

from .faults import Fault

Role = Literal["queue", "run", "rest", "cdn"]
Via = Literal["queue", "run"]
# IN_QUEUE -> IN_PROGRESS -> COMPLETED; REJECTED = the submit itself failed (fault).
State = Literal["IN_QUEUE", "IN_PROGRESS", "COMPLETED", "REJECTED"]


@dataclass(frozen=True)
class RecordedHTTP:
    role: Role
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body_length: int
    time: float  # time.time() when the request arrived
    status: int | None  # None when the fake dropped the connection


@dataclass(frozen=True)
class DecodedImage:
    role: Literal["image", "mask"]
    index: int  # position in image_urls (0 for the mask)
    format: str | None  # Pillow's name: "PNG", "JPEG", "WEBP", ...
    mode: str  # Pillow mode: "RGB", "RGBA", "L", ...
    width: int
    height: int
    data: bytes

    def to_pil(self) -> Image.Image:
        image = Image.open(io.BytesIO(self.data))
        image.load()
        return image


@dataclass(frozen=True)
class Upload:
    data: bytes
    content_type: str
    file_name: str
    url: str
    via: Literal["cdn", "storage"]
    # The fal key behind it: the one its CDN token was issued to, or the one that
    # started the storage upload.
    key: str = ""


@dataclass
class Submission:
    """One model request. The server thread updates it while it runs."""

    endpoint: str
    arguments: Any  # the parsed JSON body exactly as received (None if not JSON)
    authorization: str | None
    request_id: str
    via: Via
    submitted_at: float
    schema_errors: list[dict[str, Any]] = field(default_factory=list)
    state: State = "IN_QUEUE"
    cancelled: bool = False
    queue_position: int = 0
    decoded_inputs: list[DecodedImage] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    started_at: float | None = None
    finished_at: float | None = None
    error: str | None = None  # the COMPLETED status' error / error_type, if any
    error_type: str | None = None
    result: dict[str, Any] | None = None  # the output JSON, when there is one
    fault: Fault | None = None
    result_status: int | None = None  # HTTP status of the result fetch once COMPLETED
    start_timeout: float | None = None  # the X-Fal-Request-Timeout it was sent with
    timed_out: bool = False  # given up in the queue at that timeout
    # Server-side bookkeeping, not for tests.
    _result_body: bytes = field(default=b"", repr=False)
    _result_headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)
    _fault_hits: int = field(default=0, repr=False)
    _cancel_event: asyncio.Event | None = field(default=None, repr=False)
    _changed: asyncio.Event | None = field(default=None, repr=False)  # set on each change

    @property
    def blocking_errors(self) -> list[dict[str, Any]]:
        return [item for item in self.schema_errors if item["type"] != "extra_forbidden"]

    @property
    def extra_fields(self) -> list[str]:
        return [
            str(item["loc"][-1]) for item in self.schema_errors if item["type"] == "extra_forbidden"
        ]
