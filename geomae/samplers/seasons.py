"""A seeded sampler of (location, season, crop window) keys: season as augmentation.

Multi-season corpora (SSL4EO-S12: four timestamps per location) are pretrained on one
season per location per epoch, drawn at random. The draw happens in the sampler, not
in the dataset, so it is reproducible whatever the number of DataLoader workers: epoch
``e`` draws every season and crop position from a generator seeded with ``(seed, e)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sized
from typing import Literal

import numpy as np

from geomae.samplers.world import ShardedSampler

__all__ = ["SeasonKey", "SeasonSampler"]

#: ``(location, season, y0, x0)``.
SeasonKey = tuple[int, int, int, int]


class SeasonSampler(ShardedSampler[SeasonKey]):
    """Yield ``(location, season, y0, x0)`` keys, one per location per epoch.

    Epoch ``e`` shuffles the locations (when ``shuffle``), draws each location's season
    (``season="random"``: uniform in ``[0, num_seasons)``) and its window's top-left
    pixel (``crop="random"``: uniform in ``[0, size - patch_size]``; ``center``: the
    centred window), all from ``numpy.random.default_rng((seed, e))``. Rank ``r`` of
    ``R`` takes every ``R``-th key from position ``r`` (padded by wrapping, or cut with
    ``drop_last``), as ``DistributedSampler`` does; it is one, so Lightning keeps it
    under DDP and calls :meth:`set_epoch`.

    Args:
        dataset: the dataset (its length is the number of locations).
        size: side of the patches in pixels.
        patch_size: side of the windows in pixels.
        season: ``random`` or a fixed season position.
        num_seasons: seasons per location for random draws.
        crop: ``random`` or ``center`` window.
        shuffle: shuffle the locations.
        seed: base seed (the same on every rank).
        num_replicas: world size (default: from torch.distributed, else 1).
        rank: this process's rank (default: from torch.distributed, else 0).
        drop_last: drop the tail instead of padding.

    Raises:
        ValueError: on a fixed ``season`` outside ``[0, num_seasons)`` or a
            ``patch_size`` larger than ``size``.
    """

    def __init__(
        self,
        dataset: Sized,
        *,
        size: int,
        patch_size: int,
        season: int | Literal["random"] = "random",
        num_seasons: int = 4,
        crop: Literal["random", "center"] = "random",
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int | None = None,
        rank: int | None = None,
        drop_last: bool = False,
    ) -> None:
        if season != "random" and not 0 <= int(season) < num_seasons:
            raise ValueError(f"season must be 'random' or 0..{num_seasons - 1}, got {season!r}")
        if not 0 < patch_size <= size:
            raise ValueError(f"patch_size {patch_size} must be in 1..{size}")
        if crop not in ("random", "center"):
            raise ValueError(f"crop must be 'random' or 'center', got {crop!r}")
        super().__init__(
            dataset,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
            num_replicas=num_replicas,
            rank=rank,
        )
        self.size, self.patch_size = int(size), int(patch_size)
        self.season, self.num_seasons, self.crop = season, int(num_seasons), crop
        n = len(dataset)
        self.num_samples = n // self.num_replicas if drop_last else math.ceil(n / self.num_replicas)
        self.total_size = self.num_samples * self.num_replicas

    def keys(self) -> list[SeasonKey]:
        """Every key of this epoch, before sharding."""
        n = len(self.dataset)  # type: ignore[arg-type]
        rng = np.random.default_rng((self.seed, self.epoch))
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.season == "random":
            seasons = rng.integers(0, self.num_seasons, n)
        else:
            seasons = np.full(n, int(self.season))
        span = self.size - self.patch_size
        if self.crop == "random":
            corners = rng.integers(0, span + 1, (n, 2))
        else:
            corners = np.full((n, 2), span // 2)
        return [(int(i), int(seasons[i]), int(corners[i, 0]), int(corners[i, 1])) for i in order]

    def __iter__(self) -> Iterator[SeasonKey]:
        """This rank's keys for the current epoch."""
        keys = self.keys()
        if not keys:
            return iter(())
        positions = np.arange(self.rank, self.total_size, self.num_replicas) % len(keys)
        return iter([keys[p] for p in positions])

    def __len__(self) -> int:
        """Keys per rank per epoch."""
        return self.num_samples
