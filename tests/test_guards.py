"""The URL-file guard reads event bodies as Gradio will: escapes can't sneak a URL past it."""

from __future__ import annotations

import json

import pytest

from ui.guards import _names_remote_file


def body(path: str, *, escape_all: bool = False) -> bytes:
    file = {"path": path, "meta": {"_type": "gradio.FileData"}}
    text = json.dumps({"data": ["a prompt", [file]], "fn_index": 3})
    if escape_all:  # the same JSON, every letter of the marker as a \\u escape
        text = text.replace("FileData", "".join(f"\\u{ord(c):04x}" for c in "FileData"))
    return text.encode()


@pytest.mark.parametrize("escape_all", [False, True])
def test_a_file_input_naming_a_url_is_caught_however_it_is_spelled(escape_all):
    assert json.loads(body("https://example.com/x.png", escape_all=escape_all))
    assert _names_remote_file(body("https://example.com/x.png", escape_all=escape_all))
    assert _names_remote_file(body("HTTP://example.com/x.png", escape_all=escape_all))


def test_local_files_and_calls_without_files_pass():
    assert not _names_remote_file(body("/tmp/gradio/abc/x.png"))
    assert not _names_remote_file(json.dumps({"data": ["https://example.com"]}).encode())
    assert not _names_remote_file(b"not json")
