"""Settings read from the environment and a `.env` file in the current directory.

Every setting is listed, with a comment, in `.env.example`. Gradio reads its own
(`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`, ...) itself.

Design: `Settings` is a pydantic-settings model whose own sources are its
keyword arguments only, so `Settings(fal_key=..., results_dir=...)` in code,
tests and benchmarks means exactly what it says: a developer's exported FAL_KEY
or a stray `.env` cannot change what a test runs with. `Settings.from_env()` is
the one place that reads the host's variables, through pydantic-settings' own
environment and `.env` sources, so names, types, minimums and precedence are
declared once, on the fields. (One class rather than a model plus a loader
subclass: the loader would have to repeat or re-derive every field.)
"""

from __future__ import annotations

import functools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from backend.edits import INLINE_BUDGET_BYTES, INLINE_LIMIT_BYTES
from backend.errors import InvalidInput
from backend.visitors import TrustedProxies

ENV_PREFIX = "STUDIO_"
# STUDIO_OUTPUTS_DIR values that turn saving off.
_OFF = frozenset({"off", "none", "false", "0"})
# Fields a benchmark may set but a host may not: they tune how the app talks
# to fal, and no variable has ever named them.
_NOT_FROM_ENVIRONMENT = frozenset({"inline_limit_bytes", "inline_budget_bytes"})


def gradio_upload_folder() -> Path:
    """Gradio's own rule for its upload folder (gradio.utils.get_upload_folder),
    without importing Gradio into the backend; a test checks the two agree."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


@functools.cache
def _process_data_folder() -> Path:
    return Path(tempfile.mkdtemp(prefix="gpt-image-studio-data-"))


def default_data_dir(*, space: bool) -> Path:
    """./studio-data locally; on a Space, its persistent storage (/data) when it
    has some, else a temporary folder (gone at the next restart)."""
    if not space:
        return Path("studio-data")
    persistent = Path("/data")
    if persistent.is_dir() and os.access(persistent, os.W_OK):
        return persistent / "gpt-image-studio"
    return _space_temporary_data()


def _space_temporary_data() -> Path:
    return Path(tempfile.gettempdir()) / "gpt-image-studio-data"


class Settings(BaseSettings):
    """The host's choices. Frozen; secrets are `SecretStr`, shown as stars in any repr."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file=".env",
        # `STUDIO_BROWSER_SECRET=` (as in .env.example) means "not set", not "".
        env_ignore_empty=True,
        frozen=True,
        # Keyword arguments use the field names, also for fields whose variable
        # is named otherwise (validation_alias).
        validate_by_name=True,
        extra="forbid",
    )

    # Not prefixed: the name fal's own tools read.
    fal_key: SecretStr | None = Field(default=None, validation_alias="FAL_KEY")
    # A public Space should not spend its owner's money: visitors bring their own key.
    require_user_key: bool = False
    # Calls one visitor may have waiting for a slot (0: no limit); one more is
    # refused. Running calls are never limited per visitor: slots are shared fairly
    # (backend/scheduler.py).
    max_waiting_per_visitor: int = Field(default=64, ge=0)
    # Proxies whose X-Forwarded-For is believed (addresses or networks, comma
    # separated). None: loopback only, or also the private networks on a Space.
    trusted_proxies: str | None = None
    # Secret that encrypts a visitor's remembered key in their own browser; without
    # it the "remember" option is hidden.
    browser_secret: SecretStr | None = None
    max_upload_mb: int = Field(default=50, ge=1)
    # Set by Hugging Face on a Space; from_env() turns saving outputs off there.
    space_id: str | None = Field(default=None, validation_alias="SPACE_ID")
    # Results are also saved here with their prompt and parameters; None: not saved.
    outputs_dir: Path | None = None
    # With no key anywhere, run on placeholder images instead of refusing.
    demo_mode: bool = True
    # Serve the MCP server (tools `generate` and `edit`) at /gradio_api/mcp/.
    mcp_server: bool = True
    concurrency_limit: int = Field(default=64, ge=1)
    request_timeout_s: float = Field(
        default=300.0, ge=5, validation_alias=ENV_PREFIX + "REQUEST_TIMEOUT"
    )
    # One submit, status or result call without an answer for this long is given
    # up (fal_client's own retries included): a hang is said in seconds.
    call_timeout_s: float = Field(default=15.0, ge=1, validation_alias=ENV_PREFIX + "CALL_TIMEOUT")
    # A request still in fal's queue after this long is cancelled there; fal is
    # told too (X-Fal-Request-Timeout), so it drops the request even if we die.
    queue_timeout_s: float = Field(
        default=90.0, ge=5, validation_alias=ENV_PREFIX + "QUEUE_TIMEOUT"
    )
    # What each visitor may spend per day (UTC) on the host's key; None: no cap.
    host_key_budget_usd: float | None = Field(
        default=None, gt=0, validation_alias=ENV_PREFIX + "HOST_KEY_BUDGET_USD"
    )
    # How many runs of one batch go at once (each still takes its turn in the fair
    # scheduler), and how many prompts a batch may have.
    batch_concurrency: int = Field(default=4, ge=1)
    batch_max_prompts: int = Field(default=100, ge=1)
    # Where the app keeps its database (history, the budget's ledger).
    data_dir: Path | None = None
    poll_interval_s: float = Field(
        default=0.1, ge=0.02, validation_alias=ENV_PREFIX + "POLL_INTERVAL"
    )
    # Follow each request through fal's status stream (one connection) rather than
    # polling; polling stays as the fallback when a stream fails (backend/client.py).
    status_stream: bool = True
    # Inside Gradio's upload folder: Gradio serves files from there as they are,
    # where a file anywhere else is hashed and copied in on every display.
    results_dir: Path = Field(default_factory=lambda: gradio_upload_folder() / "gpt-image-studio")
    # Where fal_client uploads files; None keeps fal's own hosts. Tests point
    # these at a local fake; a proxy could too. (fal_client reads its run and
    # queue hosts itself, from FAL_RUN_HOST and FAL_QUEUE_RUN_HOST.)
    fal_rest_url: str | None = Field(default=None, validation_alias="FAL_REST_URL")
    fal_cdn_url: str | None = Field(default=None, validation_alias="FAL_CDN_URL")
    # Edit inputs up to this size go inline as data URIs, larger ones are
    # uploaded (see backend/edits.py); a field so benchmarks can compare both.
    inline_limit_bytes: int = INLINE_LIMIT_BYTES
    inline_budget_bytes: int = INLINE_BUDGET_BYTES

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_addresses(cls, value: str | None) -> str | None:
        if value is not None:
            TrustedProxies.of(part for part in value.split(",") if part.strip())
        return value

    @field_validator("outputs_dir", mode="before")
    @classmethod
    def _off_means_none(cls, value: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in _OFF:
            return None
        return value

    @property
    def host_key(self) -> str | None:
        """The host's fal key as text; None when there is none."""
        return _reveal(self.fal_key)

    @property
    def browser_secret_value(self) -> str | None:
        return _reveal(self.browser_secret)

    @property
    def data_folder(self) -> Path:
        """Where the database lives: a temporary folder of this process when none was
        chosen (settings built in code: tests, benchmarks), so two never share one."""
        return self.data_dir or _process_data_folder()

    @property
    def data_is_temporary(self) -> bool:
        """History will not outlast a restart: no folder was chosen, or a Space has
        no persistent storage (default_data_dir)."""
        return self.data_dir is None or self.data_dir == _space_temporary_data()

    @property
    def kept_dir(self) -> Path:
        """Where each run's images are kept with their parameters: the outputs folder,
        or, with none, a folder beside the database."""
        return self.outputs_dir or self.data_folder / "images"

    @property
    def trusted_proxy_list(self) -> list[str]:
        """The proxies whose X-Forwarded-For is believed.

        Loopback always (a reverse proxy on the same machine). On a Hugging Face
        Space also the private networks: the Space's proxy reaches the app from
        an internal address and appends the visitor's (ARCHITECTURE.md, "Visitors
        behind a proxy")."""
        if self.trusted_proxies is not None:
            return [part.strip() for part in self.trusted_proxies.split(",") if part.strip()]
        trusted = ["127.0.0.0/8", "::1"]
        if self.space_id:
            trusted += ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"]
        return trusted

    @property
    def has_host_key(self) -> bool:
        return self.host_key is not None

    @property
    def host_key_for_visitors(self) -> str | None:
        """The key that serves visitors who bring none, unless they must bring one."""
        return None if self.require_user_key else self.host_key

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Constructed directly: the arguments and nothing else (see the module's
        # docstring). The environment is read by from_env() alone.
        return (init_settings,)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The host's settings: from `env` alone if given, else from the environment
        and `.env` (the environment wins). Raises InvalidInput, one sentence per
        bad variable, naming it and what it must be."""
        sources: list[EnvSettingsSource]
        if env is None:
            sources = [DotEnvSettingsSource(cls), EnvSettingsSource(cls)]
        else:
            sources = [_MappingSource(cls, env)]
        values: dict[str, Any] = {}
        for source in sources:  # later ones win
            values.update(source())
        # The .env source also passes on unknown STUDIO_ names (a setting of another
        # version, a typo); as in the environment, those are not ours to refuse.
        known = {_input_key(name) for name in cls.model_fields} - _NOT_FROM_ENVIRONMENT
        values = {key: value for key, value in values.items() if key in known}
        if "data_dir" not in values:
            values["data_dir"] = default_data_dir(space=bool(values.get("SPACE_ID")))
        if "outputs_dir" not in values:
            # `outputs` beside the app by default; off on a Hugging Face Space
            # (its disk is shared and temporary), unless the host sets a folder.
            values["outputs_dir"] = None if values.get("SPACE_ID") else Path("outputs")
        try:
            return cls(**values)
        except ValidationError as exc:
            raise InvalidInput(_describe_error(exc)) from None


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of
    os.environ, so that from_env(mapping) follows exactly the same rules."""

    def __init__(self, settings_cls: type[BaseSettings], env: Mapping[str, str]) -> None:
        self._given = env
        super().__init__(settings_cls)

    # The hook pydantic-settings' own .env source overrides to read a file.
    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name if self.case_sensitive else name.lower(): value
            for name, value in self._given.items()
            if not (self.env_ignore_empty and value == "")
        }


def _reveal(secret: SecretStr | None) -> str | None:
    text = secret.get_secret_value().strip() if secret is not None else ""
    return text or None


def _input_key(name: str) -> str:
    """The key a source gives a field's value under: its alias if it has one."""
    alias = Settings.model_fields[name].validation_alias
    return alias if isinstance(alias, str) else name


def _env_name(field_name: str) -> str:
    """The variable that sets a field."""
    alias = Settings.model_fields[field_name].validation_alias
    return alias if isinstance(alias, str) else (ENV_PREFIX + field_name).upper()


def _field_named(key: str) -> str | None:
    """The field a value was given for, by name or by alias."""
    for name in Settings.model_fields:
        if key in (name, _input_key(name)):
            return name
    return None


# pydantic's error types, as what the variable must be.
_MUST_BE = {
    "bool_parsing": "true or false",
    "int_parsing": "a whole number",
    "int_from_float": "a whole number",
    "float_parsing": "a number",
}


def _describe_error(exc: ValidationError) -> str:
    """One sentence per bad variable: its name, what it must be, what it is."""
    sentences = []
    for error in exc.errors(include_url=False):
        loc = error.get("loc", ())
        field = _field_named(str(loc[0])) if loc else None
        variable = _env_name(field) if field else "A setting"
        kind = error.get("type", "")
        raw = error.get("input")
        if kind == "greater_than_equal":
            minimum = (error.get("ctx") or {}).get("ge")
            sentences.append(f"{variable} must be at least {minimum} (it is {raw}).")
        elif kind == "value_error":
            said = str((error.get("ctx") or {}).get("error", error.get("msg")))
            sentences.append(f"{variable}: {said}.")
        elif kind == "greater_than":
            minimum = (error.get("ctx") or {}).get("gt")
            sentences.append(f"{variable} must be more than {minimum} (it is {raw}).")
        elif kind in _MUST_BE:
            # Fields in seconds end in _s, and their variables say so.
            must = "a number of seconds" if field and field.endswith("_s") else _MUST_BE[kind]
            sentences.append(f"{variable} must be {must} (it is '{raw}').")
        else:
            sentences.append(f"{variable} is not valid ({error.get('msg')}).")
    return " ".join(sentences)
