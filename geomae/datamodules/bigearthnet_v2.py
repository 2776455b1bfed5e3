"""BigEarthNet v2 (reBEN): 19-class multi-label classification or reference-map segmentation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from torchgeo.datamodules import NonGeoDataModule

from geomae.bands import parse_bands
from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import require_local
from geomae.datasets.bigearthnet_v2 import BIGEARTHNET_V2_CLASSES, BigEarthNetV2S2
from geomae.errors import ConfigError
from geomae.levels import parse_level
from geomae.stats import BandStats
from geomae.transforms import AugmentKind

__all__ = ["BigEarthNetV2DataModule"]


class BigEarthNetV2DataModule(GeomaeDataModule, NonGeoDataModule):
    """BigEarthNet v2 from the official release folders or the LMDB form.

    The dataset reads only ``bands`` (canonical order; 20 m and 60 m bands upsampled to
    120 px), so ``source_bands == bands``. Batches after ``on_after_batch_transfer``:
    ``image`` ``(B, C, 120, 120)`` float32 normalized, ``valid`` ``(B, 1, 120, 120)``
    bool, ``label`` ``(B, 19)`` float32 multi-hot, and for ``task="segmentation"``
    ``mask`` ``(B, 120, 120)`` int64 (``ignore_index`` where the reference map has no
    19-class label), augmented together with the image.

    Args:
        root: dataset root (see :class:`~geomae.datasets.bigearthnet_v2.BigEarthNetV2S2`).
        bands: bands the model sees (band-set name, comma string or list).
        task: ``"multilabel"`` (the 19 patch labels) or ``"segmentation"`` (the
            reference maps under ``root/Reference_Maps``).
        form: ``"folder"``, ``"lmdb"`` or ``"auto"`` (the folder when present).
        lmdb_path: the LMDB environment (default ``root/BigEarthNet-V2-LMDB`` or
            ``root/BENv2.lmdb``).
        metadata_path: the metadata table (default ``root/metadata.parquet``).
        snow_cloud_path: the snowy/cloudy patches' table (default under ``root``).
        include_snowy: add the patches with seasonal snow (excluded by default, as in
            the release).
        include_cloudy: add the patches with clouds or cloud shadow.
        countries: keep only patches of these countries, in every split.
        country_split: split by country instead of the official split, e.g.
            ``{train: [Austria, Finland], val: [Ireland], test: [Portugal]}``.
        ignore_index: ``mask`` value of unlabeled pixels (segmentation).
        check_files: check at setup that every selected patch is present.
        batch_size: samples per batch.
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        download: must stay False; geomae never downloads.
        stats: normalization statistics (BandStats, dict or YAML path); None takes the
            backbone's through :meth:`set_stats`, else approximate defaults.
        offset: value subtracted from raw DN before normalization (BigEarthNet v2
            patches carry no L2A offset: keep 0).
        augment: augmentation of training batches.
        crop_scale: crop area range for ``augment="full"``.
        processing_level: the data's processing level (BigEarthNet v2 is Level-2A);
            weights pretrained on another level are refused unless
            ``allow_level_mismatch``.
        allow_level_mismatch: run weights of the other processing level anyway.

    Raises:
        ConfigError: if ``download`` is True or ``task`` is unknown.
        DataError: if ``root`` does not exist.
        BandError: on an unknown band or one BigEarthNet lacks.
    """

    task: Literal["multiclass", "multilabel", "segmentation"] = "multilabel"

    def __init__(
        self,
        *,
        root: str | Path,
        bands: str | list[str] = "all",
        task: Literal["multilabel", "segmentation"] = "multilabel",
        form: Literal["auto", "folder", "lmdb"] = "auto",
        lmdb_path: str | Path | None = None,
        metadata_path: str | Path | None = None,
        snow_cloud_path: str | Path | None = None,
        include_snowy: bool = False,
        include_cloudy: bool = False,
        countries: list[str] | None = None,
        country_split: dict[str, list[str]] | None = None,
        ignore_index: int = 255,
        check_files: bool = True,
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
        root = require_local(root, download=download, what="BigEarthNet v2")
        if task not in ("multilabel", "segmentation"):
            raise ConfigError(
                f"BigEarthNet v2 task must be 'multilabel' or 'segmentation', got {task!r}"
            )
        selected = parse_bands(bands)
        split_map: Mapping[str, Sequence[str]] | None = (
            {k: list(v) for k, v in country_split.items()} if country_split else None
        )
        super().__init__(
            BigEarthNetV2S2,
            batch_size=batch_size,
            num_workers=num_workers,
            root=root,
            bands=selected,
            form=form,
            lmdb_path=lmdb_path,
            metadata_path=metadata_path,
            snow_cloud_path=snow_cloud_path,
            include_snowy=include_snowy,
            include_cloudy=include_cloudy,
            countries=list(countries) if countries is not None else None,
            country_split=split_map,
            reference_maps=task == "segmentation",
            ignore_index=ignore_index,
            check_files=check_files,
        )
        self.task = task
        self.pin_memory = pin_memory
        self.processing_level = parse_level(processing_level, what="processing_level")
        self.allow_level_mismatch = bool(allow_level_mismatch)
        self.class_names = list(BIGEARTHNET_V2_CLASSES)
        self.num_classes = len(self.class_names)
        self.ignore_index = int(ignore_index)
        self._init_band_pipeline(
            source_bands=selected,
            bands=selected,
            stats=stats,
            offset=offset,
            nodata=None,
            augment=augment,
            crop_scale=crop_scale,
        )
