"""GPT Image 1.5 Studio: wiring only (settings -> run service -> UI).

Run `python app.py`; Hugging Face Spaces runs the same file.
"""

from __future__ import annotations

import logging
import sys

from dotenv import load_dotenv

from backend import ImageClient, Settings
from backend.demo import DemoClient
from backend.errors import InvalidInput
from backend.service import RunService
from ui import build_demo, launch_options

# A .env file fills in what the environment does not set (it never overrides).
# Settings reads it itself; this is for Gradio's own variables (GRADIO_SERVER_PORT...).
load_dotenv()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
# httpx logs every request URL at INFO: noise, and fal's URLs are nobody's business.
logging.getLogger("httpx").setLevel(logging.WARNING)

try:
    settings = Settings.from_env()
except InvalidInput as exc:
    # A mistyped setting is the host's to fix: say which and how, without a traceback.
    print(exc.message, file=sys.stderr)
    raise SystemExit(2) from None
service = RunService(settings, fal=ImageClient(settings), demo=DemoClient(settings))
demo = build_demo(service)

if __name__ == "__main__":
    if not settings.has_host_key:
        logging.getLogger("studio").warning(
            "No FAL_KEY set: visitors must paste their own fal key (see .env.example)."
        )
    demo.launch(**launch_options(service))
