"""EuroSAT MS scene classification (10 classes, 64 x 64 px, 13 -> 12 bands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from torchgeo.datamodules import NonGeoDataModule

from geomae.bands import parse_bands
from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import require_local
from geomae.datasets.eurosat import EUROSAT_CLASSES, EuroSATMS
from geomae.levels import parse_level
from geomae.stats import BandStats
from geomae.transforms import AugmentKind

__all__ = ["EuroSATDataModule"]


class EuroSATDataModule(GeomaeDataModule, NonGeoDataModule):
    """EuroSAT MS with the official train/val/test split files.

    The dataset reads only ``bands`` (canonical order), so ``source_bands == bands``.
    Batches after ``on_after_batch_transfer``: ``image`` ``(B, C, 64, 64)`` float32
    normalized, ``valid`` ``(B, 1, 64, 64)`` bool, ``label`` ``(B,)`` int64.

    Args:
        root: dataset root (see :class:`~geomae.datasets.eurosat.EuroSATMS`).
        bands: bands the model sees (band-set name, comma string or list).
        batch_size: samples per batch.
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        download: must stay False; geomae never downloads.
        stats: normalization statistics (BandStats, dict or YAML path); None takes the
            backbone's through :meth:`set_stats`, else approximate defaults.
        offset: value subtracted from raw DN before normalization.
        augment: augmentation of training batches.
        crop_scale: crop area range for ``augment="full"``.
        processing_level: the data's processing level (EuroSAT MS is Level-1C,
            top-of-atmosphere reflectance); weights pretrained on another level are
            refused unless ``allow_level_mismatch``.
        allow_level_mismatch: run weights of the other processing level anyway (a
            warning instead of an error).

    Raises:
        ConfigError: if ``download`` is True.
        DataError: if ``root`` does not exist.
        BandError: on an unknown band or one EuroSAT lacks.
    """

    task: Literal["multiclass", "multilabel", "segmentation"] = "multiclass"

    def __init__(
        self,
        *,
        root: str | Path,
        bands: str | list[str] = "all",
        batch_size: int = 64,
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = False,
        stats: str | Path | dict[str, Any] | BandStats | None = None,
        offset: float = 0.0,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        processing_level: Literal["L1C", "L2A"] | None = "L1C",
        allow_level_mismatch: bool = False,
    ) -> None:
        root = require_local(root, download=download, what="EuroSAT MS")
        selected = parse_bands(bands)
        super().__init__(
            EuroSATMS, batch_size=batch_size, num_workers=num_workers, root=root, bands=selected
        )
        self.pin_memory = pin_memory
        self.processing_level = parse_level(processing_level, what="processing_level")
        self.allow_level_mismatch = bool(allow_level_mismatch)
        self.num_classes = len(EUROSAT_CLASSES)
        self.class_names = list(EUROSAT_CLASSES)
        self._init_band_pipeline(
            source_bands=selected,
            bands=selected,
            stats=stats,
            offset=offset,
            nodata=None,
            augment=augment,
            crop_scale=crop_scale,
        )
