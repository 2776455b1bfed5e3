"""DataModule over a prepared tile store (``geomae prepare``): the fast pretraining path."""

from __future__ import annotations

import logging
import math
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import default_collate
from torchgeo.datamodules import NonGeoDataModule

from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import LoaderSpec
from geomae.errors import ConfigError
from geomae.levels import parse_level
from geomae.samplers import ChunkSampler, trainer_world
from geomae.store.dataset import TileStoreDataset
from geomae.store.reader import TileStore
from geomae.transforms import AugmentKind

__all__ = ["TileStoreDataModule", "split_chunks", "widen_uint16"]

log = logging.getLogger(__name__)


def widen_uint16(batch: dict[str, Any]) -> dict[str, Any]:
    """Turn a uint16 ``image`` into float32 on its device, exactly.

    CUDA kernels for uint16 are sparse in torch, so the values are reinterpreted as
    int16 (a free view), widened to int32 and masked back to ``[0, 65535]``: only
    int16/int32 kernels run on the device.

    Args:
        batch: ``image`` ``(B, C, H, W)`` of any dtype, other keys untouched.

    Returns:
        The batch with a float32 ``image`` if it was uint16, else unchanged.
    """
    image = batch.get("image")
    if isinstance(image, Tensor) and image.dtype == torch.uint16:
        wide = image.view(torch.int16).to(torch.int32).bitwise_and_(0xFFFF)  # (B, C, H, W)
        batch = {**batch, "image": wide.to(torch.float32)}
    return batch


def split_chunks(
    num_tiles: int, chunk_tiles: int, *, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministically split a store's tiles into train and val by whole chunks.

    ``round(val_fraction * num_chunks)`` chunks (at least one when ``val_fraction`` is
    positive) chosen by a generator seeded with ``seed`` go to validation. Chunks hold
    spatially neighbouring tiles, so whole-chunk splitting keeps most neighbours of a
    val tile out of training and keeps both splits chunk-aligned for fast reads.

    Returns:
        ``(train, val)`` sorted store indices.

    Raises:
        ConfigError: if the split would leave no training chunk.
    """
    num_chunks = math.ceil(num_tiles / chunk_tiles)
    num_val = round(val_fraction * num_chunks)
    if val_fraction > 0:
        num_val = max(num_val, 1)
    if num_val >= num_chunks:
        raise ConfigError(
            f"val_fraction={val_fraction} leaves no training data: the store has "
            f"{num_chunks} chunk(s) of {chunk_tiles} tiles ({num_tiles} tiles); lower "
            "val_fraction or write the store with a smaller --chunk-tiles"
        )
    rng = np.random.default_rng(seed)
    is_val = np.zeros(num_chunks, dtype=bool)
    is_val[rng.choice(num_chunks, size=num_val, replace=False)] = True
    tile_is_val = np.repeat(is_val, chunk_tiles)[:num_tiles]  # (N,)
    everything = np.arange(num_tiles, dtype=np.int64)
    return everything[~tile_is_val], everything[tile_is_val]


class TileStoreDataModule(GeomaeDataModule, NonGeoDataModule):
    """Pretraining batches from a tile store.

    Training uses a :class:`~geomae.samplers.ChunkSampler` (a ``DistributedSampler``:
    under DDP each rank reads its own contiguous share of the shuffled chunks);
    validation reads its chunks in store order; ``predict`` reads every tile in store
    order. Images travel as the store's dtype (uint16 stays 2 bytes per value) and
    become float32 on the device before the band pipeline.

    Args:
        path: the tile store directory, or its fsspec URL (``s3://bucket/x.zarr``).
        bands: bands the model sees (band-set name, comma string or list); None: all
            of the store's bands.
        patch_size: tile size the model expects; None or the store's tile size (set
            when the store was prepared, ``--tile-size``).
        batch_size: samples per batch.
        num_workers: DataLoader worker processes.
        val_fraction: share of the store's chunks held out for validation (0: none).
        stats: band statistics (YAML path or dict); None uses the store's own.
        offset: value subtracted from raw DN before normalization (1000 for
            processing baseline 04.00 and later); None: the store's own (recorded by
            ``geomae prepare`` from SAFE metadata or the SSL4EO-S12 split, else 0).
        augment: training augmentation, see :class:`geomae.transforms.SpatialAugment`.
        crop_scale: crop area range for ``augment="full"``.
        shuffle: ``chunks``: shuffle chunks and mix tiles within a window of about two
            batches' worth of chunks (fast); ``tiles``: shuffle all tiles freely.
        seed: seed of the split and of the shuffling.
        pin_memory: pin batches in page-locked memory (only when CUDA is available).
        persistent_workers: keep workers between epochs (default: ``num_workers > 0``).
        processing_level: the data's processing level, ``L1C`` or ``L2A`` (None:
            the store's own if recorded, else unknown and not checked); recorded in
            pretrained weights, and weights of the other level are refused unless
            ``allow_level_mismatch``.
        allow_level_mismatch: run weights of the other processing level anyway (a
            warning instead of an error).
        storage_options: fsspec options when ``path`` is a URL such as
            ``s3://bucket/x.zarr`` (s3fs: ``key``, ``secret``, ``endpoint_url``, ``anon``).

    Raises:
        DataError: if the store is missing or incomplete.
        StorageError: if a URL store cannot be read (no credentials, access denied).
        BandError: on a band the store lacks, or one missing from ``stats``.
        ConfigError: if the split leaves no training tiles, or ``patch_size`` is not
            the store's tile size.
    """

    def __init__(
        self,
        *,
        path: str,
        bands: str | list[str] | None = None,
        patch_size: int | None = None,
        batch_size: int = 64,
        num_workers: int = 0,
        val_fraction: float = 0.1,
        stats: str | dict[str, Any] | None = None,
        offset: float | None = None,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        shuffle: Literal["chunks", "tiles"] = "chunks",
        seed: int = 0,
        pin_memory: bool = True,
        persistent_workers: bool | None = None,
        processing_level: Literal["L1C", "L2A"] | None = None,
        allow_level_mismatch: bool = False,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        self.processing_level = parse_level(processing_level, what="processing_level")
        self.allow_level_mismatch = bool(allow_level_mismatch)
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
        if shuffle not in ("chunks", "tiles"):
            raise ConfigError(f"shuffle={shuffle!r} must be 'chunks' or 'tiles'")
        super().__init__(TileStoreDataset, batch_size=batch_size, num_workers=num_workers)
        self.save_hyperparameters()
        self.store = TileStore(path, storage_options=storage_options)
        info = self.store.info
        if self.processing_level is None and info.processing_level is not None:
            self.processing_level = parse_level(info.processing_level, what="store level")
        elif info.processing_level not in (None, self.processing_level):
            raise ConfigError(
                f"processing_level={self.processing_level} but tile store {path} holds "
                f"{info.processing_level} tiles"
            )
        if patch_size is not None and patch_size != info.tile_size:
            raise ConfigError(
                f"patch_size={patch_size} but tile store {path} holds {info.tile_size}-px "
                f"tiles; re-create it with `geomae prepare --tile-size {patch_size}`"
            )
        self.patch_size = info.tile_size
        if stats is None:
            if info.stats is None:
                log.warning("tile store %s has no band statistics", path)
            else:
                log.info("normalizing with the band statistics stored in %s", path)
        self._init_band_pipeline(
            source_bands=info.bands,
            bands=info.bands if bands is None else bands,
            stats=info.stats if stats is None else stats,
            offset=info.offset if offset is None else offset,
            nodata=info.nodata,
            augment=augment,
            crop_scale=crop_scale,
        )
        self.path = self.store.path  # a Path, or the URL
        self.val_fraction = float(val_fraction)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = (
            num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        )
        self.train_indices, self.val_indices = split_chunks(
            len(self.store), info.chunk_tiles, val_fraction=self.val_fraction, seed=self.seed
        )

    def setup(self, stage: str) -> None:
        """Build the datasets of ``stage`` (``fit``, ``validate`` or ``predict``).

        Raises:
            ConfigError: for ``test``: a tile store has no labels to test on.
        """
        if stage == "fit":
            self.train_dataset = TileStoreDataset(self.store, indices=self.train_indices)
        if stage in ("fit", "validate"):
            self.val_dataset = (
                TileStoreDataset(self.store, indices=self.val_indices)
                if self.val_indices.size
                else None
            )
        if stage == "predict":
            self.predict_dataset = TileStoreDataset(self.store)
        if stage == "test":
            raise ConfigError(f"{type(self).__name__} has no test split; use fit or validate")

    def _loader_spec(self, split: str) -> LoaderSpec | None:
        """Chunk-aware batches, shuffled for ``train``.

        ``val`` (None when ``val_fraction`` is 0) and ``predict`` (every tile of the
        store) are read in store order.
        """
        if split == "val" and self.val_dataset is None:
            return None
        dataset = cast(TileStoreDataset, self._valid_attribute(f"{split}_dataset"))
        train = split == "train"
        window = None
        if self.shuffle == "chunks":
            window = max(1, math.ceil(2 * self.batch_size / self.store.chunk_tiles))
        sampler = ChunkSampler(
            dataset,
            shuffle=train,
            window=window,
            seed=self.seed,
            drop_last=train,
            **trainer_world(self.trainer),
        )
        return LoaderSpec(dataset, sampler=sampler, drop_last=train, collate_fn=default_collate)

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Widen uint16 images to float32 on the device, then run the band pipeline."""
        return super().on_after_batch_transfer(widen_uint16(batch), dataloader_idx)
