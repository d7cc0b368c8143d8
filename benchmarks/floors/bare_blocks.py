"""Start-up floor: the least Gradio app, launched like app.py (`python bare_blocks.py`)."""

import gradio as gr

with gr.Blocks(title="bare") as demo:
    gr.Markdown("# bare")

if __name__ == "__main__":
    demo.launch()
