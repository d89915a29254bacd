"""The gateway reads an upload's header in a bounded child process: what it answers for good, hostile and
damaged files, and what it does when the child runs out of memory or time."""

import asyncio
from pathlib import Path

import pytest

from emotion_contract.errors import FailureCode
from services.gateway.media_probe import ProbeLimits, declared_duration
from shared.media.container import MediaError
from shared.media.decode import probe
from tests.media_factory import MediaSet, make_media_set

HOSTILE = Path(__file__).resolve().parents[1] / "data" / "picture-16000x16000.mp4"


@pytest.fixture(scope="module")
def media(tmp_path_factory: pytest.TempPathFactory) -> MediaSet:
    return make_media_set(tmp_path_factory.mktemp("media"))


def _refusal(source: str, limits: ProbeLimits) -> MediaError:
    with pytest.raises(MediaError) as raised:
        asyncio.run(declared_duration(source, limits))
    return raised.value


def test_an_ordinary_file_gives_its_declared_seconds(media: MediaSet) -> None:
    seconds = asyncio.run(declared_duration(str(media.speech_mp4), ProbeLimits()))
    assert seconds == pytest.approx(probe(media.speech_mp4).duration_s, abs=0.15)


def test_a_huge_picture_or_a_damaged_file_is_refused_with_the_reason() -> None:
    refused = _refusal(str(HOSTILE), ProbeLimits())
    assert refused.code == FailureCode.MEDIA_OVER_LIMITS and "16000x16000" in refused.message


def test_a_damaged_file_is_corrupt_not_over_limits(media: MediaSet) -> None:
    assert _refusal(str(media.truncated), ProbeLimits()).code == FailureCode.CORRUPT_MEDIA


def test_a_child_out_of_memory_or_time_is_over_limits(media: MediaSet) -> None:
    # Too little address space to even load FFmpeg, and too little time to start Python.
    assert (
        _refusal(str(media.speech_mp4), ProbeLimits(memory_bytes=32 << 20)).code
        == FailureCode.MEDIA_OVER_LIMITS
    )
    assert _refusal(str(media.speech_mp4), ProbeLimits(timeout_s=0.001)).code == FailureCode.MEDIA_OVER_LIMITS
