"""Reading a file for upload in chunks, reporting progress as the bytes go out."""

import asyncio
import mimetypes
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

CHUNK_BYTES: Final = 1024 * 1024

ProgressCallback = Callable[[int, int], None]
"""Called with (bytes sent, total bytes) as an upload proceeds."""


def content_type_of(path: Path) -> str | None:
    """A video/* or audio/* type from the file's name; None leaves the decision to the server."""
    guessed, _ = mimetypes.guess_type(path.name)
    return guessed if guessed is not None and guessed.startswith(("video/", "audio/")) else None


def file_chunks(path: Path, progress: ProgressCallback | None) -> Iterator[bytes]:
    total = path.stat().st_size
    sent = 0
    if progress:
        progress(0, total)
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            yield chunk
            sent += len(chunk)
            if progress:
                progress(sent, total)


async def async_file_chunks(path: Path, progress: ProgressCallback | None) -> AsyncIterator[bytes]:
    total = (await asyncio.to_thread(path.stat)).st_size
    sent = 0
    if progress:
        progress(0, total)
    file = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(file.read, CHUNK_BYTES):
            yield chunk
            sent += len(chunk)
            if progress:
                progress(sent, total)
    finally:
        await asyncio.to_thread(file.close)


@dataclass(frozen=True)
class UploadForm:
    """A POST Object body: the signed fields, then the file as the last part, streamed with an exact
    length (S3 wants one) and progress reported as the file's bytes go out."""

    fields: dict[str, str]
    path: Path
    content_type: str | None
    boundary: str = field(default_factory=lambda: secrets.token_hex(16))

    def _head(self) -> bytes:
        parts = [
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in self.fields.items()
        ]
        filename = self.path.name.replace('"', "_")
        parts.append(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: {self.content_type or 'application/octet-stream'}\r\n\r\n"
        )
        return "".join(parts).encode()

    def _tail(self) -> bytes:
        return f"\r\n--{self.boundary}--\r\n".encode()

    def headers(self) -> dict[str, str]:
        length = len(self._head()) + self.path.stat().st_size + len(self._tail())
        return {
            "Content-Type": f"multipart/form-data; boundary={self.boundary}",
            "Content-Length": str(length),
        }

    def chunks(self, progress: ProgressCallback | None) -> Iterator[bytes]:
        yield self._head()
        yield from file_chunks(self.path, progress)
        yield self._tail()

    async def async_chunks(self, progress: ProgressCallback | None) -> AsyncIterator[bytes]:
        yield self._head()
        async for chunk in async_file_chunks(self.path, progress):
            yield chunk
        yield self._tail()
