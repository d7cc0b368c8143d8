"""fal's failures become one sentence a person can act on."""

from __future__ import annotations

import pytest

from backend.errors import (
    ContentPolicyRefusal,
    KeyRejected,
    RateLimited,
    RequestRefused,
    ServiceUnavailable,
    format_detail,
    from_completed_error,
    from_http_status,
    redact,
)
from backend.keys import choose_key, clean_user_key

KEY = "0123abcd-0000-4000-8000-00000000beef:0123456789abcdef0123456789abcdef"


def test_format_detail_of_a_fastapi_list():
    detail = [
        {"loc": ["body", "num_images"], "msg": "Input should be less than or equal to 4"},
        {"loc": ["body", "image_size"], "msg": "Input should be '1024x1024'", "type": "enum"},
    ]
    assert format_detail(detail) == (
        "num_images: Input should be less than or equal to 4; "
        "image_size: Input should be '1024x1024'"
    )


def test_format_detail_of_other_shapes():
    assert format_detail("  Not found ") == "Not found"
    assert format_detail(None) == ""
    assert format_detail({"msg": "bad"}) == "bad"
    assert format_detail([{"msg": "no loc"}]) == "no loc"


@pytest.mark.parametrize(
    ("status", "detail", "error_type", "kind", "phrase"),
    [
        (401, "Invalid key", None, KeyRejected, "Check the key"),
        (403, "Forbidden", None, KeyRejected, "Check the key"),
        (
            422,
            [{"loc": ["body", "prompt"], "msg": "field required", "type": "missing"}],
            None,
            RequestRefused,
            "fal refused the request: prompt: field required. Change it",
        ),
        (
            422,
            [{"loc": ["body", "prompt"], "msg": "flagged", "type": "content_policy_violation"}],
            None,
            ContentPolicyRefusal,
            "content policy",
        ),
        (429, "Too many requests", None, RateLimited, "Wait a minute"),
        (500, "boom", None, ServiceUnavailable, "Try again in a moment"),
        (503, "no runners", "runner_unavailable", ServiceUnavailable, "Try again"),
        (504, "timeout", "request_timeout", ServiceUnavailable, "took too long"),
    ],
)
def test_http_status_maps_to_a_user_sentence(status, detail, error_type, kind, phrase):
    error = from_http_status(status, detail, error_type)
    assert type(error) is kind
    assert phrase in error.message
    assert str(status) in error.detail
    assert "Traceback" not in error.message


def test_completed_error_mentions_what_fal_said():
    error = from_completed_error("GPU out of memory", "runner_error")
    assert isinstance(error, ServiceUnavailable)
    assert "GPU out of memory" in error.message
    assert isinstance(from_completed_error("Content policy violation", None), ContentPolicyRefusal)


def test_redact_removes_known_secrets_and_key_shapes():
    text = f"Authorization: Key {KEY} and again mysecretkey123"
    cleaned = redact(text, "mysecretkey123")
    assert KEY not in cleaned
    assert "mysecretkey123" not in cleaned
    assert cleaned.count("[key]") == 2


def test_key_choice_prefers_the_visitors_key_and_never_shows_it():
    choice = choose_key(f"  {KEY} ", "host-key-123456")
    assert choice.key == KEY
    assert choice.source == "your key"
    assert KEY not in repr(choice)
    assert choice.hint == "…cdef"
    assert choose_key("", "host-key-123456").source == "the host's key"


def test_no_key_anywhere_says_how_to_add_one():
    from backend.errors import MissingKey

    with pytest.raises(MissingKey) as caught:
        choose_key(None, None)
    assert "FAL_KEY" in caught.value.message
    assert "fal API key" in caught.value.message


def test_a_key_with_spaces_inside_is_refused():
    from backend.errors import InvalidInput

    with pytest.raises(InvalidInput):
        clean_user_key("abc def ghi jkl")
    assert clean_user_key("   ") is None
