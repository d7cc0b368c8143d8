"""How the page looks and behaves in the browser: the theme, the CSS, the page's script.

Handed to `demo.launch()` by `launch_options` (Gradio 6 takes theme, css and js
there). The script (ui/static/page.js) routes images dropped on the edit canvas,
adds the keyboard shortcuts, and mends two bits of Gradio's markup that fail
axe-core (README, "Accessibility").

The theme is Gradio's Soft with enough contrast for WCAG AA (4.5:1 for text),
which axe-core checks in light and dark mode (tests/test_browser_a11y.py):
Soft's indigo 500 (#6366f1) under white text or as text on its light tints is
4.46:1 at best, and its grey help text (#9ca3af) 2.5:1 on white.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

PAGE_JS = (Path(__file__).parent / "static" / "page.js").read_text(encoding="utf-8")

# Indigo with every shade from 400 up one step darker: 500, the accent Gradio uses
# for text, selected checkboxes and primary buttons, is indigo 600 (#4f46e5):
# 6.3:1 with white, 6.1:1 on indigo 100.
_INDIGO = gr.themes.colors.indigo
DEEP_INDIGO = gr.themes.Color(
    name="deep_indigo",
    c50=_INDIGO.c50,
    c100=_INDIGO.c100,
    c200=_INDIGO.c200,
    c300=_INDIGO.c300,
    c400=_INDIGO.c500,
    c500=_INDIGO.c600,
    c600=_INDIGO.c700,
    c700=_INDIGO.c800,
    c800=_INDIGO.c900,
    c900=_INDIGO.c950,
    c950=_INDIGO.c950,
)

CSS = """
.status { min-height: 2.5em; }
.status pre { max-height: 9em; overflow-y: auto; font-size: 0.85em; }
footer { display: none !important; }
#edit-canvas.drop-target { outline: 3px dashed var(--color-accent); outline-offset: -3px; }
/* History's thumbnails keep their size however few runs there are: Gradio's
   gallery spreads one or two items over the whole row. Three across on a phone. */
#history .grid-container {
  grid-template-columns: repeat(6, minmax(0, 1fr)) !important;
  grid-template-rows: none !important;
}
/* ...and the list is as tall as its rows (Gradio keeps 450 px for any gallery). */
#history .grid-wrap.fixed-height:has(.thumbnail-item) { min-height: 0 !important; }
/* A list to pick from and its button (History's export and fetch): the button keeps
   a button's size, level with the foot of the list. */
.pick-and-act { align-items: flex-end !important; }
.pick-and-act > button {
  flex-grow: 0 !important;
  min-width: 200px !important;
  margin-bottom: 14px;
}

/* A phone: the run and stop buttons of the open tab stay at the bottom of the
   screen (the form is long there, and the buttons sit below it), and the page
   leaves room for them. The keyboard hint means little on a touch screen. */
@media (max-width: 640px) {
  .run-row {
    position: fixed;
    left: 0;
    right: 0;
    bottom: 0;
    z-index: 100;
    margin: 0 !important;
    padding: 8px 12px calc(8px + env(safe-area-inset-bottom));
    background: var(--background-fill-primary);
    box-shadow: 0 -2px 10px rgba(0, 0, 0, 0.18);
    flex-wrap: nowrap !important;
  }
  .run-row > * { min-width: 0 !important; }
  /* Four tabs (History is one) fit on a phone without an overflow menu. */
  .tab-container > button { padding: 0 var(--size-2) !important; }
  #history .grid-container { grid-template-columns: repeat(3, minmax(0, 1fr)) !important; }
  .gradio-container { padding-bottom: 88px !important; }
}
@media (pointer: coarse) and (max-width: 640px) {
  .shortcut-hint { display: none; }
}
"""


def theme() -> gr.themes.Base:
    return gr.themes.Soft(primary_hue=DEEP_INDIGO, secondary_hue=DEEP_INDIGO).set(
        # Help text under the controls, slider ends, "- or -": grey 600 on white
        # (7.6:1), grey 400 on the dark background.
        body_text_color_subdued="*neutral_600",
        body_text_color_subdued_dark="*neutral_400",
        # A primary button under the pointer (or after a tap) keeps white text readable.
        button_primary_background_fill_hover="*primary_600",
        button_primary_background_fill_hover_dark="*primary_600",
        # Links: indigo 700 on white, indigo 300 on the dark background.
        link_text_color="*primary_600",
        link_text_color_visited="*primary_600",
        link_text_color_hover="*primary_700",
        link_text_color_active="*primary_700",
        link_text_color_dark="*primary_300",
        link_text_color_visited_dark="*primary_300",
        link_text_color_hover_dark="*primary_200",
        link_text_color_active_dark="*primary_200",
    )
