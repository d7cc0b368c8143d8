"""Keys and hosting: each visitor's key for their own requests only, nothing leaks,
nothing outside the app's own files is served, nothing a visitor names is fetched."""

from __future__ import annotations

import json
import os
import random
import re
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client, handle_file
from PIL import Image

from tests.conftest import HOST_KEY, RunningApp, start_app, stop_app
from tests.fakefal import Fault

KEYS = {
    "ana": "aaaa1111-0000-4000-8000-00000000000a:a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1",
    "ben": "bbbb2222-0000-4000-8000-00000000000b:b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2",
    "cyd": "cccc3333-0000-4000-8000-00000000000c:c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3",
}
NO_KEY_VISITORS = ("dee", "eli")


def visitor_client(url: str, n: int) -> Client:
    # Distinct visitors, as a proxy in front of the app would tell them apart.
    return Client(url, verbose=False, headers={"X-Forwarded-For": f"203.0.113.{n}"})


def small_png(path: Path) -> str:
    Image.new("RGB", (64, 48), (1, 2, 3)).save(path)
    return str(path)


def test_interleaved_visitors_each_use_only_their_own_key(app_server, fake, tmp_path):
    seed = int(os.environ.get("STUDIO_TEST_SEED") or random.randrange(2**32))
    print(f"random seed {seed}: replay with STUDIO_TEST_SEED={seed}")
    fake.latency = 0.3
    image = small_png(tmp_path / "ref.png")
    visitors = [*KEYS, *NO_KEY_VISITORS]
    errors: list[BaseException] = []

    def visit(n: int, name: str) -> None:
        try:
            client = visitor_client(app_server.url, n)
            key = KEYS.get(name, "")
            choices = random.Random(f"{seed}:{name}")  # one per thread: the same each replay
            for round_ in range(3):
                if choices.random() < 0.5:
                    client.predict(prompt=f"{name} {round_}", fal_key=key, api_name="/generate")
                else:
                    client.predict(
                        prompt=f"{name} {round_}",
                        images=[handle_file(image)],
                        fal_key=key,
                        api_name="/edit",
                    )
        except BaseException as exc:  # collected: a thread's failure must fail the test
            errors.append(exc)

    threads = [threading.Thread(target=visit, args=(n, v)) for n, v in enumerate(visitors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert len(fake.submissions) == 3 * len(visitors)
    assert fake.max_in_flight > 1, "the visitors' requests really overlapped"
    crossings = []
    for sub in fake.submissions:
        name = sub.arguments["prompt"].split()[0]
        expected = KEYS.get(name, HOST_KEY)
        if sub.authorization != f"Key {expected}":
            crossings.append((name, sub.authorization))
    assert crossings == []


@pytest.fixture(scope="module")
def strict_app(tmp_path_factory):
    """A public-Space setup: visitors must bring a key, uploads capped at 1 MB.
    (Sharing slots between visitors is tests/test_sharing.py's.)"""
    app = start_app(
        tmp_path_factory.mktemp("strict"),
        STUDIO_REQUIRE_USER_KEY="true",
        STUDIO_MAX_UPLOAD_MB="1",
    )
    yield app
    stop_app(app)


def test_when_visitors_must_bring_a_key_the_hosts_is_never_used(strict_app, fake):
    with urllib.request.urlopen(strict_app.url + "config") as response:
        assert "runs on visitors' own keys" in response.read().decode()
    client = visitor_client(strict_app.url, 1)
    with pytest.raises(Exception) as caught:
        client.predict(prompt="free lunch?", api_name="/generate")
    assert "needs your own fal key" in str(caught.value)
    assert fake.submissions == []
    client.predict(prompt="my own", fal_key=KEYS["ana"], api_name="/generate")
    assert [s.authorization for s in fake.submissions] == [f"Key {KEYS['ana']}"]


def test_uploads_over_the_cap_are_refused(strict_app, fake, tmp_path):
    big = tmp_path / "big.bmp"
    Image.new("RGB", (1000, 1000), (9, 9, 9)).save(big)  # ~3 MB
    client = visitor_client(strict_app.url, 9)
    with pytest.raises(Exception) as caught:
        client.predict(
            prompt="p", images=[handle_file(str(big))], fal_key=KEYS["ana"], api_name="/edit"
        )
    assert "size" in str(caught.value).lower()
    assert fake.submissions == []


def test_image_urls_are_refused_and_never_fetched(api, fake):
    with pytest.raises(Exception) as caught:
        api.predict(
            prompt="p",
            images=[handle_file("https://example.com/cat.png")],
            api_name="/edit",
        )
    assert "Image URLs are not accepted as files" in str(caught.value)
    assert fake.submissions == []


def fragments(key: str) -> list[str]:
    """Every 8-character run of the key except within its last four characters."""
    return [key[i : i + 8] for i in range(len(key) - 11)]


def test_no_key_leaks_into_logs_pages_api_or_files(fake, tmp_path):
    app: RunningApp = start_app(tmp_path, GRADIO_TEMP_DIR=str(tmp_path / "gradio-cache"))
    outputs = []
    try:
        ref = small_png(tmp_path / "ref.png")
        for n, (name, key) in enumerate(KEYS.items()):
            client = visitor_client(app.url, n)
            outputs.append(client.predict(prompt=name, fal_key=key, api_name="/generate"))
            outputs.append(
                client.predict(
                    prompt=name, images=[handle_file(ref)], fal_key=key, api_name="/edit"
                )
            )
        fake.inject(Fault.http_error("submit", 401, detail=f"Invalid key {KEYS['ben']}"))
        with pytest.raises(Exception) as caught:
            visitor_client(app.url, 1).predict(
                prompt="x", fal_key=KEYS["ben"], api_name="/generate"
            )
        outputs.append(str(caught.value))
        outputs.append(visitor_client(app.url, 9).predict(prompt="host", api_name="/generate"))

        texts = {"log": app.log_text(), "api output": json.dumps(outputs, default=str)}
        for route in ("", "config", "gradio_api/info", "gradio_api/openapi.json"):
            try:
                with urllib.request.urlopen(app.url + route) as response:
                    texts[f"/{route}"] = response.read().decode(errors="replace")
            except urllib.error.HTTPError:
                pass
        for script in set(re.findall(r'src="([^"]+\.js)"', texts["/"])):
            url = urllib.parse.urljoin(app.url, script)
            with urllib.request.urlopen(url) as response:
                texts[script] = response.read().decode(errors="replace")
        # Every file the app wrote: results, Gradio's cache, saved outputs, the log.
        for file in tmp_path.rglob("*"):
            if file.is_file():
                texts[str(file)] = file.read_bytes().decode("latin-1")
    finally:
        stop_app(app)
    assert len(texts) > 10
    hits = [
        (where, fragment)
        for key in [*KEYS.values(), HOST_KEY]
        for fragment in fragments(key)
        for where, text in texts.items()
        if fragment in text
    ]
    assert hits == []


def test_file_routes_refuse_paths_outside_the_apps_own(app_server, tmp_path):
    cwd = app_server.log_path.parent  # the app runs in its own folder
    secret = cwd / ".env"
    secret.write_text(f"FAL_KEY={HOST_KEY}\n")
    probes = [
        "/etc/passwd",
        "../../../../etc/passwd",
        "..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        str(secret),
        ".env",
        str(Path(__file__).resolve()),
        "/proc/self/environ",
    ]
    for probe in probes:
        url = f"{app_server.url}gradio_api/file={probe}"
        try:
            with urllib.request.urlopen(url) as response:
                body = response.read().decode(errors="replace")
                status = response.status
        except urllib.error.HTTPError as exc:
            body, status = "", exc.code
        assert status in (400, 403, 404), (probe, status)
        assert "root:" not in body and HOST_KEY not in body
