"""A chunk-aware, DDP-sharding sampler for tile-store datasets.

Reading one tile from a random place decodes its whole zarr chunk; reading tiles in
chunk order decodes each chunk once. :class:`ChunkSampler` shuffles the order of the
chunks and mixes the tiles of a few neighbouring chunks (a *window*), so a batch
touches a handful of chunks while the epoch order stays random.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Protocol

import numpy as np

from geomae.samplers.world import ShardedSampler

__all__ = ["ChunkSampler", "ChunkedDataset"]


class ChunkedDataset(Protocol):
    """A dataset that knows which of its items share a storage chunk."""

    def __len__(self) -> int:
        """Number of items."""
        ...

    def chunk_groups(self) -> Sequence[np.ndarray]:
        """Item indices grouped by storage chunk, in storage order."""
        ...


class ChunkSampler(ShardedSampler[int]):
    """Shuffle chunks, mix tiles within windows of chunks, shard contiguously by rank.

    Epoch ``e`` orders the chunks by a permutation seeded with ``(seed, e)`` and
    shuffles the tiles inside each window of ``window`` consecutive chunks (all tiles
    of the dataset when ``window`` is None); without ``shuffle`` the order is the
    storage order. Rank ``r`` of ``R`` takes the contiguous block
    ``[r * m, (r + 1) * m)`` of that order, ``m = ceil(N / R)`` (wrapping around to
    pad, as ``DistributedSampler`` does), or ``m = floor(N / R)`` with ``drop_last``:
    the ranks' shards are disjoint up to that padding, cover every tile, and each
    rank reads mostly its own chunks. It is a ``DistributedSampler``, so Lightning
    keeps it under DDP and calls :meth:`set_epoch`.

    Args:
        dataset: the dataset (``__len__`` and ``chunk_groups()``).
        shuffle: shuffle chunks and tiles (training) or keep storage order.
        window: chunks whose tiles are mixed together; None mixes all tiles.
        seed: base seed (the same on every rank).
        num_replicas: world size (default: from torch.distributed, else 1).
        rank: this process's rank (default: from torch.distributed, else 0).
        drop_last: drop the tail instead of padding so every rank gets ``N // R``.
    """

    def __init__(
        self,
        dataset: ChunkedDataset,
        *,
        shuffle: bool = True,
        window: int | None = 4,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 chunk or None, got {window}")
        super().__init__(
            dataset,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            num_replicas=num_replicas,
            rank=rank,
        )
        self.window = window
        self.groups = [np.asarray(g, dtype=np.int64) for g in dataset.chunk_groups()]
        if drop_last:
            self.num_samples = len(dataset) // self.num_replicas
        else:
            self.num_samples = math.ceil(len(dataset) / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def order(self) -> np.ndarray:
        """All item indices in this epoch's order, before sharding, ``(N,)``."""
        if not self.groups:
            return np.zeros(0, dtype=np.int64)
        if not self.shuffle:
            return np.concatenate(self.groups)
        rng = np.random.default_rng((self.seed, self.epoch))
        groups = [self.groups[i] for i in rng.permutation(len(self.groups))]
        step = len(groups) if self.window is None else self.window
        parts = []
        for start in range(0, len(groups), step):
            block = np.concatenate(groups[start : start + step])
            parts.append(block[rng.permutation(block.size)])
        return np.concatenate(parts)

    def __iter__(self) -> Iterator[int]:
        """Yield this rank's indices for the current epoch."""
        order = self.order()
        if order.size == 0:
            return iter(())
        start = self.rank * self.num_samples
        positions = np.arange(start, start + self.num_samples) % order.size
        return iter(order[positions].tolist())

    def __len__(self) -> int:
        """Indices per rank per epoch."""
        return self.num_samples
