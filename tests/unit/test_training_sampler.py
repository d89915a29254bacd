import random

import pytest

from training.sampler import LengthBucketBatchSampler


def lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(3, 90) for _ in range(n)]


def test_every_sample_comes_once_per_epoch_in_batches_of_similar_length() -> None:
    sizes = lengths(1000)
    sampler = LengthBucketBatchSampler(sizes, 32, seed=0, pool_batches=10)
    batches = list(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(1000))
    assert len(batches) == len(sampler)
    assert all(2 <= len(batch) <= 32 + 1 for batch in batches)
    padded = sum(max(sizes[i] for i in batch) * len(batch) for batch in batches)
    assert padded < 1.15 * sum(sizes)  # a random batching pads to ~1.9× here


def test_epochs_differ_and_a_resumed_sampler_repeats_the_same_epoch() -> None:
    sizes = lengths(300)
    sampler = LengthBucketBatchSampler(sizes, 16, seed=3)
    first, second = list(sampler), list(sampler)
    assert first != second
    resumed = LengthBucketBatchSampler(sizes, 16, seed=3)
    resumed.set_epoch(1)
    assert list(resumed) == second
    assert list(LengthBucketBatchSampler(sizes, 16, seed=4)) != first


@pytest.mark.parametrize("n", [1 + 8, 2 * 8 + 1, 40 * 8 + 1, 7])
def test_no_batch_of_one_sample(n: int) -> None:
    sampler = LengthBucketBatchSampler(lengths(n), 8, seed=0, pool_batches=2)
    batches = list(sampler)
    assert all(len(batch) > 1 for batch in batches)
    assert len(batches) == len(sampler)
    assert sorted(i for batch in batches for i in batch) == list(range(n))


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        LengthBucketBatchSampler([3, 4], 1)
    with pytest.raises(ValueError, match="no samples"):
        LengthBucketBatchSampler([], 8)


def test_a_sampler_resumed_mid_epoch_serves_the_rest_of_that_epoch_once() -> None:
    sizes = lengths(300)
    sampler = LengthBucketBatchSampler(sizes, 16, seed=3)
    epochs = [list(sampler) for _ in range(3)]
    resumed = LengthBucketBatchSampler(sizes, 16, seed=3)
    resumed.set_epoch(1, skip=5)
    assert list(resumed) == epochs[1][5:]
    assert list(resumed) == epochs[2]  # the skip was for the resumed epoch only
