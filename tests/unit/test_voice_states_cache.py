"""The audio encoder's cache of voice states computed ahead of their transcripts."""

import uuid

from services.audio_encoder.states_cache import StatesCache
from shared.model.voice import states_nbytes
from shared.speech_pass import FileStates


def states(seconds: int) -> FileStates:
    speech = FileStates(seconds * 16_000, 512)  # 100 KB a second
    speech.values[:] = 1.0
    speech.present[:] = True
    return speech


def test_states_are_taken_once() -> None:
    cache = StatesCache(budget_bytes=10 * 1024 * 1024)
    job = (uuid.uuid4(), 1)
    assert cache.wanted(job) and cache.put(job, states(10))
    assert not cache.wanted(job)  # already there: a redelivered request computes nothing
    taken = cache.take(job)
    assert taken is not None and taken.values.shape == (500, 512)
    assert cache.take(job) is None and cache.size_bytes == 0
    # Its transcript was handled: states that come late (a lagging request) are not kept.
    assert not cache.wanted(job) and not cache.put(job, states(1))


def test_another_attempt_is_another_job() -> None:
    cache = StatesCache(budget_bytes=10 * 1024 * 1024)
    job = uuid.uuid4()
    cache.put((job, 1), states(1))
    assert cache.take((job, 2)) is None and cache.take((job, 1)) is not None


def test_the_oldest_go_first_and_nothing_over_the_budget_is_kept() -> None:
    cache = StatesCache(budget_bytes=int(2.5 * states(10).nbytes))
    jobs = [(uuid.uuid4(), 1) for _ in range(3)]
    for job in jobs:
        assert cache.put(job, states(10))
    assert cache.size_bytes <= cache.budget_bytes
    assert cache.take(jobs[0]) is None  # evicted for the third
    assert cache.take(jobs[1]) is not None and cache.take(jobs[2]) is not None
    assert not cache.put((uuid.uuid4(), 1), states(30))  # alone more than the budget
    assert not StatesCache(budget_bytes=0).put((uuid.uuid4(), 1), states(1))


def test_done_jobs_are_remembered_within_a_bound() -> None:
    cache = StatesCache(budget_bytes=1024)
    for _ in range(5000):
        cache.take((uuid.uuid4(), 1))
    assert len(cache._done) <= 1024


def test_states_too_large_to_keep_are_known_before_they_are_computed() -> None:
    cache = StatesCache(budget_bytes=256 * 1024 * 1024)
    # 50 states a second of 512 float32: 102,400 bytes a second.
    assert states_nbytes(16_000) == states(1).nbytes == 50 * (512 * 4 + 1)
    assert states_nbytes(1) == states_nbytes(0) == 512 * 4 + 1
    assert cache.fits(states_nbytes(40 * 60 * 16_000))  # a 40-minute file's states are kept
    assert not cache.fits(states_nbytes(3 * 3600 * 16_000))  # a 3-hour file's (1.1 GB) are not
