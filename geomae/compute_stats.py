"""Compute per-band statistics by streaming random tiles from Sentinel-2 scenes.

The tiles' valid pixels are reduced by :class:`geomae.stats_accumulator.StatsAccumulator`
(exact float64 mean / population std, exact uint16 percentiles; see that module). Pixels
equal to ``nodata``, non-finite pixels and pixels the dataset marks invalid are excluded;
a pixel invalid in one band is excluded from every band.

Scenes opened from paths are read with nearest-neighbour resampling, so 20 m and 60 m
bands keep their integer DNs (each native pixel counted 4 or 36 times at 10 m).
Statistics describe ``DN - offset``; ``attrs`` records the offset and the method.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from torchgeo.datasets import RasterDataset
from torchgeo.samplers import RandomGeoSampler

from geomae.bands import parse_bands
from geomae.datamodules.loaders import collate_tensors
from geomae.datasets.scene_folders import open_dataset
from geomae.errors import BandError, ConfigError
from geomae.stats import BandStats
from geomae.stats_accumulator import StatsAccumulator

__all__ = ["compute_stats"]

log = logging.getLogger(__name__)


def compute_stats(
    dataset_or_paths: RasterDataset | str | Path | Sequence[str | Path],
    *,
    bands: str | Sequence[str] = "all",
    num_samples: int = 256,
    tile_size: int = 64,
    seed: int = 0,
    nodata: float | None = None,
    offset: float = 0.0,
    batch_size: int = 16,
    num_workers: int = 0,
    reservoir_size: int = 200_000,
    band_pattern: str | None = None,
) -> BandStats:
    """Per-band mean, std, p2 and p98 over ``num_samples`` random tiles.

    Args:
        dataset_or_paths: a torchgeo raster dataset whose ``bands`` attribute names its
            channels, or folders / files to open with
            :func:`~geomae.datasets.scene_folders.open_dataset`.
        bands: bands to compute.
        num_samples: number of random tiles.
        tile_size: tile size in pixels.
        seed: seed of the tile positions and of the percentile reservoir.
        nodata: raw value marking missing pixels (excluded).
        offset: subtracted from raw DN before computing (recorded in ``attrs``).
        batch_size: tiles read per batch.
        num_workers: DataLoader workers reading tiles.
        reservoir_size: values kept per band for percentiles of non-integer data.
        band_pattern: per-band file name template, when opening paths (see
            :func:`~geomae.datasets.scene_folders.open_dataset`).

    Returns:
        The statistics, with provenance in ``attrs``.

    Raises:
        BandError: if the dataset lacks a requested band.
        ConfigError: if ``tile_size`` exceeds every file, or ``num_samples < 1``.
        DataError: if a band has no valid pixel.
    """
    wanted = parse_bands(bands)
    if isinstance(dataset_or_paths, RasterDataset):
        dataset = dataset_or_paths
        source = str(getattr(dataset, "paths", type(dataset).__name__))
    else:
        dataset = open_dataset(
            dataset_or_paths, bands=wanted, nodata=nodata, band_pattern=band_pattern
        )
        source = str(dataset.paths)
    have = parse_bands(list(dataset.bands), keep_order=True)
    missing = [b for b in wanted if b not in have]
    if missing:
        raise BandError(f"dataset {source} has no band(s) {missing}; it provides {have}")
    if num_samples < 1:
        raise ConfigError(f"num_samples must be >= 1 (got {num_samples})")
    index = torch.tensor([have.index(b) for b in wanted])

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # RandomGeoSampler draws files from the global RNG
        generator = torch.Generator().manual_seed(seed)
        sampler = RandomGeoSampler(dataset, tile_size, num_samples, generator=generator)
        if not sampler.bounds:
            raise ConfigError(f"tile_size={tile_size} px is larger than every file in {source}")
        positions = list(sampler)
    loader = DataLoader(
        dataset,  # type: ignore[arg-type]
        batch_size=batch_size,
        sampler=positions,  # type: ignore[arg-type]
        num_workers=num_workers,
        collate_fn=collate_tensors,
    )
    accumulator = StatsAccumulator(wanted, reservoir_size=reservoir_size, seed=seed + 1)
    for batch in loader:
        image = batch["image"].index_select(1, index).to(torch.float64)  # (B, C, H, W)
        valid = torch.isfinite(image).all(dim=1)  # (B, H, W)
        if nodata is not None:
            valid &= (image != nodata).all(dim=1)
        if "valid" in batch:
            valid &= batch["valid"][:, 0].to(torch.bool)
        accumulator.update(image, valid)
    stats = accumulator.result(
        where=f"{num_samples} tiles of {source} (nodata={nodata})",
        offset=offset,
        attrs={
            "source": source,
            "num_samples": num_samples,
            "tile_size": tile_size,
            "seed": seed,
            "nodata": nodata,
        },
    )
    log.info("band statistics from %d tiles of %s", num_samples, source)
    return stats
