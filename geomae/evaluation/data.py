"""One DataModule per band set, and the fixed, bounded tile lists every protocol scores on.

The benchmark builds the configured DataModule once per band set (``bands=`` the band
set) and normalizes it with the backbone's statistics. Feature extraction and scoring
read each split in a fixed order, without augmentation:

- classification (torchgeo ``NonGeoDataset``): every tile of the split, in dataset order;
- segmentation (torchgeo ``GeoDataset``): a grid of non-overlapping ``patch_size`` tiles
  inside the split's strip (the grid the DataModule's validation uses,
  :class:`~geomae.samplers.InsideGridGeoSampler`), also for ``train``.

``max_samples`` keeps a random subset of that many tiles (drawn with a fixed seed, so
every band set and protocol sees the same tiles).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Sampler, Subset
from torchgeo.datasets import GeoDataset

from geomae.datamodules.loaders import LoaderSpec, make_dataloader
from geomae.errors import ConfigError, DataError
from geomae.evaluation.config import DataSpec, Split, import_class
from geomae.linear_probe import TaskKind
from geomae.samplers import InsideGridGeoSampler
from geomae.stats import BandStats

log = logging.getLogger(__name__)

__all__ = [
    "TaskKind",
    "NormalizedBatches",
    "eval_split",
    "items_loader",
    "make_datamodule",
    "normalized_batches",
    "split_items",
    "split_loader",
    "subset_indices",
]

_TASKS: tuple[str, ...] = ("multiclass", "multilabel", "segmentation")
#: Fixed seed of the ``max_samples`` subsets (independent of the cell seeds).
SUBSET_SEED = 0


class _ListSampler(Sampler[Any]):
    """Yield a fixed list of indices or geo queries (in a new order each pass if shuffled)."""

    def __init__(self, items: Sequence[Any], *, shuffle: bool = False) -> None:
        self.items = list(items)
        self.shuffle = shuffle

    def __iter__(self) -> Iterator[Any]:
        if not self.shuffle:
            return iter(self.items)
        order = torch.randperm(len(self.items)).tolist()
        return iter([self.items[i] for i in order])

    def __len__(self) -> int:
        return len(self.items)


def make_datamodule(
    spec: DataSpec,
    *,
    bands: Sequence[str],
    stats: BandStats | None,
    stats_source: str,
) -> Any:
    """Instantiate the configured DataModule for one band set.

    Args:
        spec: class path and arguments.
        bands: the band set (canonical names).
        stats: statistics to normalize with (the backbone's), or None to keep the
            DataModule's own (a random-init backbone without a weights file).
        stats_source: where ``stats`` come from, for messages.

    Returns:
        The DataModule, with ``task`` one of multiclass / multilabel / segmentation.

    Raises:
        ConfigError: the class is not a geomae classification / segmentation DataModule.
    """
    cls = import_class(spec.class_path, "data.class_path")
    dm = cls(**spec.init_args, bands=list(bands))
    task = getattr(dm, "task", None)
    missing = [
        a
        for a in ("bands", "num_classes", "set_stats", "on_after_batch_transfer")
        if not hasattr(dm, a)
    ]
    if task not in _TASKS or missing:
        raise ConfigError(
            f"{spec.class_path} is not a geomae classification or segmentation DataModule "
            f"(task={task!r}, missing {missing}); use e.g. geomae.datamodules.EuroSATDataModule"
        )
    if stats is not None:
        dm.set_stats(stats.select(list(dm.bands), source=stats_source), source=stats_source)
    return dm


def eval_split(dm: Any) -> Split:
    """``test`` if the DataModule has a test split, else ``val`` (logged)."""
    try:
        dm.setup("test")
    except (NotImplementedError, AttributeError, KeyError) as err:
        log.warning("%s has no test split (%s): scoring on val", type(dm).__name__, err)
        return "val"
    if getattr(dm, "test_dataset", None) is None:
        log.warning("%s has no test split: scoring on val", type(dm).__name__)
        return "val"
    return "test"


def _dataset(dm: Any, split: Split) -> Any:
    dm.setup("test" if split == "test" else "fit")
    dataset = getattr(dm, f"{split}_dataset", None)
    if dataset is None:
        raise DataError(f"{type(dm).__name__} built no {split} dataset")
    return dataset


def split_items(
    dm: Any, split: Split, *, max_samples: int | None, stride: int | None = None
) -> tuple[Any, list[Any]]:
    """The split's dataset and its fixed tile list (see the module docstring).

    Args:
        dm: a geomae DataModule (set up here).
        split: ``train``, ``val`` or ``test``.
        max_samples: keep a random subset of at most this many tiles (None: all).
        stride: grid step in pixels of geo datasets (None: the tile size, no overlap).

    Returns:
        ``(dataset, items)``: dataset indices (``NonGeoDataset``) or geo queries
        (``GeoDataset``), in scoring order.

    Raises:
        DataError: the split is empty.
    """
    dataset = _dataset(dm, split)
    if isinstance(dataset, GeoDataset):
        size = getattr(dm, "patch_size", None)
        if not isinstance(size, int):
            raise ConfigError(f"{type(dm).__name__} has no integer patch_size for its tile grid")
        step = size if stride is None else int(stride)
        queries = list(InsideGridGeoSampler(dataset, size=size, stride=step))
        keep = subset_indices(len(queries), max_samples)
        if not keep:
            raise DataError(f"the {split} split of {type(dm).__name__} holds no {size}-px tile")
        return dataset, [queries[i] for i in keep]
    if len(dataset) == 0:
        raise DataError(f"the {split} split of {type(dm).__name__} is empty")
    return dataset, subset_indices(len(dataset), max_samples)


def items_loader(
    dm: Any, dataset: Any, items: Sequence[Any], *, shuffle: bool = False
) -> DataLoader[Any]:
    """Raw batches of ``items`` of ``dataset`` (from :func:`split_items`).

    Args:
        dm: the DataModule (batch size, workers).
        dataset: the split's dataset.
        items: dataset indices or geo queries.
        shuffle: a new order every epoch (from torch's global RNG, i.e. the seed).
    """
    batch_size = int(getattr(dm, "batch_size", 32))
    workers = int(getattr(dm, "num_workers", 0))
    if isinstance(dataset, GeoDataset):
        sampler: Sampler[Any] = _ListSampler(items, shuffle=shuffle)
        spec = LoaderSpec(dataset, sampler=sampler)  # type: ignore[arg-type]
        return make_dataloader(spec, batch_size=batch_size, num_workers=workers, pin_memory=False)
    indices = [int(i) for i in items]
    subset = dataset if indices == list(range(len(dataset))) else Subset(dataset, indices)
    spec = LoaderSpec(subset, shuffle=shuffle)
    return make_dataloader(spec, batch_size=batch_size, num_workers=workers, pin_memory=False)


def split_loader(
    dm: Any, split: Split, *, max_samples: int | None, stride: int | None = None
) -> DataLoader[Any]:
    """A loader of raw batches over the split's fixed tile list (see the module docstring).

    Args:
        dm: a geomae DataModule (set up here).
        split: ``train``, ``val`` or ``test``.
        max_samples: keep a random subset of at most this many tiles (None: all).
        stride: grid step in pixels of geo datasets (None: the tile size, no overlap).

    Raises:
        DataError: the split is empty.
    """
    dataset, items = split_items(dm, split, max_samples=max_samples, stride=stride)
    return items_loader(dm, dataset, items)


def subset_indices(n: int, max_samples: int | None) -> list[int]:
    """Sorted indices of a fixed random subset of at most ``max_samples`` of ``n``."""
    if max_samples is None or max_samples >= n:
        return list(range(n))
    rng = np.random.default_rng(SUBSET_SEED)
    return sorted(int(i) for i in rng.choice(n, size=max_samples, replace=False))


def normalized_batches(
    dm: Any, loader: DataLoader[Any], device: torch.device
) -> Iterator[dict[str, Tensor]]:
    """Batches on ``device`` after the DataModule's band pipeline (no augmentation).

    Yields:
        ``image`` ``(B, C, H, W)`` float32 normalized, ``valid`` ``(B, 1, H, W)`` bool,
        and ``label`` or ``mask``.
    """
    for batch in loader:
        moved = dm.transfer_batch_to_device(batch, device, 0)
        yield dm.on_after_batch_transfer(moved, 0)


class NormalizedBatches:
    """A re-iterable, sized view of :func:`normalized_batches` (for ``Trainer.test``).

    Args:
        dm: the DataModule whose band pipeline normalizes the batches.
        loader: raw batches (e.g. from :func:`split_loader`).
    """

    def __init__(self, dm: Any, loader: DataLoader[Any]) -> None:
        self.dm, self.loader = dm, loader

    def __iter__(self) -> Iterator[Mapping[str, Tensor]]:
        return normalized_batches(self.dm, self.loader, torch.device("cpu"))

    def __len__(self) -> int:
        return len(self.loader)
