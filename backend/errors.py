"""One error hierarchy for everything that can go wrong in a request.

Every `StudioError` carries `message`: one short sentence for the person at the
screen, saying what happened and what to do. `detail` keeps the technical part
for the log. Neither ever holds a key (`redact` makes sure of that where text
comes from outside).
"""

from __future__ import annotations

import re
from typing import Any

import httpx


class StudioError(Exception):
    """Base of all errors the UI and API show to users."""

    #: What the UI shows when no more specific sentence applies.
    default_message = "Something went wrong. Please try again."

    def __init__(self, message: str | None = None, *, detail: str = "") -> None:
        self.message = message or self.default_message
        self.detail = detail
        super().__init__(self.message)


class InvalidInput(StudioError):
    """The request was not sent: something in it would be refused."""

    default_message = "Some input is not valid. Check the prompt and parameters."


class MissingKey(StudioError):
    default_message = (
        "No fal API key is set. Paste your key into the 'fal API key' field, "
        "or set FAL_KEY in the environment or a .env file and restart."
    )


class KeyRejected(StudioError):
    default_message = (
        "fal rejected the API key (it is wrong, revoked or out of credit). "
        "Check the key at fal.ai/dashboard/keys and try again."
    )


class RequestRefused(StudioError):
    """fal looked at the request and said no (422): input or content policy."""

    default_message = "fal refused the request. Change the prompt or images and try again."


class ContentPolicyRefusal(RequestRefused):
    default_message = (
        "The request was refused by the content policy. Rephrase the prompt or use other images."
    )

    #: The sentences when fal's `detail` says which input it refused.
    prompt_message = "The prompt was refused by the content policy. Rephrase it and try again."
    image_message = (
        "An input image was refused by the content policy. Use other images and try again."
    )


class RateLimited(StudioError):
    default_message = "fal is rate-limiting this key. Wait a minute, then try again."


class ServiceUnavailable(StudioError):
    default_message = "fal could not be reached or had a problem. Try again in a moment."


class NetworkTrouble(ServiceUnavailable):
    """The answer never arrived whole: no connection, a broken one, or no answer in time."""

    default_message = "Could not reach fal (network trouble). Check the connection and try again."


class UnreadableAnswer(ServiceUnavailable):
    """fal answered, but not in a shape fal_client could read: not JSON, or JSON
    without the fields it expects. `detail` says what was wrong, and where."""

    default_message = "fal sent an answer that could not be read. Try again in a moment."


class InternalError(StudioError):
    """A bug here, not a problem of fal's or of the input: the traceback is in the log."""

    default_message = "Something went wrong on our side; the details are in the server log."


class DeadlineExceeded(StudioError):
    default_message = "The request took too long and was cancelled at fal. Try again later."


class Cancelled(StudioError):
    default_message = "Stopped. The request was cancelled at fal."


class ResultUnavailable(StudioError):
    default_message = "fal finished but returned no usable image. Try again."


_KEY_PATTERN = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}:[0-9a-f]{32}", re.I
)


def redact(text: str, *secrets: str | None) -> str:
    """Remove known secrets and anything shaped like a fal key from `text`."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, "[key]")
    return _KEY_PATTERN.sub("[key]", text)


def format_detail(detail: Any) -> str:
    """fal's `detail` as one line: a string, or FastAPI's list of {loc, msg, type}."""
    if detail is None:
        return ""
    if isinstance(detail, str):
        return detail.strip()
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                loc = [str(p) for p in item.get("loc", []) if p != "body"]
                msg = str(item.get("msg", "")).strip()
                parts.append(f"{'.'.join(loc)}: {msg}" if loc else msg)
            else:
                parts.append(str(item))
        return "; ".join(p for p in parts if p)
    if isinstance(detail, dict):
        if "msg" in detail or "message" in detail:
            return str(detail.get("msg") or detail.get("message"))
        return ", ".join(f"{k}: {v}" for k, v in detail.items())
    return str(detail)


def _looks_like_content_policy(detail: Any, error_type: str | None) -> bool:
    text = f"{error_type or ''} {detail}".lower()
    return any(
        marker in text
        for marker in ("content_policy", "content policy", "safety", "moderation", "nsfw")
    )


def _detail_types(detail: Any) -> list[str]:
    """The machine-readable `type`s of a `detail` list, for the log."""
    items = detail if isinstance(detail, list) else []
    return sorted({str(i["type"]) for i in items if isinstance(i, dict) and i.get("type")})


def _content_policy(detail: Any, technical: str) -> ContentPolicyRefusal:
    """The refusal, naming the prompt or the images when fal's `detail` list says which."""
    fields = {
        str(part)
        for item in (detail if isinstance(detail, list) else [])
        if isinstance(item, dict)
        for part in item.get("loc", [])
    }
    if fields & {"image_urls", "mask_image_url"}:
        return ContentPolicyRefusal(ContentPolicyRefusal.image_message, detail=technical)
    if "prompt" in fields:
        return ContentPolicyRefusal(ContentPolicyRefusal.prompt_message, detail=technical)
    return ContentPolicyRefusal(detail=technical)


# What fal's own 5xx answers mean for the user (fal's `x-fal-error-type` goes to the log).
_SERVER_MESSAGES = {
    500: "fal had an internal error with this request. Try again in a moment.",
    502: "fal's service is having trouble right now. Try again in a few minutes.",
    503: "fal's service is unavailable right now (busy or under maintenance). "
    "Try again in a few minutes.",
}
_TOO_SLOW = "fal took too long to answer. Try again in a moment."


def from_http_status(status: int, detail: Any, error_type: str | None = None) -> StudioError:
    """Map an HTTP failure from fal to the error a user should see."""
    said = format_detail(detail)
    technical = f"HTTP {status}" + (f" ({error_type})" if error_type else "") + f": {said}"
    if kinds := _detail_types(detail):
        technical += f" [type: {', '.join(kinds)}]"
    if status in (401, 403):
        return KeyRejected(detail=technical)
    if status == 422:
        if _looks_like_content_policy(detail, error_type):
            return _content_policy(detail, technical)
        reason = f"fal refused the request: {said.rstrip('.')}. Change it and try again."
        return RequestRefused(reason if said else None, detail=technical)
    if status == 429:
        return RateLimited(detail=technical)
    if status in (408, 504) or (error_type or "").endswith("timeout"):
        return ServiceUnavailable(_TOO_SLOW, detail=technical)
    if status >= 500:
        return ServiceUnavailable(_SERVER_MESSAGES.get(status), detail=technical)
    if 400 <= status < 500:
        reason = f"fal did not accept the request: {said.rstrip('.')}."
        return RequestRefused(reason if said else None, detail=technical)
    return ServiceUnavailable(detail=technical)


def from_completed_error(error: Any, error_type: str | None) -> StudioError:
    """A request fal reports as COMPLETED with an error, though its result fetched."""
    said = format_detail(error)[:300]
    technical = f"completed with error ({error_type or 'no type'}): {said}"
    if _looks_like_content_policy(error, error_type):
        return _content_policy(error, technical)
    if (error_type or "").endswith("timeout"):
        # fal gave the request up itself: it had not started within our
        # X-Fal-Request-Timeout (see backend/fal.py).
        return DeadlineExceeded(
            "fal's queue did not start the request in time (fal is busy), so fal dropped "
            "it; nothing was run. Try again later.",
            detail=technical,
        )
    return ServiceUnavailable(
        f"fal could not finish the request ({said.rstrip('.')}). Try again in a moment."
        if said
        else None,
        detail=technical,
    )


def from_transport_error(exc: BaseException) -> NetworkTrouble:
    """A request whose answer never arrived whole, after fal_client's own retries."""
    technical = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, httpx.TimeoutException):
        return NetworkTrouble(
            "fal did not answer in time (network trouble). Try again in a moment.",
            detail=technical,
        )
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)):
        return NetworkTrouble(
            "The connection to fal broke off before its answer arrived (network trouble). "
            "Try again in a moment.",
            detail=technical,
        )
    return NetworkTrouble(detail=technical)


def _seconds(limit_s: float) -> str:
    """A time limit as a sentence says it: "90 seconds", "5 minutes"."""
    return f"{limit_s:g} seconds" if limit_s < 120 else f"{limit_s / 60:.3g} minutes"


def deadline_exceeded(timeout_s: float, *, submitted: bool) -> DeadlineExceeded:
    """The request hit the per-request deadline (`STUDIO_REQUEST_TIMEOUT`)."""
    limit = _seconds(timeout_s)
    if submitted:
        message = f"The request took longer than {limit} and was cancelled at fal. Try again later."
    else:
        # fal_client was still retrying (a 429, a busy gateway, no connection): nothing ran.
        message = (
            f"fal did not accept the request within {limit} (it is busy, rate-limiting this "
            "key, or unreachable); nothing was run. Try again later."
        )
    return DeadlineExceeded(message, detail=f"deadline {timeout_s:g}s, submitted={submitted}")


def no_answer(call: str, limit_s: float, *, submitted: bool) -> NetworkTrouble:
    """A status or result call had no usable answer in time (`STUDIO_CALL_TIMEOUT`),
    fal_client's retries included: no answer at all, or only broken ones."""
    detail = f"no usable answer to the {call} within {limit_s:g}s"
    if call == "result":
        return NetworkTrouble(
            f"fal finished the request, but its result could not be fetched for "
            f"{_seconds(limit_s)} (no answer at all, or only broken ones). Try again in a moment.",
            detail=detail,
        )
    what = "the request was cancelled at fal" if submitted else "nothing was run"
    return NetworkTrouble(
        f"fal gave no usable answer for {_seconds(limit_s)} (no answer at all, or only "
        f"broken ones); {what}. Try again in a moment.",
        detail=detail,
    )


def stuck_in_queue(limit_s: float) -> DeadlineExceeded:
    """The request was still waiting in fal's queue at `STUDIO_QUEUE_TIMEOUT`."""
    return DeadlineExceeded(
        f"fal's queue did not start the request within {_seconds(limit_s)} (fal is busy), "
        "so it was cancelled at fal. Try again later.",
        detail=f"still queued after {limit_s:g}s",
    )


def waited_too_long(limit_s: float) -> DeadlineExceeded:
    """A call waited the whole `STUDIO_REQUEST_TIMEOUT` for a free slot of this app."""
    return DeadlineExceeded(
        f"This app was busy for {_seconds(limit_s)}: your run waited for a free slot and "
        "was never sent. Try again later.",
        detail=f"no slot within {limit_s:g}s",
    )
