"""Fresh random windows of a datacube every epoch, sharded by rank."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from geomae.datasets.xarray_source import Window, XarrayTileDataset
from geomae.samplers.world import ShardedSampler

__all__ = ["RandomWindowSampler"]


class RandomWindowSampler(ShardedSampler[Window]):
    """Fresh random windows of an :class:`XarrayTileDataset` every epoch, per rank.

    Epoch ``e`` draws ``len(dataset)`` windows from a generator seeded with
    ``(seed, e)``; rank ``r`` of ``R`` takes the contiguous block of draws
    ``[r * m, (r + 1) * m)`` with ``m = ceil(len / R)`` (wrapping around to pad), so
    the ranks' draws are disjoint and together cover all of them. It is a
    ``DistributedSampler``, so Lightning keeps it under DDP and calls
    :meth:`set_epoch`.

    Args:
        dataset: the dataset whose windows to draw.
        seed: base seed.
        num_replicas: world size (default: from torch.distributed, else 1).
        rank: this process's rank (default: from torch.distributed, else 0).
    """

    def __init__(
        self,
        dataset: XarrayTileDataset,
        *,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        super().__init__(dataset, shuffle=True, seed=seed, num_replicas=num_replicas, rank=rank)
        self.tiles = dataset

    def __iter__(self) -> Iterator[Window]:
        """Yield this rank's windows for the current epoch."""
        rng = np.random.default_rng((self.seed, self.epoch))
        draws = [self.tiles.random_window(rng) for _ in range(len(self.tiles))]
        start = self.rank * self.num_samples
        for k in range(start, start + self.num_samples):
            yield draws[k % len(draws)]
