"""Floors the app is measured against: the least a Gradio app can cost."""
