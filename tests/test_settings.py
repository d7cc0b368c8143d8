"""Settings: each variable's name, checks and defaults, `.env`, and secrets kept secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from gradio.utils import get_upload_folder, is_in_or_equal
from pydantic import ValidationError

from backend import Settings
from backend.errors import InvalidInput
from tests.conftest import ROOT

# Every variable a host may set, a value for it, and what the app then runs with.
VARIABLES: list[tuple[str, str, str, Any]] = [
    ("FAL_KEY", "key-id:key-secret", "host_key", "key-id:key-secret"),
    ("STUDIO_REQUIRE_USER_KEY", "true", "require_user_key", True),
    ("STUDIO_MAX_WAITING_PER_VISITOR", "0", "max_waiting_per_visitor", 0),
    (
        "STUDIO_TRUSTED_PROXIES",
        "10.1.0.0/16, 127.0.0.1",
        "trusted_proxy_list",
        ["10.1.0.0/16", "127.0.0.1"],
    ),
    ("STUDIO_CALL_TIMEOUT", "7", "call_timeout_s", 7.0),
    ("STUDIO_QUEUE_TIMEOUT", "30", "queue_timeout_s", 30.0),
    ("STUDIO_HOST_KEY_BUDGET_USD", "1.5", "host_key_budget_usd", 1.5),
    ("STUDIO_DATA_DIR", "db", "data_dir", Path("db")),
    ("STUDIO_BATCH_CONCURRENCY", "2", "batch_concurrency", 2),
    ("STUDIO_BATCH_MAX_PROMPTS", "10", "batch_max_prompts", 10),
    ("STUDIO_BROWSER_SECRET", "s3cret", "browser_secret_value", "s3cret"),
    ("STUDIO_MAX_UPLOAD_MB", "7", "max_upload_mb", 7),
    ("STUDIO_OUTPUTS_DIR", "saved", "outputs_dir", Path("saved")),
    ("STUDIO_DEMO_MODE", "false", "demo_mode", False),
    ("STUDIO_CONCURRENCY_LIMIT", "3", "concurrency_limit", 3),
    ("STUDIO_REQUEST_TIMEOUT", "42.5", "request_timeout_s", 42.5),
    ("STUDIO_POLL_INTERVAL", "0.02", "poll_interval_s", 0.02),
    ("STUDIO_RESULTS_DIR", "/srv/results", "results_dir", Path("/srv/results")),
    ("FAL_REST_URL", "https://rest.example", "fal_rest_url", "https://rest.example"),
    ("FAL_CDN_URL", "https://cdn.example", "fal_cdn_url", "https://cdn.example"),
    ("SPACE_ID", "someone/studio", "space_id", "someone/studio"),
]
NAMES = [name for name, *_ in VARIABLES]


@pytest.fixture
def host_env(monkeypatch, tmp_path):
    """An empty folder as the current one and none of the app's variables set."""
    for name in NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(("name", "raw", "attribute", "expected"), VARIABLES, ids=NAMES)
def test_each_variable_sets_its_setting(name, raw, attribute, expected):
    settings = Settings.from_env({name: raw})
    assert getattr(settings, attribute) == expected
    assert getattr(Settings.from_env({}), attribute) != expected, "and it is not the default"


def test_the_defaults():
    settings = Settings.from_env({})
    assert settings.host_key is None and not settings.has_host_key
    assert settings.browser_secret_value is None
    assert (settings.require_user_key, settings.demo_mode) == (False, True)
    assert (settings.max_waiting_per_visitor, settings.max_upload_mb) == (64, 50)
    assert (settings.call_timeout_s, settings.queue_timeout_s) == (15.0, 90.0)
    assert settings.host_key_budget_usd is None
    assert settings.data_dir == Path("studio-data") and not settings.data_is_temporary
    assert settings.kept_dir == Path("outputs"), "history keeps its images in the outputs"
    assert (settings.batch_concurrency, settings.batch_max_prompts) == (4, 100)
    assert settings.trusted_proxy_list == ["127.0.0.0/8", "::1"], "loopback only, off a Space"
    assert (settings.concurrency_limit, settings.request_timeout_s) == (64, 300.0)
    assert settings.poll_interval_s == 0.1
    assert settings.outputs_dir == Path("outputs")
    assert settings.fal_rest_url is None and settings.fal_cdn_url is None


@pytest.mark.parametrize(
    ("env", "sentence"),
    [
        (
            {"STUDIO_REQUEST_TIMEOUT": "abc"},
            "STUDIO_REQUEST_TIMEOUT must be a number of seconds (it is 'abc').",
        ),
        ({"STUDIO_REQUEST_TIMEOUT": "1"}, "STUDIO_REQUEST_TIMEOUT must be at least 5.0 (it is 1)."),
        (
            {"STUDIO_POLL_INTERVAL": "0.001"},
            "STUDIO_POLL_INTERVAL must be at least 0.02 (it is 0.001).",
        ),
        (
            {"STUDIO_MAX_WAITING_PER_VISITOR": "-1"},
            "STUDIO_MAX_WAITING_PER_VISITOR must be at least 0 (it is -1).",
        ),
        (
            {"STUDIO_HOST_KEY_BUDGET_USD": "0"},
            "STUDIO_HOST_KEY_BUDGET_USD must be more than 0.0 (it is 0).",
        ),
        (
            {"STUDIO_TRUSTED_PROXIES": "10.0.0.0/8, the-proxy"},
            "STUDIO_TRUSTED_PROXIES: 'the-proxy' is not an address or network (e.g. 10.0.0.0/8).",
        ),
        (
            {"STUDIO_CONCURRENCY_LIMIT": "many"},
            "STUDIO_CONCURRENCY_LIMIT must be a whole number (it is 'many').",
        ),
        (
            {"STUDIO_CONCURRENCY_LIMIT": "0"},
            "STUDIO_CONCURRENCY_LIMIT must be at least 1 (it is 0).",
        ),
        ({"STUDIO_MAX_UPLOAD_MB": "0"}, "STUDIO_MAX_UPLOAD_MB must be at least 1 (it is 0)."),
        (
            {"STUDIO_DEMO_MODE": "perhaps"},
            "STUDIO_DEMO_MODE must be true or false (it is 'perhaps').",
        ),
        (
            {"STUDIO_REQUIRE_USER_KEY": "2"},
            "STUDIO_REQUIRE_USER_KEY must be true or false (it is '2').",
        ),
    ],
)
def test_a_bad_value_is_one_sentence_naming_the_variable(env, sentence):
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env(env)
    assert caught.value.message == sentence


def test_several_bad_values_are_each_named():
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env({"STUDIO_MAX_UPLOAD_MB": "x", "STUDIO_POLL_INTERVAL": "y"})
    assert "STUDIO_MAX_UPLOAD_MB" in caught.value.message
    assert "STUDIO_POLL_INTERVAL" in caught.value.message
    assert "validation error" not in caught.value.message, "not pydantic's report"


@pytest.mark.parametrize("name", NAMES)
def test_an_empty_variable_means_not_set(name):
    assert Settings.from_env({name: ""}) == Settings.from_env({})


def test_a_key_of_spaces_is_no_key():
    settings = Settings.from_env({"FAL_KEY": "   ", "STUDIO_BROWSER_SECRET": " "})
    assert settings.host_key is None and not settings.has_host_key
    assert settings.browser_secret_value is None
    assert Settings.from_env({"FAL_KEY": " k:s \n"}).host_key == "k:s"


def test_the_host_key_serves_visitors_unless_they_must_bring_their_own():
    assert Settings.from_env({"FAL_KEY": "k:s"}).host_key_for_visitors == "k:s"
    own = Settings.from_env({"FAL_KEY": "k:s", "STUDIO_REQUIRE_USER_KEY": "true"})
    assert own.host_key_for_visitors is None
    assert own.has_host_key, "the host still has one"


def test_secrets_never_show_in_repr_or_str():
    settings = Settings.from_env(
        {"FAL_KEY": "id-1234:very-secret-value", "STUDIO_BROWSER_SECRET": "browser-secret-value"}
    )
    for text in (repr(settings), str(settings), f"{settings!r}", repr(settings.model_dump())):
        assert "very-secret-value" not in text
        assert "browser-secret-value" not in text
    assert settings.host_key == "id-1234:very-secret-value"
    assert settings.browser_secret_value == "browser-secret-value"


def test_settings_are_frozen():
    settings = Settings.from_env({})
    with pytest.raises(ValidationError):
        settings.max_upload_mb = 1  # type: ignore[misc]


def test_a_mapping_is_all_that_is_read(host_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "from-the-environment")
    (host_env / ".env").write_text("STUDIO_MAX_UPLOAD_MB=3\n")
    settings = Settings.from_env({"STUDIO_DEMO_MODE": "false"})
    assert settings.host_key is None
    assert settings.max_upload_mb == 50
    assert settings.demo_mode is False


def test_keyword_construction_reads_neither_the_environment_nor_dotenv(host_env, monkeypatch):
    monkeypatch.setenv("FAL_KEY", "from-the-environment")
    monkeypatch.setenv("STUDIO_REQUEST_TIMEOUT", "99")
    (host_env / ".env").write_text("STUDIO_MAX_UPLOAD_MB=3\nFAL_KEY=from-dotenv\n")
    settings = Settings(results_dir=host_env, fal_key="mine", poll_interval_s=0.05)
    assert (settings.host_key, settings.poll_interval_s) == ("mine", 0.05)
    assert (settings.request_timeout_s, settings.max_upload_mb) == (300.0, 50)
    assert Settings(results_dir=host_env).host_key is None
    assert Settings(results_dir=host_env).outputs_dir is None, "saving is for the app to ask"


def test_the_environment_and_dotenv_are_read_and_the_environment_wins(host_env, monkeypatch):
    (host_env / ".env").write_text(
        "# a comment\n"
        "FAL_KEY=from-dotenv\n"
        "STUDIO_MAX_UPLOAD_MB=3\n"
        "STUDIO_REQUEST_TIMEOUT=20\n"
        "STUDIO_BROWSER_SECRET=\n"
        "GRADIO_SERVER_PORT=7861\n"
        "STUDIO_NO_SUCH_SETTING=1\n"
    )
    monkeypatch.setenv("STUDIO_REQUEST_TIMEOUT", "30")
    settings = Settings.from_env()
    assert settings.host_key == "from-dotenv"
    assert settings.max_upload_mb == 3
    assert settings.request_timeout_s == 30.0, "the real environment wins"
    assert settings.browser_secret_value is None


def test_an_empty_variable_in_the_environment_leaves_dotenv_s_value(host_env, monkeypatch):
    (host_env / ".env").write_text("STUDIO_MAX_UPLOAD_MB=3\n")
    monkeypatch.setenv("STUDIO_MAX_UPLOAD_MB", "")
    assert Settings.from_env().max_upload_mb == 3


def test_a_bad_value_in_dotenv_is_named_too(host_env):
    (host_env / ".env").write_text("STUDIO_POLL_INTERVAL=soon\n")
    with pytest.raises(InvalidInput) as caught:
        Settings.from_env()
    assert caught.value.message.startswith("STUDIO_POLL_INTERVAL must be a number of seconds")


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, Path("outputs")),
        ({"SPACE_ID": "someone/studio"}, None),
        ({"SPACE_ID": "someone/studio", "STUDIO_OUTPUTS_DIR": "/data/out"}, Path("/data/out")),
        ({"STUDIO_OUTPUTS_DIR": "off"}, None),
        ({"STUDIO_OUTPUTS_DIR": "None"}, None),
        ({"STUDIO_OUTPUTS_DIR": "FALSE"}, None),
        ({"STUDIO_OUTPUTS_DIR": "0"}, None),
    ],
)
def test_outputs_are_saved_locally_but_not_on_a_space_unless_the_host_says(env, expected):
    assert Settings.from_env(env).outputs_dir == expected


def test_the_app_exits_with_the_sentence_on_a_bad_setting(tmp_path):
    env = {**os.environ, "STUDIO_REQUEST_TIMEOUT": "abc"}
    done = subprocess.run(
        [sys.executable, str(ROOT / "app.py")],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    sentence = "STUDIO_REQUEST_TIMEOUT must be a number of seconds (it is 'abc')."
    assert done.stderr.strip() == sentence, "that sentence alone: no traceback"


@pytest.mark.parametrize("temp_dir", [None, "custom-cache"])
def test_results_land_in_gradios_upload_folder_so_it_serves_them_without_copying(
    monkeypatch, tmp_path, temp_dir
):
    if temp_dir is None:
        monkeypatch.delenv("GRADIO_TEMP_DIR", raising=False)
    else:
        monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / temp_dir))
    results = Settings.from_env({}).results_dir
    assert is_in_or_equal(str(results), get_upload_folder())
    assert results != Path(get_upload_folder()), "a folder of its own inside it"


def test_a_host_can_still_choose_the_results_folder(tmp_path):
    chosen = tmp_path / "elsewhere"
    assert Settings.from_env({"STUDIO_RESULTS_DIR": str(chosen)}).results_dir == chosen


def test_on_a_space_the_proxies_on_its_private_network_are_trusted():
    settings = Settings.from_env({"SPACE_ID": "someone/studio"})
    assert "10.0.0.0/8" in settings.trusted_proxy_list
    assert "127.0.0.0/8" in settings.trusted_proxy_list
    chosen = Settings.from_env({"SPACE_ID": "someone/studio", "STUDIO_TRUSTED_PROXIES": "10.9.0.1"})
    assert chosen.trusted_proxy_list == ["10.9.0.1"], "the host's own list replaces the default"


def test_where_history_lives_and_whether_it_lasts(tmp_path):
    # Without persistent storage (no writable /data here), a Space's history is temporary:
    # the page says so.
    space = Settings.from_env({"SPACE_ID": "someone/studio"})
    if not Path("/data").is_dir():
        assert space.data_is_temporary
    # Without outputs (a Space), history keeps its images beside its database.
    assert space.kept_dir == space.data_folder / "images"
    chosen = Settings.from_env({"STUDIO_DATA_DIR": str(tmp_path)})
    assert chosen.data_folder == tmp_path and not chosen.data_is_temporary
    # Settings built in code (tests, benchmarks) get a folder of their own process.
    built = Settings()
    assert built.data_is_temporary and built.data_folder.is_dir()
    assert built.data_folder == Settings().data_folder
