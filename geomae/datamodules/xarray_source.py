"""DataModule over an xarray datacube: random tiles for training, a grid for validation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import xarray as xr
from torch.utils.data import default_collate
from torchgeo.datamodules import NonGeoDataModule

from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import LoaderSpec
from geomae.datamodules.tilestore import widen_uint16
from geomae.datasets.xarray_source import XarrayTileDataset, open_cube
from geomae.errors import ConfigError
from geomae.samplers import RandomWindowSampler, trainer_world
from geomae.stats import BandStats
from geomae.stats_accumulator import StatsAccumulator
from geomae.transforms import AugmentKind

__all__ = ["XarrayDataModule", "sample_stats"]

log = logging.getLogger(__name__)


def sample_stats(dataset: XarrayTileDataset, *, num_samples: int, seed: int) -> BandStats:
    """Band statistics of ``num_samples`` random tiles of a datacube.

    Uses the streaming accumulators of :mod:`geomae.compute_stats` over the valid pixels
    (finite, not nodata) of tiles drawn with a generator seeded with ``seed``.

    Raises:
        DataError: if a band has no valid pixel in the sample.
    """
    rng = np.random.default_rng(seed)
    accumulator = StatsAccumulator(dataset.bands, seed=seed)
    for start in range(0, num_samples, 16):  # accumulate 16 tiles per update
        images, masks = [], []
        for _ in range(min(16, num_samples - start)):
            sample = dataset[dataset.random_window(rng)]
            images.append(sample["image"].numpy())  # (C, T, T)
            if "valid" in sample:
                masks.append(sample["valid"][0].numpy())  # (T, T)
            else:
                masks.append(np.ones(images[-1].shape[1:], dtype=bool))
        accumulator.update(np.stack(images), np.stack(masks))  # (K, C, T, T), (K, T, T)
    return accumulator.result(
        where=f"datacube {dataset.cube.source}, {num_samples} random tiles (pass stats= "
        "explicitly)",
        attrs={
            "source": dataset.cube.source,
            "num_samples": num_samples,
            "tile_size": dataset.patch_size,
            "seed": seed,
            "nodata": dataset.cube.nodata,
        },
    )


class XarrayDataModule(GeomaeDataModule, NonGeoDataModule):
    """Pretraining batches read lazily from an xarray datacube.

    Training draws ``length`` random ``patch_size`` windows per epoch, fresh each
    epoch (:class:`~geomae.samplers.RandomWindowSampler`, sharded across
    DDP ranks); validation reads a grid over a strip of the last ``val_fraction`` of
    the rows, which training never touches. Only the selected bands are read.

    Args:
        data: a zarr path, or an in-memory / lazily opened DataArray or Dataset (see
            :func:`~geomae.datasets.xarray_source.open_cube`).
        bands: bands to read and feed the model; None: all of the cube's bands.
        patch_size: tile size in pixels.
        batch_size: samples per batch.
        length: training samples per epoch.
        val_fraction: share of the rows held out for validation (0: no validation).
        val_stride: val grid step in pixels (default ``patch_size``).
        num_workers: DataLoader worker processes.
        stats: band statistics (YAML path or dict); None computes them from
            ``stats_samples`` random training tiles (logged).
        stats_samples: tiles drawn when computing statistics.
        offset: value subtracted from raw DN before normalization.
        nodata: raw value marking missing pixels; ``"auto"``: the cube's attribute.
        augment: training augmentation, see :class:`geomae.transforms.SpatialAugment`.
        crop_scale: crop area range for ``augment="full"``.
        seed: seed of the windows and the statistics sample.
        pin_memory: pin batches in page-locked memory (only when CUDA is available).
        persistent_workers: keep workers between epochs (default: ``num_workers > 0``).

    Raises:
        DataError: if the cube cannot be opened or is too small.
        BandError: on an unknown band name in the cube or in ``bands``.
        ConfigError: if the val strip leaves no room for a training tile.
    """

    def __init__(
        self,
        *,
        data: str | xr.DataArray | xr.Dataset,
        bands: str | list[str] | None = None,
        patch_size: int = 64,
        batch_size: int = 32,
        length: int = 1000,
        val_fraction: float = 0.1,
        val_stride: int | None = None,
        num_workers: int = 0,
        stats: str | dict[str, Any] | None = None,
        stats_samples: int = 64,
        offset: float = 0.0,
        nodata: float | Literal["auto"] | None = "auto",
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool | None = None,
    ) -> None:
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
        super().__init__(XarrayTileDataset, batch_size=batch_size, num_workers=num_workers)
        self.save_hyperparameters(ignore=None if isinstance(data, (str, Path)) else ["data"])
        self.data = data
        self.cube = open_cube(data, bands=bands, nodata=nodata)
        self.patch_size = int(patch_size)
        self.length = int(length)
        self.val_stride = int(val_stride or patch_size)
        self.seed = int(seed)
        self.train_rows, self.val_rows = self._split(float(val_fraction))
        if stats is None:
            log.info(
                "computing band statistics of %s from %d random %d-px tiles (pass stats= "
                "to reuse saved ones)",
                self.cube.source,
                stats_samples,
                self.patch_size,
            )
            stats = sample_stats(
                self._dataset("random", self.train_rows, stats_samples),
                num_samples=stats_samples,
                seed=self.seed + 1,
            ).to_dict()
        self._init_band_pipeline(
            source_bands=self.cube.bands,
            bands=self.cube.bands,
            stats=stats,
            offset=offset,
            nodata=self.cube.nodata,
            augment=augment,
            crop_scale=crop_scale,
        )
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = (
            num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        )

    def _split(self, val_fraction: float) -> tuple[tuple[int, int], tuple[int, int] | None]:
        height = self.cube.height
        if val_fraction == 0:
            return (0, height), None
        val_rows = max(self.patch_size, round(val_fraction * height))
        if height - val_rows < self.patch_size:
            raise ConfigError(
                f"datacube {self.cube.source} has {height} rows: too few for a val strip of "
                f"{val_rows} rows (val_fraction={val_fraction}) and a training area of "
                f"patch_size={self.patch_size}; lower patch_size or val_fraction"
            )
        return (0, height - val_rows), (height - val_rows, height)

    def _dataset(
        self, sampling: Literal["random", "grid"], rows: tuple[int, int], length: int = 0
    ) -> XarrayTileDataset:
        return XarrayTileDataset(
            self.data if isinstance(self.data, (str, Path)) else self.cube,
            bands=self.cube.bands,
            patch_size=self.patch_size,
            sampling=sampling,
            length=length,
            stride=self.val_stride,
            rows=rows,
            seed=self.seed,
            nodata=self.cube.nodata,
        )

    def setup(self, stage: str) -> None:
        """Build the datasets of ``stage`` (``fit`` or ``validate``).

        Raises:
            ConfigError: for ``test`` / ``predict``: a datacube has no such split.
        """
        if stage == "fit":
            self.train_dataset = self._dataset("random", self.train_rows, self.length)
        if stage in ("fit", "validate"):
            self.val_dataset = (
                None if self.val_rows is None else self._dataset("grid", self.val_rows)
            )
        if stage in ("test", "predict"):
            raise ConfigError(f"{type(self).__name__} has no {stage} split; use fit or validate")

    def _loader_spec(self, split: str) -> LoaderSpec | None:
        """Random windows for ``train``, fresh each epoch, sharded across ranks.

        ``val``: the val grid in order (None when ``val_fraction`` is 0).
        """
        if split == "val" and self.val_dataset is None:
            return None
        dataset = cast(XarrayTileDataset, self._valid_attribute(f"{split}_dataset"))
        if split != "train":
            return LoaderSpec(dataset, collate_fn=default_collate)
        sampler = RandomWindowSampler(dataset, seed=self.seed, **trainer_world(self.trainer))
        return LoaderSpec(dataset, sampler=sampler, drop_last=True, collate_fn=default_collate)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Widen uint16 images to float32 on the device, then run the band pipeline."""
        return super().on_after_batch_transfer(widen_uint16(batch), dataloader_idx)
