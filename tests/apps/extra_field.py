"""The app as app.py wires it, but built from an Edit model with one more field.

`moderation` is not a field of the seeds: it stands for the next price-neutral
parameter fal adds. The only change is the model (one field) and the registry
entry that points at it, which is what adding a parameter takes
(ARCHITECTURE.md). tests/test_extra_field.py drives it.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
from pathlib import Path
from typing import Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from backend import ImageClient, Settings
from backend.demo import DemoClient
from backend.endpoints import EDIT, GENERATE, Registry
from backend.schema import EditRequest
from backend.service import RunService
from ui import build_demo, launch_options


class EditWithModeration(EditRequest):
    moderation: Literal["auto", "low"] = "auto"


logging.basicConfig(level=logging.INFO)
settings = Settings.from_env()
endpoints = Registry((GENERATE, dataclasses.replace(EDIT, model=EditWithModeration)))
demo_client = DemoClient(settings, endpoints=endpoints)
service = RunService(settings, fal=ImageClient(settings), demo=demo_client, endpoints=endpoints)
demo = build_demo(service)

if __name__ == "__main__":
    demo.launch(**launch_options(service))
