"""Fetching the file of a job into scratch space, removed when the stage is done.

The object's size is checked before a byte is fetched: a file over the limit, or not the size the gateway
checked and charged for, ends the job instead of filling the disk or stalling the stage.
"""

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

from shared.storage import ObjectStore


class StoredFileError(Exception):
    """The stored file is not one this job may read; `code` and the message end the job."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def check_stored_size(size: int, *, max_bytes: int, expected_bytes: int | None) -> None:
    if size > max_bytes:
        raise StoredFileError(
            "file_too_large", f"the stored file has {size} bytes, over the limit of {max_bytes}"
        )
    if expected_bytes is not None and size != expected_bytes:
        raise StoredFileError(
            "upload_changed",
            f"the stored file has {size} bytes, not the {expected_bytes} checked when it was accepted",
        )


@asynccontextmanager
async def downloaded(
    store: ObjectStore,
    bucket: str,
    key: str,
    work_dir: str,
    *,
    max_bytes: int,
    expected_bytes: int | None = None,
) -> AsyncIterator[Path]:
    info = await asyncio.to_thread(store.stat, bucket, key)
    check_stored_size(info.size, max_bytes=max_bytes, expected_bytes=expected_bytes)
    await asyncio.to_thread(Path(work_dir).mkdir, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        name = PurePosixPath(key).name or "upload"
        yield await asyncio.to_thread(store.download_file, bucket, key, Path(scratch) / name)
