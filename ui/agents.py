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

So each tool is its own hidden event around the run service's run (as the page's
and the programs' are), with a docstring made from the request model: every
parameter under its seed name, its choices and default, what a run costs (from the
price table) and how long it may take.
`OnlyAgentTools` keeps every other public event (the programs' `/generate`,
`/edit`, `/compare`) out of the MCP server.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal, get_args, get_origin

import gradio as gr
from pydantic.fields import FieldInfo
from starlette.types import ASGIApp, Receive, Scope, Send

from backend.endpoints import Endpoint
from backend.schema import NUM_IMAGES_MAX, GenerationResult
from backend.service import Finished, RunService, StudioError, closing
from ui.controls import url_list_input
from ui.forms import Form, _bounds, _without_none, control_for
from ui.progress import describe_progress
from ui.runs import caller_of

# The tools, by the name of their functions below (Gradio names a tool after it).
TOOL_NAMES = ("generate", "edit")
# One image output each for the most images a request makes (num_images, 1 to 4):
# Gradio's MCP server makes image content of a single image output, not of a gallery.
MAX_IMAGES_OUT = NUM_IMAGES_MAX
_MCP_PATHS = ("/gradio_api/mcp", "/gradio_api/mcp/", "/gradio_api/mcp/schema")
# The same, without trailing slashes: made once, read on every HTTP request.
_MCP_ROUTES = frozenset(path.rstrip("/") for path in _MCP_PATHS)


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
        outputs = [summary, *images]
        _generate_tool(service, service.endpoints.text_to_image, outputs)
        _edit_tool(service, service.endpoints.editing, outputs)


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
        # Plain `gr.Header`: Gradio's MCP page lists a header by `is`-comparing the
        # type hint with Header or Optional[Header]. None when the header is absent.
        x_fal_key: gr.Header,
        **values: Any,
    ) -> tuple[Any, ...]:
        async def build() -> Any:
            return service.request(endpoint, values)

        caller = caller_of(service, request, x_fal_key or "")
        result = await _run(service, endpoint, build, caller)
        return _outputs(result)

    generate.__doc__ = tool_description(
        service,
        endpoint,
        "Generate images from a text prompt with OpenAI's GPT Image 1.5 on fal.ai "
        f"({endpoint.endpoint_id}).",
    )
    _named_parameters(generate, endpoint.model.model_fields)
    gr.Button(visible=False, elem_id="mcp-generate").click(
        generate,
        inputs_kwargs=_hidden_form(endpoint),
        outputs=outputs,
        api_name="mcp_generate",
        queue=False,  # see _run
    )


def _edit_tool(service: RunService, endpoint: Endpoint, outputs: list[Any]) -> None:
    async def edit(
        request: gr.Request,
        x_fal_key: gr.Header,
        # Keyword-only, like the fields in **values: Gradio fills the header by its
        # position among the parameters, over whatever value sits there.
        *,
        image_urls: Any,
        mask_image_url: str | None = None,
        **values: Any,
    ) -> tuple[Any, ...]:
        async def build() -> Any:
            return await service.edit_for_agent(endpoint, values, image_urls, mask_image_url)

        caller = caller_of(service, request, x_fal_key or "")
        result = await _run(service, endpoint, build, caller)
        return _outputs(result)

    edit.__doc__ = tool_description(
        service,
        endpoint,
        "Edit images with OpenAI's GPT Image 1.5 on fal.ai "
        f"({endpoint.endpoint_id}): give the images and say what to change; an optional "
        "mask marks the area to change.",
    )
    named = _hidden_form(endpoint)
    inputs: dict[str, Any] = {}
    for name in endpoint.model.model_fields:  # the seed's order
        if name == "image_urls":
            inputs[name] = url_list_input("image_urls")
        elif name == "mask_image_url":
            inputs[name] = gr.Textbox(label="mask_image_url", value="")
        else:
            inputs[name] = named[name]
    _named_parameters(edit, endpoint.model.model_fields)
    gr.Button(visible=False, elem_id="mcp-edit").click(
        edit,
        inputs_kwargs=inputs,
        outputs=outputs,
        api_name="mcp_edit",
        queue=False,  # see _run
    )


def _named_parameters(fn: Any, fields_of: Mapping[str, FieldInfo]) -> None:
    """Give `fn` (which takes the fields as **values) a signature naming each field.

    Gradio reads a tool parameter's description from the docstring's `Args:` line
    only for a name in the function's signature (gradio/utils.py,
    `get_function_description`), and the fields come from the request model, not
    from a hand-written list. The call itself is unchanged: Gradio passes the
    values by name (`inputs_kwargs`), and **values receives them.
    """
    signature = inspect.signature(fn)
    kept = [p for p in signature.parameters.values() if p.kind is not p.VAR_KEYWORD]
    taken = {p.name for p in kept}
    fields = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            # A required field (prompt, image_urls) has no default: the tool's
            # schema then lists it as required.
            default=inspect.Parameter.empty if info.is_required() else info.default,
        )
        for name, info in fields_of.items()
        if name not in taken
    ]
    fn.__signature__ = signature.replace(parameters=[*kept, *fields])


async def _run(
    service: RunService, endpoint: Endpoint, build: Any, caller: Any
) -> GenerationResult:
    """The run, each status line sent to the agent as a progress notification.

    The tools' events are not queued (`queue=False`). Gradio's MCP server then calls
    the event in the MCP request itself (gradio/mcp.py, `call_tool`), which gives:
    - the whole result: through its queue it hands a tool with several outputs
      their tuple as one text when the client asked for no progress (6.31);
    - the agent's own address as the caller (through its queue, every call would
      come from the server's loopback client);
    - our own progress notifications, with what the run is doing, whenever the
      client sent a progress token (through its queue: "Processing").
    """
    report = _progress_reporter()
    step = 0
    try:
        async with closing(service.run(endpoint, build, caller)) as events:
            async for event in events:
                if isinstance(event, Finished):
                    return event.result
                step += 1
                if report is not None:
                    await report(step, describe_progress(event).split("\n")[0])
    except StudioError as exc:
        raise gr.Error(exc.message, print_exception=False) from None
    raise gr.Error("The run ended without a result; try again.", print_exception=False)


Report = Callable[[int, str], Awaitable[None]]


def _progress_reporter() -> Report | None:
    """Progress notifications for the MCP call under way, if its client asked for
    them (a progress token in the request's `_meta`); None otherwise."""
    from mcp.server.lowlevel.server import request_ctx  # gradio[mcp]'s SDK

    try:
        context = request_ctx.get()
    except LookupError:  # not called through MCP
        return None
    token = context.meta.progressToken if context.meta is not None else None
    if token is None:
        return None

    async def report(step: int, message: str) -> None:
        await context.session.send_progress_notification(
            progress_token=token,
            progress=step,
            message=message,
            related_request_id=str(context.request_id),
        )

    return report


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
    for name in endpoint.model.model_fields:  # the seed's order
        if name in _IMAGE_ARGS:
            lines.append(f"    {name}: {_IMAGE_ARGS[name]}")
        elif name != "prompt":
            lines.append(f"    {name}: {describe_parameter(endpoint, name)}")
    return "\n".join(lines)


_IMAGE_ARGS = {
    "image_urls": (
        "The images to edit or take as references (required, 1 to 16): each an https URL "
        "fal can fetch (e.g. a result's fal URL) or a data URI (data:image/png;base64,...) "
        "of a PNG, JPEG, WebP or GIF. The first is the one edited; data URIs go first."
    ),
    "mask_image_url": (
        "Optional mask, as an https URL or data URI: a PNG the size of the first image "
        "whose fully transparent pixels mark the area to change. The model takes it as "
        "guidance. Leave empty to let the whole image change."
    ),
}


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
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") in _MCP_ROUTES:
            schema = scope["path"].rstrip("/").endswith("/schema")
            names = [self.prefix + n for n in TOOL_NAMES] if schema else list(TOOL_NAMES)
            scope = {**scope, "query_string": ("tools=" + ",".join(names)).encode()}
        await self.app(scope, receive, send)


def tools_prefix(space_id: str | None) -> str:
    """Gradio's prefix for tool names on a Space (gradio/mcp.py, `tool_prefix`)."""
    return space_id.split("/")[-1] + "_" if space_id else ""
