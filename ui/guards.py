"""HTTP-level guards for a server that strangers may use.

Gradio downloads a file input whose `path` is an http(s) URL on the server,
before any handler runs. That would make this server fetch whatever address a
visitor names (SSRF). File inputs take files only, so such calls are refused
here with a sentence, and nothing is fetched. (`/edit` takes URLs as text, in
`image_urls`: fal fetches those, never this server; backend/urls.py.)
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

# Event calls carry only JSON (files are uploaded separately): a small cap is plenty.
_MAX_EVENT_BODY = 2 * 1024 * 1024
REFUSAL = (
    "Image URLs are not accepted as files: upload the image file itself "
    "(with gradio_client, handle_file('local/path.png')), or give /edit its URL "
    "in image_urls, for fal to fetch."
)


class RefuseRemoteFiles:
    """Refuse event calls whose file inputs point at URLs."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope.get("method") != "POST"
            or not path.startswith("/gradio_api/")
            or path.startswith("/gradio_api/upload")
        ):
            await self.app(scope, receive, send)
            return
        body, complete = await _read_body(receive)
        if not complete:
            await _answer(send, 413, "The request is too large.")
            return
        if _names_remote_file(body):
            # Gradio's own validation shape: gradio_client shows its message as is.
            detail = [
                {
                    "__type__": "validate",
                    "is_valid": False,
                    "parameter_name": "image",
                    "message": REFUSAL,
                }
            ]
            await _answer(send, 422, detail)
            return
        await self.app(scope, _replay(body), send)


async def _read_body(receive: Receive) -> tuple[bytes, bool]:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > _MAX_EVENT_BODY:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _names_remote_file(body: bytes) -> bool:
    # Most calls carry no file at all: no need to parse them. A file input is
    # marked "gradio.FileData"; JSON could spell that with \u escapes, so a body
    # with any escape is parsed too.
    if b"FileData" not in body and b"\\u" not in body:
        return False
    try:
        data = json.loads(body or b"null")
    except ValueError:
        return False  # not ours to judge: Gradio answers malformed calls itself
    return _walk(data)


def _walk(value: Any) -> bool:
    if isinstance(value, dict):
        meta = value.get("meta")
        if isinstance(meta, dict) and meta.get("_type") == "gradio.FileData":
            path = str(value.get("path") or "")
            if path.lower().startswith(("http://", "https://", "//")):
                return True
        return any(_walk(v) for v in value.values())
    if isinstance(value, list):
        return any(_walk(v) for v in value)
    return False


async def _answer(send: Send, status: int, detail: Any) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
