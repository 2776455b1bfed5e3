"""SSL4EO-S12 pretraining DataModule: one season per location per epoch, 264 px patches."""

from __future__ import annotations

import logging
from typing import Any, Literal, cast

import numpy as np
from torchgeo.datamodules import NonGeoDataModule

from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import LoaderSpec
from geomae.datasets.ssl4eo import NUM_SEASONS, SPLITS, SSL4EOS12Patches
from geomae.errors import ConfigError
from geomae.samplers import SeasonSampler, trainer_world
from geomae.transforms import AugmentKind

__all__ = ["SSL4EOS12DataModule", "split_locations"]

log = logging.getLogger(__name__)


def split_locations(num: int, *, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically hold out ``round(val_fraction * num)`` locations (>= 1 if > 0).

    Returns:
        ``(train, val)`` sorted location positions.

    Raises:
        ConfigError: if no training location would remain.
    """
    num_val = round(val_fraction * num)
    if val_fraction > 0:
        num_val = max(num_val, 1)
    if num_val >= num:
        raise ConfigError(
            f"val_fraction={val_fraction} leaves no training location out of {num}; "
            "lower val_fraction"
        )
    is_val = np.zeros(num, dtype=bool)
    is_val[np.random.default_rng(seed).choice(num, size=num_val, replace=False)] = True
    everything = np.arange(num)
    return everything[~is_val], everything[is_val]


class SSL4EOS12DataModule(GeomaeDataModule, NonGeoDataModule):
    """Pretraining batches from SSL4EO-S12 (torchgeo's on-disk layout).

    Each epoch every training location gives one sample: a season drawn at random
    (``season="random"``, season as augmentation) or the fixed ``season``, and a
    ``patch_size`` window at a random position of its 264 px patch (``crop``). The
    draws are seeded by ``(seed, epoch)`` in the sampler
    (:class:`~geomae.samplers.SeasonSampler`), so runs repeat
    whatever the number of workers. A seeded ``val_fraction`` of the locations is held
    out; validation reads their ``val_season`` (default: ``season`` if fixed, else the
    first) and the centred window, the same every epoch.

    The processing level follows the split (``s2c``: L1C, 13 bands with B10; ``s2a``:
    L2A, 12 bands) and the offset is 0: SSL4EO-S12 was exported from Earth Engine's
    harmonized collections, whose baseline-04.00 products already had the +1000 DN
    offset removed (:mod:`geomae.datasets.ssl4eo`).

    Args:
        root: dataset root (holding ``s2c`` / ``s2a``) or the split folder.
        split: ``s2c`` (L1C) or ``s2a`` (L2A).
        bands: bands the model sees (band-set name, comma string or list); default
            the 12 non-cirrus bands (``l1c`` adds B10, ``s2c`` only).
        season: ``random`` (one per location per epoch) or a fixed season 0..3
            (timestamps in date order).
        val_season: season of the validation samples (default: see above).
        patch_size: side of the model's input in pixels (<= 264).
        crop: training window position: ``random`` or ``center``.
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        val_fraction: share of the locations held out for validation (0: none).
        seed: seed of the split, the seasons and the crops.
        stats: band statistics (YAML path or dict); None uses approximate defaults.
        offset: value subtracted from raw DN before normalization (0 for SSL4EO-S12).
        nodata: raw value marking missing pixels, or None.
        augment: training augmentation, see :class:`geomae.transforms.SpatialAugment`.
        crop_scale: crop area range for ``augment="full"``.
        pin_memory: pin batches in page-locked memory (only when CUDA is available).
        persistent_workers: keep workers between epochs (default: ``num_workers > 0``).
        allow_level_mismatch: run weights of the other processing level anyway.

    Raises:
        ConfigError: on an unknown split or season, a patch size beyond the patches,
            or a split leaving no training location.
        BandError: on a band the split lacks (B10 in ``s2a``) or missing from ``stats``.
        DataError: if ``root`` holds no SSL4EO-S12 split, or its first location holds
            the other split's bands.
    """

    def __init__(
        self,
        *,
        root: str,
        split: Literal["s2c", "s2a"] = "s2c",
        bands: str | list[str] | None = None,
        season: int | Literal["random"] = "random",
        val_season: int | None = None,
        patch_size: int = 224,
        crop: Literal["random", "center"] = "random",
        batch_size: int = 32,
        num_workers: int = 0,
        val_fraction: float = 0.05,
        seed: int = 0,
        stats: str | dict[str, Any] | None = None,
        offset: float | None = None,
        nodata: float | None = None,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        pin_memory: bool = True,
        persistent_workers: bool | None = None,
        allow_level_mismatch: bool = False,
    ) -> None:
        if split not in SPLITS:
            raise ConfigError(f"split={split!r} must be one of {list(SPLITS)}")
        for name, value in (("season", season), ("val_season", val_season)):
            if value not in (None, "random") and not (
                isinstance(value, int) and 0 <= value < NUM_SEASONS
            ):
                raise ConfigError(
                    f"{name}={value!r} must be 'random' or a season 0..{NUM_SEASONS - 1}"
                )
        if val_season == "random":
            raise ConfigError("val_season must be a fixed season 0..3, so validation repeats")
        if crop not in ("random", "center"):
            raise ConfigError(f"crop={crop!r} must be 'random' or 'center'")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
        super().__init__(
            SSL4EOS12Patches,  # type: ignore[arg-type]
            batch_size=batch_size,
            num_workers=num_workers,
        )
        self.save_hyperparameters()
        self.patches = SSL4EOS12Patches(root=root, split=split, bands=bands, patch_size=patch_size)
        self.dataset = self.patches
        self.split_info = self.patches.split
        self.processing_level = self.split_info.level
        self.allow_level_mismatch = bool(allow_level_mismatch)
        self._init_band_pipeline(
            source_bands=self.patches.bands,
            bands=self.patches.bands,
            stats=stats,
            offset=self.split_info.offset if offset is None else offset,
            nodata=nodata,
            augment=augment,
            crop_scale=crop_scale,
        )
        self.patch_size = self.patches.patch_size
        self.season = season
        self.val_season = (
            (season if season != "random" else 0) if val_season is None else val_season
        )
        self.crop = crop
        self.seed = int(seed)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = (
            num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        )
        self.train_locations, self.val_locations = split_locations(
            len(self.patches), val_fraction=float(val_fraction), seed=self.seed
        )
        log.info(
            "SSL4EO-S12 %s (%s): %d train / %d val locations, season %s, %d px windows",
            split,
            self.processing_level,
            len(self.train_locations),
            len(self.val_locations),
            season,
            self.patch_size,
        )

    def _subset(self, positions: np.ndarray) -> SSL4EOS12Patches:
        return SSL4EOS12Patches(
            root=self.patches.root,
            split=self.split_info.name,
            bands=self.patches.bands,
            patch_size=self.patch_size,
            locations=[self.patches.locations[i] for i in positions],
        )

    def setup(self, stage: str) -> None:
        """Build the datasets of ``stage`` (``fit`` or ``validate``).

        Raises:
            ConfigError: for ``test`` / ``predict``: SSL4EO-S12 has no such split.
        """
        if stage == "fit":
            self.train_dataset = self._subset(self.train_locations)
        if stage in ("fit", "validate"):
            self.val_dataset = self._subset(self.val_locations) if self.val_locations.size else None
        if stage in ("test", "predict"):
            raise ConfigError(f"{type(self).__name__} has no {stage} split; use fit or validate")

    def sampler(self, dataset: SSL4EOS12Patches, *, train: bool) -> SeasonSampler:
        """The key sampler of the train or val split."""
        return SeasonSampler(
            dataset,
            size=dataset.size,
            patch_size=self.patch_size,
            season=self.season if train else self.val_season,
            crop=self.crop if train else "center",
            shuffle=train,
            seed=self.seed,
            drop_last=train,
            **trainer_world(self.trainer),
        )

    def _loader_spec(self, split: str) -> LoaderSpec | None:
        """One random (or fixed) season per location for ``train``, shuffled.

        ``val``: the held-out locations at ``val_season``, centred windows (None when
        there are none).
        """
        if split == "val" and self.val_dataset is None:
            return None
        dataset = cast(SSL4EOS12Patches, self._valid_attribute(f"{split}_dataset"))
        train = split == "train"
        return LoaderSpec(
            dataset,
            sampler=self.sampler(dataset, train=train),
            drop_last=train,  # type: ignore[arg-type]
        )
