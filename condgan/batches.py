"""The order of training batches: a function of (seed, epoch) only, so a resumed run sees the same batches."""
from __future__ import annotations

import math

import torch
from torch.utils.data import Sampler


class EpochBatches(Sampler):
    """Shuffled batches of indices; the order depends only on (seed, epoch) and can start mid-epoch."""

    def __init__(self, n: int, batch_size: int, seed: int, drop_last: bool = True, rank: int = 0, world: int = 1):
        """With `world` ranks, each global batch of batch_size x world indices is split into consecutive
        per-rank shares: the ranks together see exactly the batches of one process at the global size."""
        self.n, self.batch_size, self.seed, self.drop_last = n, batch_size, seed, drop_last or world > 1
        self.rank, self.world = rank, world
        self.epoch, self.start = 0, 0

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self.epoch, self.start = epoch, start

    def batches_per_epoch(self) -> int:
        size = self.batch_size * self.world
        return self.n // size if self.drop_last else math.ceil(self.n / size)

    def __len__(self) -> int:
        return self.batches_per_epoch() - self.start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        order = torch.randperm(self.n, generator=g)
        size = self.batch_size * self.world
        for b in range(self.start, self.batches_per_epoch()):
            first = b * size + self.rank * self.batch_size
            yield order[first:first + self.batch_size].tolist()
