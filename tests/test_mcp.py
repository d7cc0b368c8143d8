"""The MCP server, through the official MCP Python SDK client (streamable HTTP),
against the real app and the fake fal service.

An agent lists the tools, generates, then edits the first result by its fal URL;
its own key comes in the X-Fal-Key header and is used for its calls only.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, ImageContent, TextContent
from PIL import Image

from tests.conftest import HOST_KEY, RunningApp, start_app, stop_app
from tests.fakefal import FakeFal
from tests.fakefal.schema import EDIT_SCHEMA, TEXT_TO_IMAGE_SCHEMA, EndpointSchema

AGENT_KEY = "agent000-0000-4000-8000-00000000a9e7:a9e7a9e7a9e7a9e7a9e7a9e7a9e7a9e7"
FAL_URL = re.compile(r"fal URL: (https://\S+)")


@asynccontextmanager
async def mcp_session(app: RunningApp, key: str | None = None) -> AsyncIterator[ClientSession]:
    headers = {"X-Fal-Key": key} if key else {}
    timeout = httpx.Timeout(30, read=120)
    async with (
        httpx.AsyncClient(headers=headers, timeout=timeout) as http,
        streamable_http_client(app.url + "gradio_api/mcp/", http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def texts(result: CallToolResult) -> str:
    return "\n".join(item.text for item in result.content if isinstance(item, TextContent))


def images(result: CallToolResult) -> list[Image.Image]:
    return [
        Image.open(io.BytesIO(base64.b64decode(item.data)))
        for item in result.content
        if isinstance(item, ImageContent)
    ]


def png_data_uri(size: tuple[int, int], colour: tuple[int, ...], mode: str = "RGB") -> str:
    buffer = io.BytesIO()
    Image.new(mode, size, colour).save(buffer, "PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _check_documented(tool: Any, schema: EndpointSchema) -> None:
    """Every field of the seed is a parameter under its name, described, with its
    choices; nothing else is (no key, no file inputs)."""
    properties = tool.inputSchema["properties"]
    assert list(properties) == [spec.name for spec in schema.fields]
    for spec in schema.fields:
        prop = properties[spec.name]
        assert len(prop.get("description", "")) > 20, f"{spec.name} is not described"
        if spec.choices:
            assert prop["enum"] == list(spec.choices)
            for choice in spec.choices:
                assert choice in prop["description"]
        if spec.default is not None:
            assert f"Default: {json.dumps(spec.default)}" in prop["description"]
    assert tool.inputSchema.get("required") == ["prompt"] or "prompt" in tool.inputSchema.get(
        "required", []
    )


def test_two_tools_each_saying_what_it_does_costs_and_takes(app_server: RunningApp) -> None:
    async def listed() -> Any:
        async with mcp_session(app_server) as session:
            return (await session.list_tools()).tools

    tools = {tool.name: tool for tool in asyncio.run(listed())}

    assert sorted(tools) == ["edit", "generate"]
    for tool in tools.values():
        description = tool.description or ""
        assert "GPT Image 1.5" in description
        assert "$0.009 per image" in description and "$0.200" in description  # the price table
        assert "Time:" in description and "gives up after 60 s" in description
        assert "X-Fal-Key" in description
    _check_documented(tools["generate"], TEXT_TO_IMAGE_SCHEMA)
    _check_documented(tools["edit"], EDIT_SCHEMA)
    urls = tools["edit"].inputSchema["properties"]["image_urls"]
    assert urls["type"] == "array" and urls["items"] == {"type": "string"}
    assert "data URI" in urls["description"] and "https URL" in urls["description"]

    # Gradio's schema route (what its MCP page and Hugging Face read) offers the same two.
    with urllib.request.urlopen(app_server.url + "gradio_api/mcp/schema") as answer:
        schema = json.load(answer)
    assert sorted(entry["name"] for entry in schema) == ["edit", "generate"]
    assert all(entry["meta"].get("headers") == ["x-fal-key"] for entry in schema)


def test_generate_then_edit_the_result_by_its_url_with_the_agents_key(
    app_server: RunningApp, fake: FakeFal
) -> None:
    messages: list[str] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")

    async def chain() -> tuple[CallToolResult, CallToolResult]:
        async with mcp_session(app_server, AGENT_KEY) as session:
            made = await session.call_tool(
                "generate",
                {
                    "prompt": "a red kite over dunes",
                    "image_size": "1536x1024",
                    "background": "opaque",
                    "quality": "low",
                    "num_images": 2,
                    "output_format": "webp",
                },
                progress_callback=on_progress,
            )
            first = FAL_URL.findall(texts(made))[0]
            edited = await session.call_tool(
                "edit",
                {
                    "prompt": "make the kite blue",
                    "image_urls": [first],
                    "quality": "medium",
                    "input_fidelity": "low",
                    "output_format": "jpeg",
                },
            )
            return made, edited

    made, edited = asyncio.run(chain())

    assert not made.isError, texts(made)
    assert not edited.isError, texts(edited)
    t2i, edit = fake.submissions
    assert t2i.arguments == {
        "prompt": "a red kite over dunes",
        "image_size": "1536x1024",
        "background": "opaque",
        "quality": "low",
        "num_images": 2,
        "output_format": "webp",
        "sync_mode": False,
    }
    assert t2i.authorization == f"Key {AGENT_KEY}"
    # Image content, and fal's URL of each image, come back.
    made_images = images(made)
    assert [(i.format, i.size) for i in made_images] == [("WEBP", (1536, 1024))] * 2
    fal_urls = FAL_URL.findall(texts(made))
    assert fal_urls == [image["url"] for image in t2i.result["images"]]  # type: ignore[index]

    # The edit was chained by URL: fal got the first result's URL, nothing uploaded.
    assert edit.endpoint == "fal-ai/gpt-image-1.5/edit"
    assert edit.schema_errors == []
    assert edit.arguments == {
        "prompt": "make the kite blue",
        "image_urls": [fal_urls[0]],
        "image_size": "auto",
        "background": "auto",
        "quality": "medium",
        "input_fidelity": "low",
        "num_images": 1,
        "output_format": "jpeg",
        "sync_mode": False,
    }
    assert edit.authorization == f"Key {AGENT_KEY}"
    assert fake.uploads == []
    [edited_image] = images(edited)
    assert edited_image.format == "JPEG"

    # Progress notifications said what the run was doing.
    assert any("Generating" in message for message in messages), messages


def test_the_header_key_serves_only_the_call_that_sent_it(
    app_server: RunningApp, fake: FakeFal
) -> None:
    async def calls() -> list[CallToolResult]:
        results = []
        async with mcp_session(app_server, AGENT_KEY) as session:
            results.append(await session.call_tool("generate", {"prompt": "one", "quality": "low"}))
        async with mcp_session(app_server) as session:
            results.append(await session.call_tool("generate", {"prompt": "two", "quality": "low"}))
        return results

    mine, theirs = asyncio.run(calls())

    assert [s.authorization for s in fake.submissions] == [f"Key {AGENT_KEY}", f"Key {HOST_KEY}"]
    assert "key: your key" in texts(mine)
    assert "key: the host's key" in texts(theirs)


def test_images_as_data_uris_with_a_mask_are_checked_and_sent(
    app_server: RunningApp, fake: FakeFal
) -> None:
    main = png_data_uri((300, 200), (20, 120, 220))
    second = png_data_uri((64, 64), (200, 30, 30))
    mask = png_data_uri((300, 200), (0, 0, 0, 0), "RGBA")

    async def call() -> tuple[CallToolResult, CallToolResult]:
        async with mcp_session(app_server, AGENT_KEY) as session:
            done = await session.call_tool(
                "edit",
                {
                    "prompt": "a sunset sky",
                    "image_urls": [main, second],
                    "mask_image_url": mask,
                    "quality": "low",
                },
            )
            wrong = await session.call_tool(
                "edit",
                {"prompt": "a sunset sky", "image_urls": [main], "mask_image_url": second},
            )
            return done, wrong

    done, wrong = asyncio.run(call())

    assert not done.isError, texts(done)
    [sub] = fake.submissions
    assert sub.schema_errors == []
    decoded = {(d.role, d.index): (d.width, d.height) for d in sub.decoded_inputs}
    assert decoded == {("image", 0): (300, 200), ("image", 1): (64, 64), ("mask", 0): (300, 200)}
    assert sub.decoded_inputs[0].to_pil().convert("RGB").getpixel((10, 10)) == (20, 120, 220)
    # A mask of another size: the app's sentence, and nothing sent.
    assert wrong.isError
    assert "The mask is 64x64 but the first image is 300x200" in texts(wrong)
    assert len(fake.submissions) == 1


@pytest.mark.parametrize(
    ("image_urls", "sentence"),
    [
        (
            ["https://example.com/a.png", "data:image/png;base64,iVBORw0KGgo="],
            "put data URIs first",
        ),
        (["data:image/png;base64,not base64!"], "image_urls[0] is not a base64 data URI"),
        (["data:text/plain;base64,aGVsbG8="], "The image 'image_urls[0]' is not an image"),
        (["/etc/passwd"], "image_urls[0] is not an http(s) URL"),
    ],
)
def test_bad_images_get_a_sentence_and_nothing_is_sent(
    app_server: RunningApp, fake: FakeFal, image_urls: list[str], sentence: str
) -> None:
    async def call() -> CallToolResult:
        async with mcp_session(app_server) as session:
            return await session.call_tool("edit", {"prompt": "x", "image_urls": image_urls})

    result = asyncio.run(call())

    assert result.isError
    assert sentence in texts(result)
    assert "Traceback" not in texts(result)
    assert fake.submissions == []
    assert fake.uploads == []


def test_the_key_is_never_listed_returned_or_logged(app_server: RunningApp, fake: FakeFal) -> None:
    async def everything() -> list[str]:
        async with mcp_session(app_server, AGENT_KEY) as session:
            tools = await session.list_tools()
            made = await session.call_tool("generate", {"prompt": "a key", "quality": "low"})
            failed = await session.call_tool("edit", {"prompt": "x", "image_urls": ["nope"]})
            return [tools.model_dump_json(), made.model_dump_json(), failed.model_dump_json()]

    seen = asyncio.run(everything())
    with urllib.request.urlopen(app_server.url + "gradio_api/mcp/schema") as answer:
        seen.append(answer.read().decode())
    request = urllib.request.Request(
        app_server.url + "gradio_api/mcp/", headers={"X-Fal-Key": AGENT_KEY}
    )
    with urllib.request.urlopen(request) as answer:  # Gradio's MCP page, for a browser
        seen.append(answer.read().decode())

    assert fake.submissions[0].authorization == f"Key {AGENT_KEY}"
    secret = AGENT_KEY.split(":")[1]
    for text in [*seen, app_server.log_text()]:
        assert AGENT_KEY not in text and secret not in text


def test_the_mcp_server_can_be_turned_off(fake_service: FakeFal, tmp_path: Path) -> None:
    app = start_app(tmp_path, STUDIO_MCP_SERVER="false")
    try:
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(app.url + "gradio_api/mcp/schema")
        assert missing.value.code == 404
    finally:
        stop_app(app)


def test_a_large_image_as_a_data_uri_is_taken(app_server: RunningApp, fake: FakeFal) -> None:
    """Larger than the 2 MB a page's event body may be (MCP requests are not capped
    by that guard), within the MCP SDK's 4 MiB a request."""
    noise = Image.effect_noise((1000, 800), 90).convert("RGB")
    buffer = io.BytesIO()
    noise.save(buffer, "PNG")
    assert 2_200_000 < len(buffer.getvalue()) * 4 / 3 < 4 * 1024 * 1024 - 10_000
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()

    async def call() -> CallToolResult:
        async with mcp_session(app_server) as session:
            return await session.call_tool(
                "edit", {"prompt": "snow", "image_urls": [uri], "quality": "low"}
            )

    result = asyncio.run(call())

    assert not result.isError, texts(result)
    [sub] = fake.submissions
    [decoded] = sub.decoded_inputs
    assert (decoded.width, decoded.height) == (1000, 800)
    assert decoded.data == buffer.getvalue()  # a PNG that can go as it is, does
