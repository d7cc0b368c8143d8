"""The Gradio UI: one module per tab. It reaches fal only through the run service."""

from ui.layout import build_demo, launch_options

__all__ = ["build_demo", "launch_options"]
