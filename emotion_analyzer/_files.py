"""Reading a file for upload in chunks, reporting progress as the bytes go out."""

import asyncio
import mimetypes
from collections.abc import AsyncIterator, Callable, Iterator
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
