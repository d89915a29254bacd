"""Streaming a multipart upload to a temporary file, with the size limit enforced while reading."""

from collections.abc import AsyncIterator

import pytest

from services.gateway.media_types import sanitise_filename
from services.gateway.multipart_upload import MalformedUploadError, UploadTooLargeError, receive_file

BOUNDARY = "----gateway-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def _part(name: str, data: bytes, filename: str | None = None) -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"


def _form(*parts: bytes) -> bytes:
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode()


class BodyStream:
    """The request body in small chunks, counting how much of it was read."""

    def __init__(self, body: bytes, chunk: int = 1000) -> None:
        self.body = body
        self.chunk = chunk
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for start in range(0, len(self.body), self.chunk):
            piece = self.body[start : start + self.chunk]
            self.read += len(piece)
            yield piece


async def _receive(body: BodyStream, max_bytes: int = 10_000) -> tuple[bytes, str, int]:
    received = await receive_file(
        CONTENT_TYPE, aiter(body), field_name="file", max_bytes=max_bytes, accept_filename=sanitise_filename
    )
    try:
        return received.path.read_bytes(), received.filename, received.size
    finally:
        received.path.unlink()


async def test_the_file_part_is_written_whole_beside_other_fields() -> None:
    data = bytes(range(256)) * 30  # spans many chunks, and holds CR LF and dashes
    body = BodyStream(_form(_part("note", b"hello"), _part("file", data, "My Clip.MP4"), _part("x", b"y")))

    assert await _receive(body) == (data, "My_Clip.mp4", len(data))


async def test_a_file_over_the_limit_is_refused_before_the_body_is_read() -> None:
    body = BodyStream(_form(_part("file", b"\x00" * 100_000, "big.wav")))

    with pytest.raises(UploadTooLargeError):
        await _receive(body, max_bytes=5_000)
    assert body.read < 10_000


async def test_an_unsupported_filename_is_refused_at_its_headers() -> None:
    body = BodyStream(_form(_part("file", b"\x00" * 100_000, "slides.pdf")))

    with pytest.raises(ValueError, match="supported types"):
        await _receive(body)
    assert body.read <= 1000


@pytest.mark.parametrize(
    "body",
    [
        _form(_part("note", b"no file here")),
        _form(_part("file", b"not a file field")),
        _form(_part("file", b"one", "a.wav"), _part("file", b"two", "b.wav")),
        _part("file", b"cut off before the end", "a.wav")[:-10],
    ],
)
async def test_forms_without_exactly_one_complete_file_are_malformed(body: bytes) -> None:
    with pytest.raises(MalformedUploadError):
        await _receive(BodyStream(body))


async def test_other_content_types_are_malformed() -> None:
    with pytest.raises(MalformedUploadError, match="multipart/form-data"):
        await receive_file(
            "application/json", aiter(BodyStream(b"{}")), field_name="file", max_bytes=10, accept_filename=str
        )


async def _received_fields(body: bytes) -> dict[str, str]:
    received = await receive_file(
        CONTENT_TYPE,
        aiter(BodyStream(body, chunk=7)),  # small chunks: a field's text arrives in pieces
        field_name="file",
        max_bytes=10_000,
        accept_filename=sanitise_filename,
        text_fields=frozenset({"callback_url"}),
    )
    received.path.unlink()
    return received.fields


async def test_the_text_fields_asked_for_are_kept_and_the_others_dropped() -> None:
    url = "https://example.com/hooks/done?token=é"
    body = _form(
        _part("note", b"hello"), _part("callback_url", url.encode()), _part("file", b"RIFF", "a.wav")
    )
    assert await _received_fields(body) == {"callback_url": url}
    assert await _received_fields(_form(_part("file", b"RIFF", "a.wav"))) == {}


async def test_a_text_field_twice_or_not_utf8_is_refused() -> None:
    twice = _form(
        _part("callback_url", b"https://a"), _part("callback_url", b"https://b"), _part("file", b"x", "a.wav")
    )
    with pytest.raises(MalformedUploadError, match="once"):
        await _received_fields(twice)
    latin1 = _form(_part("callback_url", "https://é".encode("latin-1")), _part("file", b"x", "a.wav"))
    with pytest.raises(MalformedUploadError, match="UTF-8"):
        await _received_fields(latin1)
