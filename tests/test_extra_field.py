"""Adding a price-neutral parameter is one field in the request model.

tests/apps/extra_field.py builds the app exactly as app.py does, from an Edit
model with one more field, `moderation`. Nothing else knows the field, yet it
must be a control, reach fal under its name (page and API), be saved in the
file's metadata, come back when the run is restored from history, and be listed
in the public API.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.conftest import ROOT, RunningApp, start_app, stop_app
from tests.fakefal import FakeFal

EXTRA_APP = ROOT / "tests" / "apps" / "extra_field.py"


@pytest.fixture(scope="module")
def extra_app(
    fake_service: FakeFal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    app = start_app(tmp_path_factory.mktemp("extra"), script=EXTRA_APP)
    yield app
    stop_app(app)


def photo(tmp_path: Path) -> Path:
    path = tmp_path / "photo.png"
    Image.new("RGB", (640, 480), (30, 90, 160)).save(path)
    return path


def test_the_api_lists_the_new_parameter_and_sends_it_under_its_name(extra_app, fake, tmp_path):
    client = Client(extra_app.url, verbose=False)
    info = client.view_api(return_format="dict", print_info=False)
    edit = info["named_endpoints"]["/edit"]
    listed = {p["parameter_name"]: p for p in edit["parameters"]}
    assert listed["moderation"]["parameter_default"] == "auto"
    names = [p["parameter_name"] for p in info["named_endpoints"]["/generate"]["parameters"]]
    assert "moderation" not in names, "only the model that has it gets it"

    client.predict(
        prompt="a kite",
        images=[handle_file(str(photo(tmp_path)))],
        moderation="low",
        quality="low",
        api_name="/edit",
    )
    [sub] = fake.submissions
    assert sub.arguments["moderation"] == "low"
    assert sub.arguments["quality"] == "low"

    # The Dropdown refuses it before any handler runs, naming the choices.
    with pytest.raises(Exception, match=r"none is not in the list of choices: \[.auto., .low.\]"):
        client.predict(
            prompt="a kite",
            images=[handle_file(str(photo(tmp_path)))],
            moderation="none",
            api_name="/edit",
        )
    assert len(fake.submissions) == 1, "a value the model refuses is never sent"


@pytest.mark.browser
def test_the_new_control_is_sent_saved_and_restored_from_history(
    browser, extra_app, fake, artifacts, tmp_path
):
    outputs = extra_app.log_path.parent / "outputs"  # the app saves beside itself
    before = set(outputs.glob("*.png")) if outputs.exists() else set()
    page = browser.new_page(viewport={"width": 1280, "height": 1300})
    try:
        page.goto(extra_app.url)
        page.get_by_role("tab", name="Edit").click()
        control = page.locator("#edit-moderation")
        control.wait_for()
        assert "moderation" in control.inner_text(), "labelled with the field's own name"
        page.fill("#edit-prompt textarea", "a kite over the sea")
        page.set_input_files("#edit-references input[type=file]", [str(photo(tmp_path))])
        page.click("#edit-moderation input")
        page.get_by_role("option", name="low", exact=True).click()
        page.click("#edit-run")
        page.wait_for_function(
            "document.querySelector('#edit-status')?.innerText.includes('✅')", timeout=30_000
        )

        # Back to the default, then restore the run from the History tab.
        page.click("#edit-moderation input")
        page.get_by_role("option", name="auto", exact=True).click()
        assert page.input_value("#edit-moderation input") == "auto"
        page.get_by_role("tab", name="History").click()
        page.wait_for_selector("#history .thumbnail-item", timeout=15_000)
        # The tall Edit tab still settles its layout under the panel: a DOM click
        # is what the thumbnail's own handler receives either way.
        page.locator("#history .thumbnail-item").first.dispatch_event("click")
        page.wait_for_function(
            "document.querySelector('#edit-moderation input')?.value === 'low'", timeout=10_000
        )
        page.screenshot(path=str(artifacts / "extra-field.png"), full_page=True)
    finally:
        page.close()

    [sub] = fake.submissions
    assert sub.arguments["moderation"] == "low"
    [saved] = sorted(set(outputs.glob("*.png")) - before)
    with Image.open(saved) as image:
        record = json.loads(image.info["gpt-image-studio"])
    assert record["parameters"]["moderation"] == "low"


def test_the_agents_edit_tool_documents_the_new_parameter(extra_app):
    """The MCP tools are built from the models too (ui/agents.py)."""
    import urllib.request

    with urllib.request.urlopen(extra_app.url + "gradio_api/mcp/schema") as answer:
        tools = {tool["name"]: tool for tool in json.load(answer)}
    moderation = tools["edit"]["inputSchema"]["properties"]["moderation"]
    assert moderation["enum"] == ["auto", "low"]
    assert 'Default: "auto"' in moderation["description"]
    assert "moderation" not in tools["generate"]["inputSchema"]["properties"]
