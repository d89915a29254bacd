"""Batches of similar length: MELD utterances are short (13.8 tokens on average) but a random batch of 32
pads to its longest (35 on average), so on a CPU most of a transformer's work would go to padding."""

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Sampler


class LengthBucketBatchSampler(Sampler[list[int]]):
    """Each epoch: shuffle, cut into pools of `pool_batches` batches, sort each pool by length, cut it into
    batches and shuffle the batches. The batches stay random in content but hold similar lengths.

    A last batch of a single sample joins the batch before it (BatchNorm cannot train on one sample).
    """

    def __init__(
        self, lengths: Sequence[int], batch_size: int, *, seed: int = 0, pool_batches: int = 50
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, not {batch_size}")
        if pool_batches < 1:
            raise ValueError(f"pool_batches must be at least 1, not {pool_batches}")
        if not lengths:
            raise ValueError("no samples to batch")
        self.lengths = torch.tensor(list(lengths))
        self.batch_size = batch_size
        self.pool = batch_size * pool_batches
        self.seed = seed
        self.epoch = 0
        self._skip = 0

    def _batches(self, generator: torch.Generator) -> list[list[int]]:
        order = torch.randperm(len(self.lengths), generator=generator)
        batches: list[list[int]] = []
        for first in range(0, len(order), self.pool):
            pool = order[first : first + self.pool]
            # stable: equal lengths keep their shuffled order
            pool = pool[torch.sort(self.lengths[pool], stable=True).indices]
            cut = [pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)]
            if len(cut[-1]) == 1 and (len(cut) > 1 or batches):
                (cut[-2] if len(cut) > 1 else batches[-1]).extend(cut.pop())
            batches.extend(cut)
        shuffled = torch.randperm(len(batches), generator=generator).tolist()
        return [batches[i] for i in shuffled]

    def __iter__(self) -> Iterator[list[int]]:
        # A generator per epoch: a resumed run sees the same batches as one that never stopped.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        self.epoch += 1
        skip, self._skip = self._skip, 0
        yield from self._batches(generator)[skip:]

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        """The next iteration is epoch `epoch`'s batches, less its first `skip` (a run resumed mid-epoch)."""
        self.epoch = epoch
        self._skip = skip

    def __len__(self) -> int:
        count = 0
        for first in range(0, len(self.lengths), self.pool):
            size = min(self.pool, len(self.lengths) - first)
            single_left = size % self.batch_size == 1 and len(self.lengths) > 1
            count += -(-size // self.batch_size) - single_left
        return count
