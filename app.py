"""GPT Image 1.5 Studio: wiring only (settings -> run service -> UI).

Run `python app.py`; Hugging Face Spaces runs the same file.
"""

from __future__ import annotations

import logging

from dotenv import load_dotenv

from backend import ImageClient, Settings
from backend.demo import DemoClient
from backend.service import RunService
from ui import build_demo, launch_options

# A .env file fills in what the environment does not set (it never overrides).
load_dotenv()
logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
# httpx logs every request URL at INFO: noise, and fal's URLs are nobody's business.
logging.getLogger("httpx").setLevel(logging.WARNING)

settings = Settings.from_env()
service = RunService(settings, fal=ImageClient(settings), demo=DemoClient(settings))
demo = build_demo(service)

if __name__ == "__main__":
    if not settings.has_host_key:
        logging.getLogger("studio").warning(
            "No FAL_KEY set: visitors must paste their own fal key (see .env.example)."
        )
    demo.launch(**launch_options(service))
