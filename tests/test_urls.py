"""Which image URLs a caller may name, and which hosts count as fal's own."""

from __future__ import annotations

import pytest

from backend.errors import InvalidInput
from backend.urls import checked_url, checked_urls, fal_image_size, on_fal_media


@pytest.mark.parametrize(
    "url",
    [
        "https://v3b.fal.media/files/b/0a8691af/x.png",
        "http://example.com/a.png?x=1",
        "HTTPS://Example.com/a.png",
    ],
)
def test_http_urls_pass_unchanged(url):
    assert checked_url(url, "image_urls[0]") == url


@pytest.mark.parametrize(
    "value",
    [
        "file:///etc/passwd",
        "/etc/passwd",
        "C:\\photos\\cat.png",
        "a cat",
        "ftp://example.com/a.png",
        "data:image/png;base64,AAAA",
        "https://",
        "https://exa mple.com/a.png",
        "https://example.com/a.png\n",
        "",
        None,
        7,
    ],
)
def test_anything_else_is_refused_in_one_sentence(value):
    with pytest.raises(InvalidInput) as caught:
        checked_url(value, "image_urls[3]")
    message = caught.value.message
    assert message.startswith("image_urls[3] is not an http(s) URL")
    assert message.count(". ") == 0 and message.endswith(".")


def test_a_list_names_the_item_at_fault_and_one_string_is_a_list_of_one():
    with pytest.raises(InvalidInput, match=r"image_urls\[1\]"):
        checked_urls(["https://a.example/x.png", "x.png"])
    assert checked_urls("https://a.example/x.png") == ["https://a.example/x.png"]
    assert checked_urls(None) == []


@pytest.mark.parametrize(
    ("url", "ours"),
    [
        ("https://v3.fal.media/files/a.png", True),
        ("https://v3b.fal.media/files/b/x.png", True),
        ("https://fal.media/files/x.png", True),
        ("http://v3.fal.media/files/a.png", False),
        ("https://evilfal.media/a.png", False),
        ("https://fal.media.example.com/a.png", False),
        ("https://example.com/?fal.media", False),
        ("https://127.0.0.1:9999/files/a.png", True),
        ("https://127.0.0.1:9998/files/a.png", False),
    ],
)
def test_fal_media_hosts(url, ours):
    assert on_fal_media(url, "https://127.0.0.1:9999") is ours


async def test_a_size_is_never_fetched_from_another_host():
    # No server at this address: a fetch attempt would fail differently.
    with pytest.raises(InvalidInput, match="not on fal's storage"):
        await fal_image_size("https://198.51.100.7/a.png", cdn_url=None, what="image_urls[0]")
