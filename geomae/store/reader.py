"""Read tiles from a geomae tile store (see :mod:`geomae.store.layout`).

:class:`TileStore` validates a store when it is opened and reads any set of tiles
with as few chunk decodes as possible: a contiguous run of indices is one zarr slice,
anything else one orthogonal selection that decodes each touched chunk once.

The zarr handles are opened lazily in each process and are not pickled, so a
:class:`TileStore` can be handed to DataLoader workers (fork or spawn).

A store may live on object storage (``s3://bucket/x.zarr`` with fsspec
``storage_options``, see :mod:`geomae.store.remote`): the reads are the same zarr
selections, so a batch still fetches and decodes each chunk it touches once (one GET
per chunk object).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from geomae.errors import DataError
from geomae.store.layout import ATTRS_KEY, BOUNDS, TILES, VALID, TileStoreInfo
from geomae.store.remote import StoreLocation, check_access

__all__ = ["TileStore"]

log = logging.getLogger(__name__)


class TileStore:
    """A tile store opened for reading.

    Args:
        path: the store directory written by :func:`geomae.store.write_tile_store`
            (``geomae prepare``), or its fsspec URL (``s3://bucket/x.zarr``).
        storage_options: fsspec options of a URL (s3fs: ``key``, ``secret``,
            ``endpoint_url``, ``anon``, ...).

    Attributes:
        path: the store directory (a ``Path``), or its URL.
        location: where the store lives.
        info: its metadata record.

    Raises:
        DataError: naming the path when it does not exist, is not a zarr group, lacks
            the geomae metadata or one of its arrays, or an array's shape disagrees
            with the metadata.
        StorageError: naming the URL when the object store cannot be read (no
            credentials, no bucket, access denied).
    """

    def __init__(
        self, path: str | Path, *, storage_options: Mapping[str, Any] | None = None
    ) -> None:
        self.location = StoreLocation.parse(path, storage_options)
        self.path: Path | str = (
            self.location.local_path if self.location.is_local else self.location.url
        )
        self._pid: int | None = None
        self._tiles: Any = None
        self._valid: Any = None
        check_access(self.location, for_writing=False)
        group = self._open_group()
        attrs = dict(group.attrs)
        if ATTRS_KEY not in attrs:
            raise DataError(
                f"tile store {self.path}: the zarr group has no {ATTRS_KEY!r} attribute; it "
                "was not written by `geomae prepare` (or the write did not finish)"
            )
        record = attrs[ATTRS_KEY]
        if not isinstance(record, Mapping):
            raise DataError(f"tile store {self.path}: attribute {ATTRS_KEY!r} is not a mapping")
        self.info = TileStoreInfo.from_dict(record, source=str(self.path))
        members = set(group.array_keys())
        wanted = [TILES, BOUNDS] + ([VALID] if self.info.has_valid else [])
        missing = [name for name in wanted if name not in members]
        if missing:
            raise DataError(
                f"tile store {self.path}: array(s) {missing} missing (found {sorted(members)}); "
                "the store is incomplete, re-create it with `geomae prepare`"
            )
        n, c, t = self.info.num_tiles, len(self.info.bands), self.info.tile_size
        expected = {TILES: (n, c, t, t), BOUNDS: (n, 4)}
        if self.info.has_valid:
            expected[VALID] = (n, 1, t, t)
        arrays: dict[str, Any] = {name: group[name] for name in wanted}
        for name, shape in expected.items():
            found = tuple(arrays[name].shape)
            if found != shape:
                raise DataError(
                    f"tile store {self.path}: array {name!r} has shape {found}, the metadata "
                    f"implies {shape} ({n} tiles, bands {self.info.bands}, tile size {t})"
                )
        self.bounds: np.ndarray = np.asarray(arrays[BOUNDS][:], dtype=np.float64)  # (N, 4)

    def _open_group(self) -> zarr.Group:
        if not self.location.exists():
            raise DataError(
                f"tile store {self.path} does not exist; create it with "
                f"`geomae prepare SRC -o {self.path}`"
            )
        if not self.location.has_file("zarr.json"):
            raise DataError(
                f"tile store {self.path} is not a zarr (format 3) store: zarr.json is missing"
            )
        try:
            return self.location.open_group("r")
        except Exception as err:  # zarr raises several types for unreadable metadata
            raise DataError(f"tile store {self.path} cannot be opened: {err}") from err

    def _arrays(self) -> tuple[Any, Any]:
        """The ``tiles`` and ``valid`` arrays, opened once per process."""
        if self._pid != os.getpid():
            group = self._open_group()
            self._tiles = group[TILES]
            self._valid = group[VALID] if self.info.has_valid else None
            self._pid = os.getpid()
        return self._tiles, self._valid

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the zarr handles (workers reopen them)."""
        state = dict(self.__dict__)
        state.update(_pid=None, _tiles=None, _valid=None)
        return state

    def __len__(self) -> int:
        """Number of tiles."""
        return self.info.num_tiles

    @property
    def chunk_tiles(self) -> int:
        """Tiles per zarr chunk."""
        return self.info.chunk_tiles

    def read(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Read tiles by index, in the given order (duplicates allowed).

        Args:
            indices: ``(B,)`` integer tile indices in ``[0, len(self))``.

        Returns:
            ``tiles`` ``(B, C, T, T)`` in the store dtype and ``valid``
            ``(B, 1, T, T)`` bool, or None when the store has no ``valid`` array.

        Raises:
            IndexError: if an index is out of range.
            DataError: naming the store and the tiles if a chunk cannot be decoded.
        """
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)  # (B,)
        n = len(self)
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            bad = indices[(indices < 0) | (indices >= n)]
            raise IndexError(f"tile index {bad.tolist()[:5]} out of range for {n} tiles")
        unique, inverse = np.unique(indices, return_inverse=True)  # sorted (U,), (B,)
        tiles, valid = self._arrays()
        if unique.size and unique[-1] - unique[0] + 1 == unique.size:
            selection: Any = slice(int(unique[0]), int(unique[-1]) + 1)
        else:
            selection = unique
        try:
            if isinstance(selection, slice):
                out_tiles = tiles[selection]
                out_valid = None if valid is None else valid[selection]
            else:
                out_tiles = tiles.get_orthogonal_selection((selection,))
                out_valid = None if valid is None else valid.get_orthogonal_selection((selection,))
        except Exception as err:  # a truncated or corrupt chunk surfaces as codec errors
            raise DataError(
                f"tile store {self.path}: cannot read tiles {unique.tolist()[:8]}"
                f"{'...' if unique.size > 8 else ''}: {type(err).__name__}: {err}"
            ) from err
        if unique.size != indices.size or not np.array_equal(unique, indices):
            out_tiles = out_tiles[inverse]
            out_valid = None if out_valid is None else out_valid[inverse]
        return out_tiles, out_valid
