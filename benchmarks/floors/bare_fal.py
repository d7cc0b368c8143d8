"""Overhead floor: a bare Gradio app whose `/generate` only awaits fal_client.

The least any Gradio app in front of fal can cost: one async endpoint, the same
parameters as the studio's `/generate`, the result JSON returned as it comes (no
checks, no progress, no download of the images), the same concurrency limit.
Launched like app.py, with the same environment (the fake's hosts, FAL_KEY).
"""

from __future__ import annotations

import os
from typing import Any

import fal_client
import gradio as gr

ENDPOINT = "fal-ai/gpt-image-1.5"
_clients: list[Any] = []


async def generate(
    prompt: str,
    image_size: str,
    background: str,
    quality: str,
    num_images: float,
    output_format: str,
    sync_mode: bool,
    fal_key: str,
) -> Any:
    if not _clients:  # made on Gradio's event loop, then reused (warm connections)
        _clients.append(fal_client.AsyncClient(key=fal_key or os.environ["FAL_KEY"]))
    arguments = {
        "prompt": prompt,
        "image_size": image_size,
        "background": background,
        "quality": quality,
        "num_images": int(num_images),
        "output_format": output_format,
        "sync_mode": sync_mode,
    }
    return await _clients[0].subscribe(ENDPOINT, arguments)


with gr.Blocks(title="bare fal") as demo:
    inputs = [
        gr.Textbox(label="prompt"),
        gr.Textbox(label="image_size"),
        gr.Textbox(label="background"),
        gr.Textbox(label="quality"),
        gr.Number(label="num_images", precision=0),
        gr.Textbox(label="output_format"),
        gr.Checkbox(label="sync_mode"),
        gr.Textbox(label="fal_key"),
    ]
    output = gr.JSON(label="result")
    gr.Button("go").click(generate, inputs, output, api_name="generate")
# As many at once as the studio runs by default (STUDIO_CONCURRENCY_LIMIT): with
# Gradio's default of one, 32 simultaneous calls would simply queue.
demo.queue(default_concurrency_limit=64)

if __name__ == "__main__":
    demo.launch()
