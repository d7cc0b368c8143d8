"""Shared fixtures: the fake fal service, the real app server, a real browser.

fal_client reads its run and queue hosts from the environment once, at import,
so the fake's addresses are fixed here before anything imports fal_client; its
upload hosts are set through backend/fal.py right after.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.fakefal import FakeFal, shared_fake

assert "fal_client" not in sys.modules, "conftest must configure the fake before fal_client loads"

# A developer's real key, kept for the opt-in live test before the fake takes over.
LIVE_FAL_KEY = os.environ.get("FAL_KEY")

# The fake lives for the whole session; its sockets are bound now so that the
# environment names them before fal_client is imported.
FAKE = shared_fake()
FAKE_ENV_NAMES = frozenset(FAKE.env())

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
HOST_KEY = "host0000-0000-4000-8000-000000000000:00000000000000000000000000000000"

from backend.fal import point_uploads_at  # noqa: E402  (imports fal_client: after the env)

point_uploads_at(FAKE.rest_url, FAKE.cdn_url)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--live", action="store_true", help="run tests against the real fal.ai")
    parser.addoption(
        "--update-screenshots",
        action="store_true",
        help="write the README's screenshots (tests/screenshots/) instead of test-artifacts/",
    )


@pytest.fixture(scope="session")
def fake_service() -> FakeFal:
    return FAKE


@pytest.fixture
def fake(fake_service: FakeFal) -> Iterator[FakeFal]:
    """The fake fal service, with clean records and default behaviour.

    A bug in the fake answers 500 or never finishes a request, which can pass for
    the app's own error, timeout or cancel path: the test fails if the fake recorded
    an internal error, during the test or (from a module fixture) before it.
    """
    before = fake_service.internal_errors
    fake_service.reset()
    _fail_on_internal_errors(before, "before this test (in a fixture that set it up)")
    yield fake_service
    during = fake_service.internal_errors
    fake_service.reset()
    _fail_on_internal_errors(during, "during this test")


def _fail_on_internal_errors(errors: list[str], when: str) -> None:
    if errors:
        pytest.fail(
            f"the fake fal service had {len(errors)} internal error(s) {when}:\n"
            + "\n".join(errors),
            pytrace=False,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningApp:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_app(
    tmp_dir: Path, script: Path = ROOT / "app.py", *, port: int | None = None, **env_overrides: str
) -> RunningApp:
    """Launch `python app.py` (or another app `script`) as a user would, pointed at
    the fake fal service. `port`: the same address again (a restart the browser
    sees as the same site, with the same local storage)."""
    port = port or free_port()
    env = {
        **os.environ,
        **FAKE.env(),
        "FAL_KEY": HOST_KEY,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
        # Results land in Gradio's upload folder, as by default; one per app.
        "GRADIO_TEMP_DIR": str(tmp_dir / "gradio"),
        "STUDIO_REQUEST_TIMEOUT": "60",
        "STUDIO_CONCURRENCY_LIMIT": "64",
        "PYTHONUNBUFFERED": "1",
        **env_overrides,
    }
    log_path = tmp_dir / f"app-{port}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, str(script)],
        cwd=tmp_dir,
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"app exited early:\n{log_path.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        raise RuntimeError(f"app did not start:\n{log_path.read_text()}")
    return RunningApp(url, process, log_path)


def stop_app(app: RunningApp) -> None:
    app.process.terminate()
    try:
        app.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        app.process.kill()


@pytest.fixture(scope="session")
def app_server(
    fake_service: FakeFal, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningApp]:
    """One app process for the session, with a host key."""
    app = start_app(tmp_path_factory.mktemp("app"))
    yield app
    stop_app(app)


@pytest.fixture
def api(app_server: RunningApp, fake: FakeFal):
    """A gradio_client connected to the running app (fake reset per test)."""
    from gradio_client import Client

    return Client(app_server.url, verbose=False)


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # Results are shown straight from fal's CDN (the fake's, on loopback, with its
    # own test CA): the browser must accept that certificate as the app's httpx does.
    "--ignore-certificate-errors",
]


@pytest.fixture(scope="module")
def browser():
    """Debian's chromium driven by Playwright (never `playwright install`).

    Module-scoped: sync Playwright runs an event loop while it is open, which
    would stop pytest-asyncio's tests in other modules from running theirs.
    """
    from playwright.sync_api import sync_playwright

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Debian chromium is missing: apt-get install -y chromium (see .ci/run)")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
