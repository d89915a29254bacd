"""Receiving a file from a multipart/form-data request body, streamed to a temporary file.

The size limit is enforced while the body is read, so an oversized upload is refused after
`max_bytes` and never lands on disk or in memory whole.
"""

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

# Bytes of the other form fields (text fields we keep, and those we read and discard); a client has no
# reason to send more.
MAX_OTHER_FIELD_BYTES: Final = 64 * 1024
# What a multipart body may carry around its file (boundaries, part headers, those other fields): the
# route's body limit is the largest file plus this.
MULTIPART_OVERHEAD_BYTES: Final = 1024 * 1024


class MalformedUploadError(ValueError):
    """The body is not multipart/form-data with one file in the expected field."""


class UploadTooLargeError(ValueError):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(f"the file is larger than the limit of {max_bytes} bytes")
        self.max_bytes = max_bytes


@dataclass
class ReceivedFile:
    path: Path
    filename: str
    size: int
    fields: dict[str, str] = field(default_factory=dict)
    """The text fields asked for (`text_fields`) that the form carried."""


@dataclass
class _Part:
    header_name: bytes = b""
    header_value: bytes = b""
    disposition: bytes | None = None
    is_wanted_file: bool = False
    text_field: str | None = None


@dataclass
class _Collector:
    """python-multipart's callbacks: they queue the wanted file's bytes; writing them is async."""

    field_name: str
    max_bytes: int
    accept_filename: Callable[[str], str]
    text_fields: frozenset[str] = frozenset()
    texts: dict[str, bytearray] = field(default_factory=dict)
    part: _Part = field(default_factory=_Part)
    pending: list[bytes] = field(default_factory=list)
    filename: str | None = None
    file_done: bool = False
    size: int = 0
    other_bytes: int = 0

    def callbacks(self) -> "MultipartCallbacks":
        return {
            "on_part_begin": self.on_part_begin,
            "on_part_data": self.on_part_data,
            "on_part_end": self.on_part_end,
            "on_header_field": self.on_header_field,
            "on_header_value": self.on_header_value,
            "on_header_end": self.on_header_end,
            "on_headers_finished": self.on_headers_finished,
        }

    def on_part_begin(self) -> None:
        self.part = _Part()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self.part.header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self.part.header_value += data[start:end]

    def on_header_end(self) -> None:
        if self.part.header_name.lower() == b"content-disposition":
            self.part.disposition = self.part.header_value
        self.part.header_name, self.part.header_value = b"", b""

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.part.disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        if name in self.text_fields and b"filename" not in options:
            if name in self.texts:
                raise MalformedUploadError(f"send the {name!r} field once")
            self.part.text_field = name
            self.texts[name] = bytearray()
            return
        if name != self.field_name:
            return
        if b"filename" not in options:
            raise MalformedUploadError(f"the {self.field_name!r} field is not a file")
        if self.filename is not None:
            raise MalformedUploadError(f"send one file in the {self.field_name!r} field, not several")
        self.part.is_wanted_file = True
        # Checked here, so a file of the wrong type is refused before its bytes are read.
        self.filename = self.accept_filename(options[b"filename"].decode("utf-8", "replace"))

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.part.is_wanted_file:
            self.size += end - start
            if self.size > self.max_bytes:
                raise UploadTooLargeError(self.max_bytes)
            self.pending.append(data[start:end])
        else:
            self.other_bytes += end - start
            if self.other_bytes > MAX_OTHER_FIELD_BYTES:
                raise MalformedUploadError("the form's other fields are too large")
            if self.part.text_field is not None:
                self.texts[self.part.text_field] += data[start:end]

    def on_part_end(self) -> None:
        if self.part.is_wanted_file:
            self.file_done = True


async def receive_file(
    content_type: str,
    body: AsyncIterator[bytes],
    *,
    field_name: str,
    max_bytes: int,
    accept_filename: Callable[[str], str],
    text_fields: frozenset[str] = frozenset(),
) -> ReceivedFile:
    """Stream the file in `field_name` to a temporary file; the caller deletes `path` when done.

    `accept_filename` gets the client's filename and returns the one to keep, or raises to refuse the file.
    The `text_fields` the form carries (UTF-8) are kept; any other field is read and discarded.
    """
    media_type, params = parse_options_header(content_type)
    boundary = params.get(b"boundary")
    if media_type != b"multipart/form-data" or not boundary:
        raise MalformedUploadError("expected multipart/form-data with a boundary")
    collector = _Collector(
        field_name=field_name, max_bytes=max_bytes, accept_filename=accept_filename, text_fields=text_fields
    )
    parser = MultipartParser(boundary, collector.callbacks())
    descriptor, name = tempfile.mkstemp(prefix="ea-upload-")
    path = Path(name)
    try:
        with os.fdopen(descriptor, "wb") as sink:
            async for chunk in body:
                parser.write(chunk)
                if collector.pending:
                    data, collector.pending = b"".join(collector.pending), []
                    await asyncio.to_thread(sink.write, data)
            parser.finalize()
        if collector.filename is None or not collector.file_done:
            raise MalformedUploadError(f"the form has no complete {field_name!r} file")
    except FormParserError as exc:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise MalformedUploadError(f"invalid multipart body: {exc}") from exc
    except BaseException:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise
    try:
        texts = {name: bytes(value).decode("utf-8") for name, value in collector.texts.items()}
    except UnicodeDecodeError as exc:
        await asyncio.to_thread(path.unlink, missing_ok=True)
        raise MalformedUploadError("a text field is not UTF-8") from exc
    return ReceivedFile(path=path, filename=collector.filename, size=collector.size, fields=texts)
