"""Readers of BigEarthNet v2 Sentinel-2 patches: the release folders and the LMDB form.

Both return each band at its native size (``B02`` 120 x 120 at 10 m, ``B05`` 60 x 60 at
20 m, ``B01`` 20 x 20 at 60 m) so that one resampling step
(:func:`geomae.datasets.bigearthnet_v2.upsample_bands`) serves both forms.

- :class:`FolderReader`: the official release,
  ``BigEarthNet-S2/<product>/<patch_id>/<patch_id>_<band>.tif``, where ``<product>`` is
  the patch id without its last two ``_``-separated fields (the patch's row and column).
- :class:`LmdbReader`: one LMDB environment (as written by the rico-hdl encoder and read
  by configilm) keyed by patch id; each value is a safetensors blob of 2-D uint16 arrays
  named by band (``B01`` ... ``B12``, ``B8A``). Sentinel-1 patches stored in the same
  environment (keys starting with ``S1``, arrays ``VV``/``VH``) are never read.
"""

from __future__ import annotations

import logging
import os
from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import lmdb
import numpy as np
import rasterio
from safetensors import SafetensorError
from safetensors.numpy import load as load_safetensors

from geomae.bands import S2_BANDS
from geomae.errors import DataError

__all__ = [
    "FolderReader",
    "LmdbReader",
    "PatchReader",
    "describe_missing",
    "native_size",
    "product_of",
]

log = logging.getLogger(__name__)

#: Open read-only LMDB environments by (process id, device, inode): py-lmdb tells an
#: environment by its file, whatever path names it.
_ENVS: dict[tuple[int, int, int], Any] = {}


def _close_inherited_envs() -> None:
    """In a forked child (a DataLoader worker), close the parent's environments.

    LMDB handles must not be used across ``fork()``, and py-lmdb refuses to open an
    environment the child still holds from its parent; the child opens its own.
    """
    for env in _ENVS.values():
        try:
            env.close()
        except lmdb.Error:  # pragma: no cover - closing a read-only handle
            pass
    _ENVS.clear()


os.register_at_fork(after_in_child=_close_inherited_envs)

#: Side of a BigEarthNet patch on the 10 m grid, in pixels.
PATCH_PX = 120


def native_size(band: str) -> int:
    """Side in pixels of ``band`` in a BigEarthNet patch (120 at 10 m, 60, 20)."""
    return PATCH_PX * 10 // S2_BANDS[band].gsd_m


def product_of(patch_id: str) -> str:
    """The product folder of a patch: its id without the trailing ``_<row>_<col>``."""
    parts = patch_id.rsplit("_", 2)
    if len(parts) != 3 or not parts[0]:
        raise DataError(
            f"BigEarthNet v2 patch id {patch_id!r} does not end in _<row>_<col> "
            "(e.g. S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_37_88)"
        )
    return parts[0]


class PatchReader(Protocol):
    """Where Sentinel-2 patches come from."""

    def missing(self, patch_ids: Sequence[str]) -> list[str]:
        """The patch ids that this source does not hold, in the given order."""
        ...

    def read(self, patch_id: str, bands: Sequence[str]) -> list[np.ndarray]:
        """The native-size 2-D arrays of ``bands`` of one patch, in ``bands`` order."""
        ...


def _check_shape(array: np.ndarray, patch_id: str, band: str, source: object) -> np.ndarray:
    """A band array must be 2-D at the band's native size."""
    side = native_size(band)
    if array.shape != (side, side):
        raise DataError(
            f"BigEarthNet v2 patch {patch_id} band {band} in {source} has shape "
            f"{tuple(array.shape)}; expected ({side}, {side}) at {S2_BANDS[band].gsd_m} m"
        )
    return array


class FolderReader:
    """Patches of the official release: one GeoTIFF per band in one folder per patch.

    Args:
        images_dir: the ``BigEarthNet-S2`` folder.
    """

    def __init__(self, images_dir: Path) -> None:
        self.images_dir = Path(images_dir)

    def __repr__(self) -> str:
        """Name the folder (messages quote it)."""
        return f"FolderReader({self.images_dir})"

    def patch_dir(self, patch_id: str) -> Path:
        """Folder of one patch."""
        return self.images_dir / product_of(patch_id) / patch_id

    def missing(self, patch_ids: Sequence[str]) -> list[str]:
        """Patch ids without a folder (one directory listing per product)."""
        by_product: dict[str, list[str]] = defaultdict(list)
        for patch_id in patch_ids:
            by_product[product_of(patch_id)].append(patch_id)
        absent: set[str] = set()
        for product, ids in by_product.items():
            folder = self.images_dir / product
            try:
                present = {e.name for e in os.scandir(folder) if e.is_dir()}
            except FileNotFoundError:
                present = set()
            absent.update(i for i in ids if i not in present)
        return [p for p in patch_ids if p in absent]

    def read(self, patch_id: str, bands: Sequence[str]) -> list[np.ndarray]:
        """Read ``bands`` of one patch at their native sizes.

        Raises:
            DataError: if a band file is missing (naming patch, band and file) or not
                at the band's native size.
        """
        folder = self.patch_dir(patch_id)
        arrays = []
        for band in bands:
            path = folder / f"{patch_id}_{band}.tif"
            if not path.is_file():
                raise DataError(
                    f"BigEarthNet v2 patch {patch_id} has no band {band}: {path} is missing"
                )
            with rasterio.open(path) as src:
                arrays.append(_check_shape(src.read(1), patch_id, band, path))  # (h, w)
        return arrays


class LmdbReader:
    """Patches stored as safetensors blobs in one LMDB environment keyed by patch id.

    The environment is opened read-only on first use in each process (DataLoader
    workers open their own; an open environment is never pickled).

    Args:
        path: the LMDB environment (a folder holding ``data.mdb``, or the file itself).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._env: Any = None
        self._pid: int | None = None

    def __repr__(self) -> str:
        """Name the environment (messages quote it)."""
        return f"LmdbReader({self.path})"

    def __getstate__(self) -> dict[str, Any]:
        """Pickle without the open environment."""
        return {**self.__dict__, "_env": None, "_pid": None}

    def _open(self) -> Any:
        """The environment of this process, opened read-only without locking.

        py-lmdb refuses to open one environment twice in a process, so the train,
        val and test datasets of one DataModule share it (:data:`_ENVS`).

        Raises:
            DataError: if the environment cannot be opened.
        """
        if self._env is None or self._pid != os.getpid():
            try:
                stat = self.path.stat()
            except OSError as err:
                raise DataError(f"cannot open the LMDB environment {self.path}: {err}") from err
            key = (os.getpid(), stat.st_dev, stat.st_ino)
            env = _ENVS.get(key)
            if env is None:
                try:
                    env = lmdb.open(
                        str(self.path),
                        subdir=self.path.is_dir(),
                        readonly=True,
                        lock=False,
                        readahead=False,
                        meminit=False,
                        max_readers=256,
                    )
                except lmdb.Error as err:
                    raise DataError(f"cannot open the LMDB environment {self.path}: {err}") from err
                _ENVS[key] = env
            self._env, self._pid = env, os.getpid()
        return self._env

    def missing(self, patch_ids: Sequence[str]) -> list[str]:
        """Patch ids that are not keys of the environment."""
        env = self._open()
        with env.begin(buffers=True) as txn:
            cursor = txn.cursor()
            return [p for p in patch_ids if not cursor.set_key(p.encode())]

    def read(self, patch_id: str, bands: Sequence[str]) -> list[np.ndarray]:
        """Decode one patch's blob and return ``bands`` at their native sizes.

        Raises:
            DataError: if the key is absent, the blob is not safetensors, or a band is
                missing (naming patch and band) or not at its native size.
        """
        env = self._open()
        with env.begin() as txn:
            blob = txn.get(patch_id.encode())
        if blob is None:
            raise DataError(f"BigEarthNet v2 patch {patch_id} is not a key of {self.path}")
        try:
            arrays = load_safetensors(blob)
        except (SafetensorError, ValueError) as err:
            raise DataError(
                f"the LMDB value of patch {patch_id} in {self.path} is not a safetensors "
                f"blob: {err}"
            ) from err
        absent = [b for b in bands if b not in arrays]
        if absent:
            raise DataError(
                f"BigEarthNet v2 patch {patch_id} in {self.path} has no band(s) {absent} "
                f"(it holds {sorted(arrays)})"
            )
        return [_check_shape(arrays[b], patch_id, b, self.path) for b in bands]


def describe_missing(patch_ids: Iterable[str], source: object, metadata: Path) -> str:
    """Message for listed patches that a source lacks."""
    ids = list(patch_ids)
    return (
        f"{metadata} lists {len(ids)} patch(es) absent from {source}, e.g. {ids[:5]}; "
        "unpack the whole release there or filter the patches (countries, split)"
    )
