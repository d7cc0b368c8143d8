"""The Gradio UI: layout and handlers. It reaches fal only through `backend`."""

from ui.layout import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]
