"""How the page looks and behaves in the browser: the theme, the CSS, the page's script.

Handed to `demo.launch()` by `launch_options` (Gradio 6 takes theme, css and js
there). The script (ui/static/page.js) routes images dropped on the edit canvas
and adds the keyboard shortcuts.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

PAGE_JS = (Path(__file__).parent / "static" / "page.js").read_text(encoding="utf-8")

CSS = """
.status { min-height: 2.5em; }
.status pre { max-height: 9em; overflow-y: auto; font-size: 0.85em; }
footer { display: none !important; }
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft()
