"""Band selection, normalization and augmentation shared by every geomae DataModule."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor

from geomae.stats import BandStats
from geomae.transforms import AugmentKind, BandPipeline

__all__ = ["GEOREFERENCE_KEYS", "BandPipelineMixin", "collate_tensors"]

log = logging.getLogger(__name__)


#: Georeferencing keys of torchgeo samples, never part of a batch: ``crs``, and
#: ``bounds`` / ``transform`` (objects up to torchgeo 0.9, tensors from 0.10 on).
GEOREFERENCE_KEYS = frozenset({"bounds", "crs", "transform"})


def collate_tensors(samples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
    """Stack the tensor values of dict samples into a batch, dropping everything else.

    Torchgeo samples carry ``bounds``, ``crs``, ``transform`` and similar keys that
    describe where a sample lies rather than what it holds; they are dropped here (by
    name: torchgeo 0.10 makes ``bounds`` and ``transform`` tensors) so that Lightning's
    batch transfer and the band pipeline only see the data.

    Args:
        samples: dict samples, e.g. ``image`` ``(C, H, W)``, ``valid`` ``(1, H, W)``,
            ``mask`` ``(H, W)``, ``label`` ``()``.

    Returns:
        ``{key: stacked tensor}`` for every key whose value is a tensor in all samples,
        e.g. ``image`` ``(B, C, H, W)``.
    """
    keys = [
        k for k, v in samples[0].items() if isinstance(v, Tensor) and k not in GEOREFERENCE_KEYS
    ]
    keys = [k for k in keys if all(isinstance(s.get(k), Tensor) for s in samples)]
    return {k: torch.stack([s[k] for s in samples]) for k in keys}


class BandPipelineMixin:
    """Band pipeline for torchgeo DataModules (list it before the torchgeo base class).

    Subclasses call :meth:`_init_band_pipeline` in ``__init__`` (after the torchgeo
    base ``__init__``). Afterwards:

    Attributes:
        bands: canonical bands the model sees, in canonical order.
        source_bands: canonical bands the dataset yields, in its channel order.
        stats: statistics selected to ``bands``.
        offset: value subtracted from raw DN before normalization.
        processing_level: ``L1C`` / ``L2A`` of the data, None (the default) if the
            DataModule cannot tell.
        allow_level_mismatch: let weights pretrained on the other processing level run
            on this data (a warning instead of an error); False by default.

    Together these are :class:`geomae.datamodules.contract.BandData`.
    """

    bands: list[str]
    source_bands: list[str]
    stats: BandStats
    offset: float
    #: Processing level of the data (``L1C`` / ``L2A``), None if the DataModule cannot tell.
    processing_level: str | None = None
    #: Let weights pretrained on the other processing level run on this data (warning).
    allow_level_mismatch: bool = False
    trainer: Any

    def _init_band_pipeline(
        self,
        *,
        source_bands: Sequence[str],
        bands: str | Sequence[str],
        stats: BandStats | Mapping[str, Any] | str | Path | None,
        offset: float = 0.0,
        nodata: float | None = None,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        """Validate the band configuration and build the :class:`BandPipeline`.

        Args:
            source_bands: canonical bands the dataset yields, in order.
            bands: bands the model sees (band-set name, comma string or list).
            stats: a BandStats, a dict, a YAML path, or None for the approximate
                defaults of the band table (logged as a warning).
            offset: value subtracted from raw DN before normalization.
            nodata: raw value marking missing pixels, or None.
            augment: augmentation applied to training batches.
            crop_scale: crop area range for ``augment="full"``.

        Raises:
            BandError: if a band is not in ``source_bands``, or ``stats`` (naming the
                file it came from) lacks a selected band.
        """
        if stats is None:
            log.warning(
                "no band statistics given: normalizing with approximate global L1C "
                "defaults; compute real ones with `geomae stats`"
            )
            source = "default stats"
        elif isinstance(stats, (str, Path)):
            source = f"stats file {stats}"
        else:
            source = "stats"
        self._band_pipeline = BandPipeline(
            source_bands=source_bands,
            bands=bands,
            stats=BandStats.coerce(stats),
            stats_source=source,
            offset=offset,
            nodata=nodata,
            augment=augment,
            crop_scale=tuple(crop_scale),  # type: ignore[arg-type]
        )
        self._band_pipeline.eval()
        # The task logs the resolved bands/stats/tile size; the raw DataModule arguments
        # (a stats path, a band-set name, the tile size called `patch_size`) would clash
        # with the task's hyperparameters of the same names in Lightning's merge.
        self._log_hyperparams = False
        self.bands = list(self._band_pipeline.bands)
        self.source_bands = list(self._band_pipeline.source_bands)
        self.stats = self._band_pipeline.stats
        self.offset = self._band_pipeline.offset

    @property
    def band_pipeline(self) -> BandPipeline:
        """The :class:`BandPipeline` built by :meth:`_init_band_pipeline`."""
        return self._band_pipeline

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move the tensor values of ``batch`` to ``device`` (non-tensor keys dropped)."""
        if isinstance(batch, Mapping):
            batch = {k: v for k, v in batch.items() if isinstance(v, Tensor)}
        return move_data_to_device(batch, device)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Run the band pipeline on the batch's device; augment only while training.

        Args:
            batch: ``image`` ``(B, C_src, H, W)`` raw DN, optional ``valid``
                ``(B, 1, H, W)``, ``mask`` ``(B, H, W)``, ``label``.
            dataloader_idx: index of the dataloader (unused).

        Returns:
            ``image`` ``(B, C, H, W)`` float32 normalized, ``valid`` ``(B, 1, H, W)``
            bool, and the batch's other tensors.
        """
        device = batch["image"].device
        if self._band_pipeline.index.device != device:
            self._band_pipeline.to(device)
        trainer = getattr(self, "trainer", None)
        training = bool(trainer is not None and trainer.training)
        return self._band_pipeline(batch, augment=training)

    def describe(self) -> dict[str, Any]:
        """Bands, statistics and offset, for :class:`~geomae.metadata.GeoMetadata`."""
        return {"bands": list(self.bands), "stats": self.stats.to_dict(), "offset": self.offset}
