"""Samplers: what a DataLoader reads, in which order, on which rank.

Every sampler here is seeded per epoch (the same draws on every rank and with any
number of workers) and those drawing training tiles are ``DistributedSampler`` s, so
Lightning keeps them under DDP and calls ``set_epoch``.

* :class:`ChunkSampler` (:mod:`~geomae.samplers.chunks`): tile-store tiles, chunk-aware.
* :class:`SeasonSampler` (:mod:`~geomae.samplers.seasons`): one season per location
  per epoch (SSL4EO-S12).
* :class:`RandomWindowSampler` (:mod:`~geomae.samplers.windows`): random windows of a
  datacube.
* :class:`InsideGridGeoSampler` (:mod:`~geomae.samplers.grid`): a grid of patches that
  never crosses a split region's edge (validation and test of geo datasets).
* :class:`ShardedSampler`, their base, :func:`resolve_world`, :func:`trainer_world`
  (:mod:`~geomae.samplers.world`).
"""

from geomae.samplers.chunks import ChunkedDataset, ChunkSampler
from geomae.samplers.grid import InsideGridGeoSampler
from geomae.samplers.seasons import SeasonKey, SeasonSampler
from geomae.samplers.windows import RandomWindowSampler
from geomae.samplers.world import ShardedSampler, resolve_world, trainer_world

__all__ = [
    "ChunkSampler",
    "ChunkedDataset",
    "InsideGridGeoSampler",
    "RandomWindowSampler",
    "SeasonKey",
    "SeasonSampler",
    "ShardedSampler",
    "resolve_world",
    "trainer_world",
]
