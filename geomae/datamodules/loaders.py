"""How geomae DataModules build their DataLoaders: collate, one loader recipe, local data.

Every DataModule describes a split's loader as a :class:`LoaderSpec` (dataset, sampler,
shuffling, collate function) and :func:`make_dataloader` turns it into the DataLoader
with the DataModule's batch size, workers and memory options, so those options mean the
same everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from geomae.errors import ConfigError, DataError

__all__ = [
    "GEOREFERENCE_KEYS",
    "LoaderSpec",
    "collate_tensors",
    "make_dataloader",
    "require_local",
]


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


@dataclass(frozen=True)
class LoaderSpec:
    """What one split's DataLoader reads and in which order.

    Attributes:
        dataset: map-style dataset of dict samples (indexed by ints or geo queries).
        sampler: yields one index (or geo query) at a time; None reads in order, or
            shuffled with ``shuffle``.
        batch_sampler: yields whole batches of indices (or geo queries) instead.
        shuffle: shuffle the samples (map-style datasets without a sampler).
        drop_last: drop the last incomplete batch (training).
        collate_fn: stacks the samples into a batch.
    """

    dataset: Dataset[Any]
    sampler: Sampler[Any] | None = None
    batch_sampler: Sampler[Any] | None = None
    shuffle: bool = False
    drop_last: bool = False
    collate_fn: Callable[[Any], Any] = collate_tensors


def make_dataloader(
    spec: LoaderSpec,
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool,
    persistent_workers: bool = True,
) -> DataLoader[Any]:
    """The DataLoader of ``spec``.

    Args:
        spec: dataset, sampler and batching of the split.
        batch_size: samples per batch (ignored with ``spec.batch_sampler``).
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory for faster host-to-GPU copies
            (only when CUDA is available).
        persistent_workers: keep the workers between epochs (when there are any).

    Returns:
        The DataLoader; the default ``collate_tensors`` stacks e.g. ``image`` into
        ``(B, C, H, W)`` and drops non-tensor keys such as ``crs`` and ``bounds``.
    """
    common: dict[str, Any] = {
        "num_workers": num_workers,
        "collate_fn": spec.collate_fn,
        "pin_memory": pin_memory and torch.cuda.is_available(),
        "persistent_workers": persistent_workers and num_workers > 0,
    }
    if spec.batch_sampler is not None:
        return DataLoader(spec.dataset, batch_sampler=spec.batch_sampler, **common)
    return DataLoader(
        spec.dataset,
        batch_size=batch_size,
        shuffle=spec.shuffle,
        sampler=spec.sampler,
        drop_last=spec.drop_last,
        **common,
    )


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
