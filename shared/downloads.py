"""Fetching the uploaded file of a job into scratch space, removed when the stage is done."""

import asyncio
import tempfile
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path, PurePosixPath

from shared.storage import ObjectStore


@asynccontextmanager
async def downloaded(store: ObjectStore, bucket: str, key: str, work_dir: str) -> AsyncIterator[Path]:
    await asyncio.to_thread(Path(work_dir).mkdir, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_dir) as scratch:
        name = PurePosixPath(key).name or "upload"
        yield await asyncio.to_thread(store.download_file, bucket, key, Path(scratch) / name)
