"""Settings read from the environment (and a `.env` file, loaded by app.py).

Every setting is listed, with a comment, in `.env.example`. Gradio reads its own
(`GRADIO_SERVER_NAME`, `GRADIO_SERVER_PORT`, ...) itself.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from backend.edits import INLINE_BUDGET_BYTES, INLINE_LIMIT_BYTES
from backend.errors import InvalidInput


@dataclass(frozen=True)
class Settings:
    # repr=False: a settings object in a log line or traceback must not show secrets.
    fal_key: str | None = field(default=None, repr=False)
    # A public Space should not spend its owner's money: visitors bring their own key.
    require_user_key: bool = False
    # Jobs one visitor may have running at once (0: no limit), so that nobody can
    # hold every slot of a shared server.
    max_jobs_per_visitor: int = 4
    # Secret that encrypts a visitor's remembered key in their own browser; without
    # it the "remember" option is hidden.
    browser_secret: str | None = field(default=None, repr=False)
    max_upload_mb: int = 50
    # Results are also saved here with their prompt and parameters; None: not saved.
    outputs_dir: Path | None = None
    # With no key anywhere, run on placeholder images instead of refusing.
    demo_mode: bool = True
    concurrency_limit: int = 64
    request_timeout_s: float = 300.0
    poll_interval_s: float = 0.1
    # Inside Gradio's upload folder: Gradio serves files from there as they are,
    # where a file anywhere else is hashed and copied in on every display.
    results_dir: Path = field(default_factory=lambda: gradio_upload_folder() / "gpt-image-studio")
    # Where fal_client uploads files; None keeps fal's own hosts. Tests point
    # these at a local fake; a proxy could too. (fal_client reads its run and
    # queue hosts itself, from FAL_RUN_HOST and FAL_QUEUE_RUN_HOST.)
    fal_rest_url: str | None = None
    # Edit inputs up to this size go inline as data URIs, larger ones are
    # uploaded (see backend/edits.py); a field so benchmarks can compare both.
    inline_limit_bytes: int = INLINE_LIMIT_BYTES
    inline_budget_bytes: int = INLINE_BUDGET_BYTES
    fal_cdn_url: str | None = None

    @property
    def has_host_key(self) -> bool:
        return bool(self.fal_key)

    @property
    def host_key_for_visitors(self) -> str | None:
        """The key that serves visitors who bring none, unless they must bring one."""
        return None if self.require_user_key else self.fal_key

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        defaults = cls()
        return cls(
            fal_key=(env.get("FAL_KEY") or "").strip() or None,
            require_user_key=_bool(env, "STUDIO_REQUIRE_USER_KEY"),
            max_jobs_per_visitor=_int(
                env, "STUDIO_MAX_JOBS_PER_VISITOR", defaults.max_jobs_per_visitor, 0
            ),
            browser_secret=(env.get("STUDIO_BROWSER_SECRET") or "").strip() or None,
            max_upload_mb=_int(env, "STUDIO_MAX_UPLOAD_MB", defaults.max_upload_mb, 1),
            outputs_dir=_outputs_dir(env),
            demo_mode=_bool(env, "STUDIO_DEMO_MODE", default=True),
            concurrency_limit=_int(env, "STUDIO_CONCURRENCY_LIMIT", defaults.concurrency_limit, 1),
            request_timeout_s=_float(
                env, "STUDIO_REQUEST_TIMEOUT", defaults.request_timeout_s, minimum=5.0
            ),
            poll_interval_s=_float(
                env, "STUDIO_POLL_INTERVAL", defaults.poll_interval_s, minimum=0.02
            ),
            results_dir=Path(env["STUDIO_RESULTS_DIR"])
            if env.get("STUDIO_RESULTS_DIR")
            else defaults.results_dir,
            fal_rest_url=env.get("FAL_REST_URL") or None,
            fal_cdn_url=env.get("FAL_CDN_URL") or None,
        )


def gradio_upload_folder() -> Path:
    """Gradio's own rule for its upload folder (gradio.utils.get_upload_folder),
    without importing Gradio into the backend; a test checks the two agree."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def _outputs_dir(env: Mapping[str, str]) -> Path | None:
    """`outputs` beside the app by default; off on a Hugging Face Space (its disk is
    shared and temporary), unless the host sets a folder. "off" turns it off."""
    raw = env.get("STUDIO_OUTPUTS_DIR", "").strip()
    if raw.lower() in ("off", "none", "false", "0"):
        return None
    if raw:
        return Path(raw)
    return None if env.get("SPACE_ID") else Path("outputs")


def _bool(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("0", "false", "no", "off"):
        return False
    if raw in ("1", "true", "yes", "on"):
        return True
    raise InvalidInput(f"{name} must be true or false (it is '{raw}').")


def _int(env: Mapping[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number (it is '{raw}').") from None
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum} (it is {value}).")
    return value


def _float(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a number of seconds (it is '{raw}').") from None
    if value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum} (it is {value}).")
    return value
