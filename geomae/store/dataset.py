"""Tiles of a prepared tile store as a map-style torch dataset.

Images come back in the store's dtype: uint16 digital numbers stay uint16 (2 bytes
per value through worker IPC, pinning and host-to-device copy; the DataModule turns
them into float32 on the device), float stores give float32. DataLoader calls
:meth:`TileStoreDataset.__getitems__` with a whole batch of indices, which reads the
batch with one zarr selection instead of one read per tile.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from geomae.datasets.xarray_source import to_tensor
from geomae.store.reader import TileStore

__all__ = ["TileStoreDataset"]


class TileStoreDataset(NonGeoDataset):
    """Tiles of a tile store, optionally a subset of them.

    Args:
        path: the store directory (or an opened :class:`~geomae.store.TileStore`).
        indices: store tile indices this dataset exposes (sorted ascending, so the
            dataset's neighbours are the store's); None exposes every tile.
        return_bounds: add ``bounds`` ``(4,)`` float64 (xmin, ymin, xmax, ymax) to
            each sample.

    Attributes:
        store: the opened store.
        bands: canonical band names, in channel order.
        indices: ``(N,)`` store indices of this dataset's items.

    Raises:
        DataError: if the store is missing or incomplete (see
            :class:`~geomae.store.TileStore`).
        IndexError: if an index is outside the store.
    """

    def __init__(
        self,
        path: str | Path | TileStore,
        *,
        indices: Sequence[int] | np.ndarray | None = None,
        return_bounds: bool = False,
    ) -> None:
        self.store = path if isinstance(path, TileStore) else TileStore(path)
        self.bands = list(self.store.info.bands)
        n = len(self.store)
        if indices is None:
            self.indices = np.arange(n, dtype=np.int64)
        else:
            self.indices = np.unique(np.asarray(indices, dtype=np.int64))
            if self.indices.size and (self.indices[0] < 0 or self.indices[-1] >= n):
                raise IndexError(f"indices outside the store's {n} tiles ({self.store.path})")
        self.return_bounds = return_bounds

    def __len__(self) -> int:
        """Number of tiles."""
        return int(self.indices.size)

    def _samples(self, positions: np.ndarray) -> list[dict[str, Tensor]]:
        store_index = self.indices[positions]  # (B,)
        tiles, valid = self.store.read(store_index)  # (B, C, T, T), (B, 1, T, T)
        image = to_tensor(tiles)
        mask = None if valid is None else torch.from_numpy(valid)
        samples = []
        for k in range(len(positions)):
            sample = {"image": image[k]}
            if mask is not None:
                sample["valid"] = mask[k]
            if self.return_bounds:
                sample["bounds"] = torch.from_numpy(self.store.bounds[store_index[k]].copy())
            samples.append(sample)
        return samples

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Read one tile.

        Returns:
            ``image`` ``(C, T, T)`` (uint16 or float32 raw values), ``valid``
            ``(1, T, T)`` bool when the store has it, ``bounds`` ``(4,)`` if asked.
        """
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} tiles")
        return self._samples(np.array([index % len(self)]))[0]

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Tensor]]:
        """Read a batch of tiles with one store read (called by DataLoader)."""
        positions = np.asarray(indices, dtype=np.int64)
        if positions.size and (positions.min() < 0 or positions.max() >= len(self)):
            raise IndexError(f"indices out of range for {len(self)} tiles")
        return self._samples(positions)

    def chunk_groups(self) -> list[np.ndarray]:
        """Dataset positions grouped by the store chunk holding them, in store order."""
        if not len(self):
            return []
        chunk = self.indices // self.store.chunk_tiles  # (N,)
        cuts = np.flatnonzero(np.diff(chunk)) + 1
        return np.split(np.arange(len(self), dtype=np.int64), cuts)
