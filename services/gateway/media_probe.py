"""An upload's header read in a child process with bounded memory, CPU and time, never in the API process.

Opening a file makes FFmpeg probe its streams, and probing may decode a frame: a 750 KB MP4 that declares a
16000x16000 picture took the gateway from 148 MB to 758 MB (its pod's limit is 512 MiB) before any limit
applied. The child (`python -m services.gateway.media_probe`, the source on its standard input: a presigned
URL is a credential, and a command line is visible to every process) caps its own address space and CPU
seconds before it opens the file, reads the header with the decoders bound to the picture limits
(`shared.media.container`), checks the declared tracks, picture and frame rate, and prints one JSON answer.
The parent kills it past a wall-clock timeout. Whatever the child cannot do within its limits (it runs out of
memory or time, or is killed) is refused as `media_over_limits`: nothing is charged or queued for it.
"""

import asyncio
import os
import resource
import sys
from typing import Final

from pydantic import BaseModel, Field

from emotion_contract.errors import FailureCode
from shared.media.container import MediaError

# Python with PyAV and FFmpeg's libraries maps ~120 MB of address space before reading a byte; a header of
# an ordinary file adds a few MB.
DEFAULT_MEMORY_BYTES: Final = 384 * 1024 * 1024
DEFAULT_CPU_S: Final = 10
DEFAULT_TIMEOUT_S: Final = 30.0
MAX_ANSWER_BYTES: Final = 64 * 1024


class ProbeLimits(BaseModel):
    memory_bytes: int = Field(default=DEFAULT_MEMORY_BYTES, gt=0)
    cpu_s: int = Field(default=DEFAULT_CPU_S, gt=0)
    timeout_s: float = Field(default=DEFAULT_TIMEOUT_S, gt=0)


class ProbeAnswer(BaseModel):
    """What the child prints: the declared seconds, or why the file is refused."""

    duration_s: float | None = None
    code: FailureCode | None = None
    message: str | None = None


def over_limits(what: str) -> MediaError:
    return MediaError(
        FailureCode.MEDIA_OVER_LIMITS, f"reading the file's header {what}; it is refused as over the limits"
    )


async def declared_duration(source: str, limits: ProbeLimits) -> float:
    """The seconds the media at `source` (a path or URL) declares, read by a bounded child process.
    Raises MediaError (`media_over_limits` when the child ran out of memory or time)."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        __name__,
        str(limits.memory_bytes),
        str(limits.cpu_s),
        str(limits.timeout_s),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        # Few malloc arenas: each reserves 64 MB of the address space the child is limited to.
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "MALLOC_ARENA_MAX": "2"},
    )
    try:
        async with asyncio.timeout(limits.timeout_s):
            out, _ = await child.communicate(source.encode())
    except TimeoutError:
        raise over_limits(f"took more than {limits.timeout_s:g} s") from None
    finally:  # timed out or cancelled: no child outlives its request
        if child.returncode is None:
            child.kill()
            await child.wait()
    if child.returncode != 0 or not out:
        raise over_limits(f"needed more than {limits.memory_bytes >> 20} MiB or {limits.cpu_s} s of CPU")
    answer = ProbeAnswer.model_validate_json(out[:MAX_ANSWER_BYTES])
    if answer.code is not None:
        raise MediaError(answer.code, answer.message or answer.code.value)
    if answer.duration_s is None:
        raise MediaError(FailureCode.CORRUPT_MEDIA, "the file does not say how long it is")
    return answer.duration_s


class MediaProber:
    """The replica's header readers: at most `concurrency` children at once (each may take up to its memory
    limit, and the pod's memory is shared), the rest wait their turn; the wait is not part of a child's
    timeout."""

    def __init__(self, limits: ProbeLimits, concurrency: int) -> None:
        self.limits = limits
        self._turns = asyncio.Semaphore(concurrency)

    async def declared_duration(self, source: str) -> float:
        async with self._turns:
            return await declared_duration(source, self.limits)


def _child(source: str, memory_bytes: int, cpu_s: int, timeout_s: float) -> ProbeAnswer:
    # Bounded before FFmpeg is even loaded: nothing the file makes it do can take more.
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    from shared.media.container import read_declared_duration

    try:
        return ProbeAnswer(duration_s=read_declared_duration(source, timeout_s=timeout_s))
    except MediaError as error:
        return ProbeAnswer(code=error.code, message=error.message)
    except MemoryError:
        return ProbeAnswer(
            code=FailureCode.MEDIA_OVER_LIMITS, message=over_limits("ran out of memory").message
        )


if __name__ == "__main__":
    memory, cpu, timeout = sys.argv[1:4]
    print(_child(sys.stdin.read().strip(), int(memory), int(cpu), float(timeout)).model_dump_json())
