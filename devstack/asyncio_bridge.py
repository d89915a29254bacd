"""Run a coroutine to completion from synchronous code, even when the caller sits inside an event loop.

The stack is driven synchronously (CLI, pytest fixtures), while its probes use asyncio clients
(aiokafka, asyncpg); a fresh loop on a worker thread serves both cases.
"""

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


def run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="localstack-probe") as pool:
        return pool.submit(asyncio.run, factory()).result()
