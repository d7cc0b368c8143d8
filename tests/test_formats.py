"""The one table of image formats, and data: URIs."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from backend.formats import (
    FORMATS,
    JPEG,
    DataURIError,
    DataURITooLarge,
    NotBase64DataURI,
    data_uri,
    decode_data_uri,
    format_for_mime,
    format_for_pillow,
    format_named,
)
from backend.schema import MIME_TYPES, OUTPUT_FORMATS


def test_every_output_format_the_api_offers_is_in_the_table():
    for name in OUTPUT_FORMATS:
        fmt = format_named(name)
        assert format_for_mime(fmt.mime) is fmt
        assert format_for_pillow(fmt.pillow) is fmt
    expected = {"png": "image/png", "jpeg": "image/jpeg", "webp": "image/webp"}
    assert expected == MIME_TYPES, "schema's view of the table, for its importers"


def test_jpeg_files_are_named_jpg():
    assert format_named("jpeg") is JPEG
    assert (JPEG.mime, JPEG.extension, JPEG.pillow) == ("image/jpeg", "jpg", "JPEG")


@pytest.mark.parametrize("fmt", FORMATS, ids=[fmt.name for fmt in FORMATS])
def test_the_table_agrees_with_pillow(fmt):
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, fmt.pillow)
    with Image.open(buffer) as image:
        assert image.format == fmt.pillow
    assert Image.MIME[fmt.pillow] == fmt.mime
    assert f".{fmt.extension}" in Image.registered_extensions()
    assert Image.registered_extensions()[f".{fmt.extension}"] == fmt.pillow


def test_unknown_formats_are_none_or_a_key_error():
    assert format_for_mime("image/bmp") is None
    assert format_for_pillow("MPO") is None
    with pytest.raises(KeyError):
        format_named("jpg")


def test_a_data_uri_round_trips():
    data = bytes(range(256))
    uri = data_uri(data, "image/png")
    assert uri == "data:image/png;base64," + base64.b64encode(data).decode("ascii")
    assert decode_data_uri(uri) == data


@pytest.mark.parametrize(
    ("uri", "error"),
    [
        ("https://v3.fal.media/files/a.png", NotBase64DataURI),
        ("data:image/png,rawbytes", NotBase64DataURI),
        ("data:image/png;base64,not base64!", DataURIError),
        ("data:image/png;base64,AAA", DataURIError),
    ],
)
def test_what_is_no_base64_data_uri_is_refused(uri, error):
    with pytest.raises(error):
        decode_data_uri(uri)


def test_a_payload_over_the_limit_is_refused_before_decoding():
    uri = data_uri(bytes(3000), "image/png")
    assert decode_data_uri(uri, max_bytes=3000) == bytes(3000)
    with pytest.raises(DataURITooLarge):
        decode_data_uri(uri, max_bytes=2000)
