"""The one base of every geomae DataModule: bands, statistics, the band pipeline, loaders.

:class:`GeomaeDataModule` is listed before torchgeo's ``GeoDataModule`` or
``NonGeoDataModule``. A subclass overrides two things, in one place each:

* ``__init__`` calls :meth:`~GeomaeDataModule._init_band_pipeline` once, after the
  torchgeo base ``__init__``: which bands the dataset yields, which the model sees, the
  statistics, offset, nodata and augmentation;
* :meth:`~GeomaeDataModule._loader_spec` says what a split's DataLoader reads (dataset,
  sampler, shuffling, collate); the default reads ``<split>_dataset``, shuffled for
  ``train``, and the geo DataModules' ``<split>_sampler`` / ``<split>_batch_sampler``.
  Batch size, workers and memory options are applied the same way for every split and
  every DataModule (:func:`geomae.datamodules.loaders.make_dataloader`).

Which statistics normalize the data: a fine-tuned backbone should see its inputs
normalized exactly as during pretraining, so a task hands the backbone's statistics in
with :meth:`~GeomaeDataModule.set_stats`. Statistics the user passed (``stats``) win,
and a warning names every band whose mean or standard deviation differs from the
backbone's. With neither, the approximate band-table defaults are used, with one warning
at the first batch. The statistics may also stand for a plain scaling: weights imported
from SSL4EO-S12 expect ``x / 10000``, which is ``mean 0, std 10000`` per band (see
:mod:`geomae.normalization`).

A DataModule also says which processing level its data has (``processing_level``:
``L1C``, ``L2A`` or None when it cannot tell) and whether the user allows weights of
the other level (``allow_level_mismatch``); the task checks them against the
backbone's level (:func:`geomae.levels.check_level`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.utilities import move_data_to_device
from torch import Tensor
from torch.utils.data import DataLoader

from geomae.datamodules.loaders import LoaderSpec, make_dataloader
from geomae.stats import BandStats
from geomae.transforms import AugmentKind, BandPipeline

__all__ = ["GeomaeDataModule", "stats_differences"]

log = logging.getLogger(__name__)


def stats_differences(
    ours: BandStats,
    theirs: BandStats,
    bands: Sequence[str],
    *,
    rel_tol: float = 1e-6,
) -> list[str]:
    """Describe how ``ours`` differs from ``theirs`` on ``bands``.

    Args:
        ours: the statistics in use.
        theirs: the statistics compared against (e.g. the backbone's).
        bands: canonical band names to compare.
        rel_tol: relative tolerance under which two values count as equal.

    Returns:
        One line per differing band, e.g. ``"B02: mean 1400 vs 1350"`` or
        ``"B05: missing from the compared stats"``; empty when they agree.
    """
    lines = []
    for band in bands:
        a, b = ours.bands.get(band), theirs.bands.get(band)
        if a is None or b is None:
            side = "the stats in use" if a is None else "the compared stats"
            lines.append(f"{band}: missing from {side}")
            continue
        parts = [
            f"{name} {x:g} vs {y:g}"
            for name, x, y in (("mean", a.mean, b.mean), ("std", a.std, b.std))
            if not math.isclose(x, y, rel_tol=rel_tol)
        ]
        if parts:
            lines.append(f"{band}: " + ", ".join(parts))
    return lines


class GeomaeDataModule:
    """Band pipeline, statistics and DataLoaders of a torchgeo DataModule.

    See the module docstring for what subclasses override. After
    :meth:`_init_band_pipeline`:

    Attributes:
        bands: canonical bands the model sees, in canonical order.
        source_bands: canonical bands the dataset yields, in its channel order.
        stats: statistics selected to ``bands``.
        stats_source: where they came from (``"default"``, a file name, ``"user
            stats"`` or the ``source`` given to :meth:`set_stats`).
        offset: value subtracted from raw DN before normalization.
        processing_level: ``L1C`` / ``L2A`` of the data, None (the default) if the
            DataModule cannot tell.
        allow_level_mismatch: let weights pretrained on the other processing level run
            on this data (a warning instead of an error); False by default.
        pin_memory: pin batches in page-locked memory (with CUDA only).
        persistent_workers: keep loader workers between epochs.

    Together these are :class:`geomae.datamodules.contract.FinetuneData`.
    """

    bands: list[str]
    source_bands: list[str]
    stats: BandStats
    stats_source: str
    offset: float
    #: Processing level of the data (``L1C`` / ``L2A``), None if the DataModule cannot tell.
    processing_level: str | None = None
    #: Let weights pretrained on the other processing level run on this data (warning).
    allow_level_mismatch: bool = False
    pin_memory: bool = False
    persistent_workers: bool = True
    batch_size: int
    num_workers: int
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
            stats: the user's statistics (a BandStats, a dict, a YAML path), or None:
                the backbone's when a task hands them in (:meth:`set_stats`), else the
                approximate defaults of the band table (a warning at the first batch).
            offset: value subtracted from raw DN before normalization.
            nodata: raw value marking missing pixels, or None.
            augment: augmentation applied to training batches.
            crop_scale: crop area range for ``augment="full"``.

        Raises:
            BandError: if a band is not in ``source_bands``, or ``stats`` (naming the
                file it came from) lacks a selected band.
        """
        self._pipeline_kwargs: dict[str, Any] = {
            "source_bands": list(source_bands),
            "bands": bands,
            "offset": offset,
            "nodata": nodata,
            "augment": augment,
            "crop_scale": tuple(crop_scale),
        }
        self._user_stats: BandStats | None = None
        if stats is None:
            self._build_pipeline(BandStats.default(), source="default stats")
            self.stats_source = "default"
        else:
            source = f"stats file {stats}" if isinstance(stats, (str, Path)) else "user stats"
            self._user_stats = BandStats.coerce(stats)
            self._build_pipeline(self._user_stats, source=source)
            self.stats_source = source
        # The task logs the resolved bands/stats/tile size; the raw DataModule arguments
        # (a stats path, a band-set name, the tile size called `patch_size`) would clash
        # with the task's hyperparameters of the same names in Lightning's merge.
        self._log_hyperparams = False

    def _build_pipeline(self, stats: BandStats, *, source: str) -> None:
        self._band_pipeline = BandPipeline(
            stats=stats, stats_source=source, **self._pipeline_kwargs
        )
        self._band_pipeline.eval()
        self.bands = list(self._band_pipeline.bands)
        self.source_bands = list(self._band_pipeline.source_bands)
        self.stats = self._band_pipeline.stats
        self.offset = self._band_pipeline.offset

    @property
    def band_pipeline(self) -> BandPipeline:
        """The :class:`BandPipeline` built by :meth:`_init_band_pipeline`."""
        return self._band_pipeline

    def set_stats(self, stats: BandStats, *, source: str, expects: str | None = None) -> None:
        """Hand in the statistics the data should be normalized with (the backbone's).

        Without user-given ``stats`` these replace the current ones. With user-given
        ``stats`` the user's are kept and a warning names each band whose mean or std
        differs from ``stats`` (nothing is logged when they agree).

        Args:
            stats: statistics covering :attr:`bands`, e.g. from the backbone's metadata.
            source: what they come from (e.g. the checkpoint path), for messages.
            expects: the weights' normalization in words (e.g. ``x / 10000``), for the
                warning.

        Raises:
            BandError: if the statistics lack one of :attr:`bands`.
        """
        if self._user_stats is not None:
            differences = stats_differences(self._user_stats, stats, self.bands)
            if differences:
                log.warning(
                    "%s override the statistics of %s%s for band(s): %s",
                    self.stats_source,
                    source,
                    f" (its inputs must be {expects})" if expects else "",
                    "; ".join(differences),
                )
            return
        self._build_pipeline(stats, source=source)
        self.stats_source = source

    def transfer_batch_to_device(
        self, batch: Any, device: torch.device, dataloader_idx: int
    ) -> Any:
        """Move the tensor values of ``batch`` to ``device`` (non-tensor keys dropped)."""
        if isinstance(batch, Mapping):
            batch = {k: v for k, v in batch.items() if isinstance(v, Tensor)}
        return move_data_to_device(batch, device)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Run the band pipeline on the batch's device; augment only while training.

        Warns once if only the band table's default statistics are available.

        Args:
            batch: ``image`` ``(B, C_src, H, W)`` raw DN, optional ``valid``
                ``(B, 1, H, W)``, ``mask`` ``(B, H, W)``, ``label``.
            dataloader_idx: index of the dataloader (unused).

        Returns:
            ``image`` ``(B, C, H, W)`` float32 normalized, ``valid`` ``(B, 1, H, W)``
            bool, and the batch's other tensors.
        """
        self._warn_if_default_stats()
        device = batch["image"].device
        if self._band_pipeline.index.device != device:
            self._band_pipeline.to(device)
        trainer = getattr(self, "trainer", None)
        training = bool(trainer is not None and trainer.training)
        return self._band_pipeline(batch, augment=training)

    def _warn_if_default_stats(self) -> None:
        """Warn (once) when nothing better than the band-table defaults was given."""
        if self.stats_source == "default" and not getattr(self, "_default_warned", False):
            self._default_warned = True
            log.warning(
                "%s: no band statistics given and none from a backbone: normalizing "
                "bands %s with approximate global L1C defaults; pass `stats` or compute "
                "them with `geomae stats`",
                type(self).__name__,
                self.bands,
            )

    def describe(self) -> dict[str, Any]:
        """Bands, statistics and offset, for :class:`~geomae.metadata.GeoMetadata`."""
        return {"bands": list(self.bands), "stats": self.stats.to_dict(), "offset": self.offset}

    def _loader_spec(self, split: str) -> LoaderSpec | None:
        """What the DataLoader of ``split`` reads; None when the split is empty.

        The default reads ``<split>_dataset`` (or ``dataset``) with the geo
        DataModules' ``<split>_batch_sampler`` / ``<split>_sampler`` when set, else
        shuffled for ``train``; training drops the last partial batch.

        Raises:
            MisconfigurationException: if ``setup`` defined no dataset for ``split``.
        """
        dataset = self._valid_attribute(f"{split}_dataset", "dataset")  # type: ignore[attr-defined]
        batch_sampler = getattr(self, f"{split}_batch_sampler", None) or getattr(
            self, "batch_sampler", None
        )
        sampler = getattr(self, f"{split}_sampler", None) or getattr(self, "sampler", None)
        if batch_sampler is not None:
            return LoaderSpec(dataset, batch_sampler=batch_sampler)
        if sampler is not None:
            return LoaderSpec(dataset, sampler=sampler, drop_last=split == "train")
        return LoaderSpec(dataset, shuffle=split == "train", drop_last=split == "train")

    def _dataloader_factory(self, split: str) -> DataLoader[Any]:
        """The DataLoader of ``split`` (an empty list when the split is empty)."""
        spec = self._loader_spec(split)
        if spec is None:
            return []  # type: ignore[return-value]  # Lightning: no batches for this split
        return make_dataloader(
            spec,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.persistent_workers,
        )
