"""Which fal key a request uses, decided once per request and never shown.

A visitor's own key wins; otherwise the host's `FAL_KEY` serves. The label
(`source`) is what the UI and records show; the key itself stays in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from backend.errors import InvalidInput, MissingKey

KeySource = Literal["your key", "the host's key", "demo"]


@dataclass(frozen=True)
class KeyChoice:
    key: str = field(repr=False)
    source: KeySource

    @property
    def hint(self) -> str:
        """The last four characters, the most of a key anyone may see."""
        return f"…{self.key[-4:]}" if len(self.key) >= 12 else ""


def clean_user_key(raw: str | None) -> str | None:
    """A visitor's key as typed, trimmed; None when the field is empty."""
    key = (raw or "").strip()
    if not key:
        return None
    if any(ch.isspace() for ch in key) or not key.isprintable() or len(key) < 8:
        raise InvalidInput(
            "That does not look like a fal API key. Copy it again from fal.ai/dashboard/keys."
        )
    return key


def choose_key(
    user_key: str | None, host_key: str | None, *, host_requires_own: bool = False
) -> KeyChoice:
    """The key for one request: the visitor's own, else the host's (if the host allows)."""
    own = clean_user_key(user_key)
    if own:
        return KeyChoice(own, "your key")
    if host_key and not host_requires_own:
        return KeyChoice(host_key, "the host's key")
    if host_requires_own:
        raise MissingKey(
            "This app needs your own fal key: paste it into the 'fal API key' field "
            "(get one at fal.ai/dashboard/keys)."
        )
    raise MissingKey()
