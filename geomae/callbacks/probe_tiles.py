"""The labelled tiles of the online probe: read once, normalized, kept in memory.

Reading a geo split tile by tile costs one raster read per band and one polygon
rasterization per tile (about 3 tiles/s on the bundled scene with its OSM layer). The
probe tiles of a geo split are the grid of :class:`InsideGridGeoSampler`; here the
bounding box of that grid is read in **one** query, normalized once, and cut into the
grid's tiles in memory: the same tiles, at a few hundred per second. A box larger than
``max_window_pixels`` falls back to tile-by-tile reads. Non-geo (classification)
datasets are read through :func:`geomae.evaluation.data.split_loader`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torchgeo.datasets import GeoDataset

from geomae.errors import DataError
from geomae.evaluation.data import normalized_batches, split_loader, subset_indices
from geomae.samplers import InsideGridGeoSampler

log = logging.getLogger(__name__)

__all__ = ["ProbeTiles", "majority_labels", "read_split_tiles"]

#: Largest window (pixels) read in one query before falling back to per-tile reads.
MAX_WINDOW_PIXELS = 64_000_000


@dataclass
class ProbeTiles:
    """Normalized probe tiles of one split, on the CPU.

    Attributes:
        image: ``(N, C, H, W)`` float32, band-normalized as the task's inputs.
        labels: ``(N,)`` class indices, or ``(N, H, W)`` masks.
        valid: ``(N, 1, H, W)`` bool.
    """

    image: Tensor
    labels: np.ndarray
    valid: Tensor

    def __len__(self) -> int:
        """Number of tiles."""
        return int(self.image.shape[0])

    def take(self, rows: np.ndarray) -> ProbeTiles:
        """The tiles at ``rows``."""
        index = torch.as_tensor(rows, dtype=torch.long)
        return ProbeTiles(self.image[index], self.labels[rows], self.valid[index])


def majority_labels(
    masks: np.ndarray, *, num_classes: int, ignore_index: int, min_labelled: float
) -> tuple[np.ndarray, np.ndarray]:
    """Most frequent labelled class of each mask.

    Args:
        masks: ``(N, H, W)`` class indices, ``ignore_index`` where unlabelled.
        num_classes: K.
        ignore_index: the unlabelled value.
        min_labelled: least share of labelled pixels a tile needs to be kept.

    Returns:
        ``(labels (n,), kept (n,))``: the majority class of each kept tile and the
        indices of the kept tiles (ties go to the lower class index).
    """
    flat = masks.reshape(len(masks), -1).astype(np.int64)  # (N, H*W)
    labelled = (flat >= 0) & (flat < num_classes) & (flat != ignore_index)  # (N, H*W)
    counts = np.zeros((len(flat), num_classes), dtype=np.int64)  # (N, K)
    rows = np.broadcast_to(np.arange(len(flat))[:, None], flat.shape)  # (N, H*W)
    np.add.at(counts, (rows[labelled], flat[labelled]), 1)
    share = labelled.mean(axis=1) if flat.shape[1] else np.zeros(len(flat))
    kept = np.flatnonzero((share >= min_labelled) & (counts.sum(axis=1) > 0))
    return counts[kept].argmax(axis=1), kept


def _normalize(dm: Any, batch: dict[str, Tensor]) -> dict[str, Tensor]:
    """The DataModule's band pipeline on the CPU, without augmentation."""
    moved = dm.transfer_batch_to_device(batch, torch.device("cpu"), 0)
    return dm.on_after_batch_transfer(moved, 0)


def read_split_tiles(
    dm: Any, split: str, *, max_tiles: int | None, stride: int | None = None
) -> ProbeTiles:
    """Normalized tiles and labels of one split of a geomae labelled DataModule.

    Args:
        dm: the DataModule (set up here), with its statistics already set.
        split: ``train``, ``val`` or ``test``.
        max_tiles: keep a fixed random subset of at most this many tiles (the seeded
            subset of :func:`geomae.evaluation.data.subset_indices`).
        stride: grid step in pixels of geo splits (None: the tile size).

    Returns:
        The tiles; ``labels`` are the dataset's ``label`` or ``mask``.

    Raises:
        DataError: the split is empty.
    """
    dm.setup("test" if split == "test" else "fit")
    dataset = getattr(dm, f"{split}_dataset", None)
    if dataset is None:
        raise DataError(f"{type(dm).__name__} built no {split} dataset")
    if not isinstance(dataset, GeoDataset):
        return _read_loader(dm, split, max_tiles)
    size = int(dm.patch_size)
    step = size if stride is None else int(stride)
    queries = list(InsideGridGeoSampler(dataset, size=size, stride=step))
    queries = [queries[i] for i in subset_indices(len(queries), max_tiles)]
    if not queries:
        raise DataError(f"the {split} split of {type(dm).__name__} holds no {size}-px tile")
    res_x, res_y = (float(r) for r in dataset.res)
    x0 = min(float(q[0].start) for q in queries)
    x1 = max(float(q[0].stop) for q in queries)
    y0 = min(float(q[1].start) for q in queries)
    y1 = max(float(q[1].stop) for q in queries)
    width, height = round((x1 - x0) / res_x), round((y1 - y0) / res_y)
    if width * height > MAX_WINDOW_PIXELS:
        log.info(
            "probe %s split: %dx%d px window too large, reading tile by tile", split, width, height
        )
        samples = [_normalize(dm, _batch_of(dataset[q])) for q in queries]
        return _stack(samples)
    t = queries[0][2]
    window = _normalize(dm, _batch_of(dataset[slice(x0, x1), slice(y0, y1), t]))
    images, masks, valids = [], [], []
    for q in queries:
        col = round((float(q[0].start) - x0) / res_x)
        row = round((y1 - float(q[1].stop)) / res_y)
        images.append(window["image"][0, :, row : row + size, col : col + size])
        valids.append(window["valid"][0, :, row : row + size, col : col + size])
        masks.append(window["mask"][0, row : row + size, col : col + size])
    return ProbeTiles(
        torch.stack(images).float(), torch.stack(masks).numpy(), torch.stack(valids).bool()
    )


def _batch_of(sample: dict[str, Any]) -> dict[str, Tensor]:
    return {k: v[None] for k, v in sample.items() if isinstance(v, Tensor)}


def _stack(batches: list[dict[str, Tensor]]) -> ProbeTiles:
    key = "mask" if "mask" in batches[0] else "label"
    return ProbeTiles(
        torch.cat([b["image"] for b in batches]).float(),
        torch.cat([b[key] for b in batches]).cpu().numpy(),
        torch.cat([b["valid"] for b in batches]).bool(),
    )


def _read_loader(dm: Any, split: str, max_tiles: int | None) -> ProbeTiles:
    loader = split_loader(dm, split, max_samples=max_tiles)  # type: ignore[arg-type]
    return _stack(list(normalized_batches(dm, loader, torch.device("cpu"))))
