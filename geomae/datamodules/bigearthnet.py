"""BigEarthNet-S2 v1.0 multi-label classification (19 or 43 classes, 120 x 120 px)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torchgeo.datamodules import NonGeoDataModule

from geomae.bands import parse_bands
from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import require_local
from geomae.datasets.bigearthnet import (
    BIGEARTHNET_CLASSES_19,
    BIGEARTHNET_CLASSES_43,
    BigEarthNetS2,
)
from geomae.errors import ConfigError
from geomae.levels import parse_level
from geomae.stats import BandStats
from geomae.transforms import AugmentKind

__all__ = ["BigEarthNetDataModule"]


class BigEarthNetDataModule(GeomaeDataModule, NonGeoDataModule):
    """BigEarthNet-S2 v1.0 with split CSV files.

    The dataset reads only ``bands`` (canonical order; 20 m and 60 m bands upsampled
    to 120 px), so ``source_bands == bands``. Batches after
    ``on_after_batch_transfer``: ``image`` ``(B, C, 120, 120)`` float32 normalized,
    ``valid`` ``(B, 1, 120, 120)`` bool, ``label`` ``(B, K)`` float32 multi-hot.

    Args:
        root: dataset root (see :class:`~geomae.datasets.bigearthnet.BigEarthNetS2`).
        bands: bands the model sees (band-set name, comma string or list).
        num_classes: 19 (recommended nomenclature) or 43 (original CORINE classes).
        batch_size: samples per batch.
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        download: must stay False; geomae never downloads.
        stats: normalization statistics (BandStats, dict or YAML path); None takes the
            backbone's through :meth:`set_stats`, else approximate defaults.
        offset: value subtracted from raw DN before normalization (BigEarthNet v1.0
            predates the L2A offset of processing baseline 04.00: keep 0).
        augment: augmentation of training batches.
        crop_scale: crop area range for ``augment="full"``.
        processing_level: the data's processing level (BigEarthNet-S2 v1.0 is
            Level-2A, Sen2Cor surface reflectance); weights pretrained on another level
            are refused unless ``allow_level_mismatch``.
        allow_level_mismatch: run weights of the other processing level anyway (a
            warning instead of an error).

    Raises:
        ConfigError: if ``download`` is True or ``num_classes`` is not 19 or 43.
        DataError: if ``root`` does not exist.
        BandError: on an unknown band or one BigEarthNet lacks.
    """

    task: Literal["multiclass", "multilabel", "segmentation"] = "multilabel"

    def __init__(
        self,
        *,
        root: str | Path,
        bands: str | list[str] = "all",
        num_classes: Literal[19, 43] = 19,
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = False,
        stats: str | Path | dict[str, Any] | BandStats | None = None,
        offset: float = 0.0,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        processing_level: Literal["L1C", "L2A"] | None = "L2A",
        allow_level_mismatch: bool = False,
    ) -> None:
        root = require_local(root, download=download, what="BigEarthNet-S2 v1.0")
        if num_classes not in (19, 43):
            raise ConfigError(f"BigEarthNet num_classes must be 19 or 43, got {num_classes!r}")
        selected = parse_bands(bands)
        super().__init__(
            BigEarthNetS2,
            batch_size=batch_size,
            num_workers=num_workers,
            root=root,
            bands=selected,
            num_classes=num_classes,
        )
        self.pin_memory = pin_memory
        self.processing_level = parse_level(processing_level, what="processing_level")
        self.allow_level_mismatch = bool(allow_level_mismatch)
        self.num_classes = num_classes
        self.class_names = list(
            BIGEARTHNET_CLASSES_19 if num_classes == 19 else BIGEARTHNET_CLASSES_43
        )
        self._init_band_pipeline(
            source_bands=selected,
            bands=selected,
            stats=stats,
            offset=offset,
            nodata=None,
            augment=augment,
            crop_scale=crop_scale,
        )
