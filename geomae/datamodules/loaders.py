"""Local-data checks and DataLoader construction shared by the fine-tuning DataModules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from geomae.datamodules.base import collate_tensors
from geomae.errors import ConfigError, DataError

__all__ = ["SplitLoaderMixin", "make_dataloader", "require_local"]


def require_local(path: str | Path, *, download: bool, what: str) -> Path:
    """Check that a dataset is available locally; geomae never downloads.

    Args:
        path: the dataset's root folder or file.
        download: the DataModule's ``download`` argument.
        what: dataset name, for messages.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: if ``download`` is True.
        DataError: if ``path`` does not exist.
    """
    path = Path(path)
    if download:
        raise ConfigError(
            f"download=True is not supported: geomae never downloads data. Place the "
            f"{what} data under {path} yourself and pass download=False"
        )
    if not path.exists():
        raise DataError(f"{what} data not found: {path} does not exist")
    return path


def make_dataloader(
    dataset: Dataset[Any],
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    shuffle: bool = False,
    drop_last: bool = False,
    sampler: Sampler[Any] | None = None,
    batch_sampler: Sampler[Any] | None = None,
) -> DataLoader[Any]:
    """A DataLoader whose batches hold only the samples' tensors.

    Args:
        dataset: map-style dataset of dict samples.
        batch_size: samples per batch (ignored with ``batch_sampler``).
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory for faster host-to-GPU copies
            (only when CUDA is available).
        shuffle: shuffle the samples (map-style datasets without a sampler).
        drop_last: drop the last incomplete batch (ignored with ``batch_sampler``).
        sampler: yields one index (or geo query) at a time.
        batch_sampler: yields whole batches of indices (or geo queries).

    Returns:
        The DataLoader; ``collate_tensors`` stacks e.g. ``image`` into ``(B, C, H, W)``
        and drops non-tensor keys such as ``crs`` and ``bounds``.
    """
    pin_memory = pin_memory and torch.cuda.is_available()
    if batch_sampler is not None:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            num_workers=num_workers,
            collate_fn=collate_tensors,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        sampler=sampler,
        num_workers=num_workers,
        collate_fn=collate_tensors,
        pin_memory=pin_memory,
        drop_last=drop_last,
        persistent_workers=num_workers > 0,
    )


class SplitLoaderMixin:
    """torchgeo ``NonGeoDataModule`` loaders over ``<split>_dataset`` attributes.

    Training batches are shuffled and drop the last partial batch; validation and test
    batches keep every sample, in order.
    """

    batch_size: int
    num_workers: int
    pin_memory: bool

    def _dataloader_factory(self, split: str) -> DataLoader[Any]:
        """Loader of ``split``."""
        dataset = self._valid_attribute(f"{split}_dataset", "dataset")  # type: ignore[attr-defined]
        return make_dataloader(
            dataset,
            batch_size=self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            shuffle=split == "train",
            drop_last=split == "train",
        )
