"""The MCP server's tools: `generate` and `edit`, for AI agents.

Gradio serves an MCP server at `/gradio_api/mcp/` with one tool per public event,
named after the event's function and described by its docstring (ARCHITECTURE.md,
"Gradio's MCP server"). The page's and the programs' events are shaped for a page
and for Gradio's clients (files, a gallery); an agent needs other shapes:

- images in as https URLs or data URIs, under fal's own names (`image_urls`,
  `mask_image_url`), passed to the same core as the Edit tab's;
- results out as single images (Gradio turns each into image content plus its URL
  on this server) and a text that gives fal's URL of each, to chain an edit on;
- the agent's own fal key from the `X-Fal-Key` header (`gr.Header`), never a tool
  parameter, so it never enters the agent's conversation or Gradio's MCP page.

So each tool is its own hidden event around `run_outputs`, with a docstring made
from the request model: every parameter under its seed name, its choices and
default, what a run costs (from the price table) and how long it may take.
`OnlyAgentTools` keeps every other public event (the programs' `/generate`,
`/edit`, `/compare`) out of the MCP server.
"""

from __future__ import annotations

import json
from typing import Any, Literal, get_args, get_origin

import gradio as gr
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.endpoints import Endpoint
from backend.schema import GenerationResult
from backend.service import Finished, RunService, StudioError, closing
from ui.forms import Form, _bounds, _without_none, control_for
from ui.progress import describe_progress
from ui.runs import caller_of

# The tools, by the name of their functions below (Gradio names a tool after it).
TOOL_NAMES = ("generate", "edit")
# Gradio's MCP server hands a tool at most this many images (one output each).
MAX_IMAGES_OUT = 4
_MCP_PATHS = ("/gradio_api/mcp", "/gradio_api/mcp/", "/gradio_api/mcp/schema")


def agent_tools(service: RunService) -> None:
    """Add the tools' hidden events to the Blocks being built.

    Call it before the tabs: Gradio names a tool after its function and gives a
    name already taken a suffix, so the events made first are `generate` and
    `edit` (the programs' handlers have the same names and become `generate_1`...,
    which `OnlyAgentTools` keeps out).
    """
    with gr.Column(visible=False):
        images = [gr.Image(type="filepath", label=f"image {i + 1}") for i in range(MAX_IMAGES_OUT)]
        summary = gr.Textbox(label="result")
        _generate_tool(service, service.endpoints.text_to_image, [summary, *images])


def _hidden_form(endpoint: Endpoint) -> dict[str, Any]:
    """The tool's parameters under their seed names: the same controls as a tab's,
    never shown (whole numbers through an unbounded Number, as for programs)."""
    prompt = gr.Textbox(label="prompt")
    controls = {
        name: control_for(endpoint, name, f"mcp-{endpoint.tab}")
        for name in endpoint.parameter_names
    }
    return Form(endpoint, prompt, controls).api_inputs()


def _generate_tool(service: RunService, endpoint: Endpoint, outputs: list[Any]) -> None:
    async def generate(
        request: gr.Request,
        x_fal_key: gr.Header | None = None,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's own idiom)
        **values: Any,
    ) -> tuple[Any, ...]:
        async def build() -> Any:
            return service.request(endpoint, values)

        caller = caller_of(service, request, x_fal_key or "")
        result = await _run(service, endpoint, build, caller, progress)
        return _outputs(result)

    generate.__doc__ = tool_description(
        service,
        endpoint,
        "Generate images from a text prompt with OpenAI's GPT Image 1.5 on fal.ai "
        f"({endpoint.endpoint_id}).",
    )
    gr.Button(visible=False, elem_id="mcp-generate").click(
        generate,
        inputs_kwargs=_hidden_form(endpoint),
        outputs=outputs,
        api_name="mcp_generate",
    )


async def _run(
    service: RunService, endpoint: Endpoint, build: Any, caller: Any, progress: gr.Progress
) -> GenerationResult:
    """The run, each status line sent to the agent as a progress notification."""
    step = 0
    try:
        async with closing(service.run(endpoint, build, caller)) as events:
            async for event in events:
                if isinstance(event, Finished):
                    return event.result
                step += 1
                # (step, None): Gradio's MCP server then says "<desc>: Step n".
                progress((step, None), desc=describe_progress(event).split("\n")[0])
    except StudioError as exc:
        raise gr.Error(exc.message, print_exception=False) from None
    raise gr.Error("The run ended without a result; try again.", print_exception=False)


def _outputs(result: GenerationResult) -> tuple[Any, ...]:
    paths: list[str | None] = [image.path for image in result.images[:MAX_IMAGES_OUT]]
    paths += [None] * (MAX_IMAGES_OUT - len(paths))
    return (describe_for_agent(result), *paths)


def describe_for_agent(result: GenerationResult) -> str:
    """What the agent reads first: the images, fal's URL of each, how to chain."""
    record = result.record()
    lines = [
        f"{len(result.images)} image(s) from {result.endpoint} "
        f"(fal request {result.request_id}, key: {result.key_source})."
    ]
    for index, image in enumerate(result.images, start=1):
        where = (
            f"fal URL: {image.source_url}"
            if image.source_url
            else "sent inline by fal (sync_mode), so it has no fal URL"
        )
        lines.append(f"Image {index}: {image.width}x{image.height} {image.format_name}, {where}")
    lines += [f"Image {f.index + 1} could not be fetched: {f.reason}" for f in result.failures]
    if any(image.source_url for image in result.images):
        lines.append("To edit a result, call `edit` with image_urls=[its fal URL].")
    if len(result.images) < MAX_IMAGES_OUT:
        lines.append(
            f"(The tool has {MAX_IMAGES_OUT} image slots; the unused ones come back as None.)"
        )
    lines.append("Request sent: " + json.dumps(record["arguments"], ensure_ascii=False))
    return "\n".join(lines)


def tool_description(service: RunService, endpoint: Endpoint, what: str) -> str:
    """A tool's docstring: what it does, costs and takes, then every parameter
    under its seed name (Gradio reads the `Args:` block into the tool's schema)."""
    settings = service.settings
    low = endpoint.price({"quality": "low", "image_size": "1024x1024", "prompt": ""}, [])
    high = endpoint.price({"quality": "high", "image_size": "1024x1536", "prompt": ""}, [])
    lines = [
        what,
        f"Cost (fal's prices, billed to the key used): from ${low.per_image_usd:.3f} per image "
        f"(quality low, 1024x1024) to ${high.per_image_usd:.3f} (quality high, 1024x1536 or "
        "1536x1024), plus a little for the prompt's tokens"
        + (" and the input images' tokens" if endpoint.takes_images else "")
        + ".",
        "Time: from several seconds (quality low) to a minute or more (quality high, several "
        f"images); the server gives up after {settings.request_timeout_s:.0f} s. Progress "
        "notifications are sent while it runs.",
        "Key: send your own fal key in the X-Fal-Key header; without it the server's own "
        "rules apply (its key, if it offers one).",
        "Returns a text with fal's URL of each image (give one to `edit` as image_urls to "
        f"edit it), then up to {MAX_IMAGES_OUT} images.",
        "",
        "Args:",
        f"    prompt: {_describe_prompt()}",
    ]
    for name in endpoint.parameter_names:
        lines.append(f"    {name}: {describe_parameter(endpoint, name)}")
    return "\n".join(lines)


def _describe_prompt() -> str:
    return "What to draw, or the change to make (required; at most 32,000 characters)."


def describe_parameter(endpoint: Endpoint, name: str) -> str:
    info = endpoint.field(name)
    annotation = _without_none(info.annotation)
    hint = endpoint.hint(name)
    parts = [hint + "." if hint else ""]
    if get_origin(annotation) is Literal:
        parts.append("One of: " + ", ".join(str(c) for c in get_args(annotation)) + ".")
    elif annotation is int:
        low, high = _bounds(info)
        if low is not None and high is not None:
            parts.append(f"A whole number from {low:g} to {high:g}.")
    elif annotation is bool:
        parts.append("true or false.")
    parts.append(f"Default: {json.dumps(info.default)}.")
    return " ".join(part for part in parts if part)


class OnlyAgentTools:
    """ASGI middleware: the MCP server offers the agent tools and nothing else.

    Gradio's MCP server makes a tool of every public event, and narrows them to a
    `tools=` query parameter when one is given (for listing, for calling, and for
    its schema). This sets that parameter on every MCP request, so the programs'
    `/generate`, `/edit` and `/compare` stay out of it whatever the client asks.
    """

    def __init__(self, app: ASGIApp, *, prefix: str = "") -> None:
        self.app = app
        # On a Space, Gradio prefixes tool names with the Space's name; its schema
        # route compares the full names, its MCP routes add the prefix themselves.
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") in {
            p.rstrip("/") for p in _MCP_PATHS
        }:
            schema = scope["path"].rstrip("/").endswith("/schema")
            names = [self.prefix + n for n in TOOL_NAMES] if schema else list(TOOL_NAMES)
            scope = {**scope, "query_string": ("tools=" + ",".join(names)).encode()}
        await self.app(scope, receive, send)


def tools_prefix(space_id: str | None) -> str:
    """Gradio's prefix for tool names on a Space (gradio/mcp.py, `tool_prefix`)."""
    return space_id.split("/")[-1] + "_" if space_id else ""
