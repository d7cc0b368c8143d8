"""A fake of fal.ai's HTTP services for `fal-ai/gpt-image-1.5` (+ `/edit`).

The real fal_client talks to it over HTTPS on loopback; see `server.FakeFal` for
the protocol it plays and `ports.shared_fake` for setting it up in a test process.
"""

from .faults import Fault
from .images import mask_image, solid_image
from .ports import fal_client_ports, reserve_ports, shared_fake
from .records import DecodedImage, RecordedHTTP, Submission, Upload
from .schema import EDIT, TEXT_TO_IMAGE
from .server import FakeFal

__all__ = [
    "EDIT",
    "TEXT_TO_IMAGE",
    "DecodedImage",
    "FakeFal",
    "Fault",
    "RecordedHTTP",
    "Submission",
    "Upload",
    "fal_client_ports",
    "mask_image",
    "reserve_ports",
    "shared_fake",
    "solid_image",
]
