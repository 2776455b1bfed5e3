"""Cut a raster source into square tiles once and write them to a tile store.

Sources: any torchgeo ``GeoDataset`` (e.g. :class:`~geomae.datasets.Sentinel2Scenes`),
a patch collection with ``iter_patches()`` (SSL4EO-S12,
:class:`~geomae.datasets.ssl4eo.SSL4EOS12Patches`: every location and season, each
patch tiled on its own grid),
tiled with torchgeo's ``GridGeoSampler`` scene by scene (the last tile of a row or
column moved back flush with the data's edge instead of running past it) and read
through a DataLoader (``num_workers`` processes), or an xarray datacube (DataArray,
Dataset or zarr path, see :func:`~geomae.datasets.xarray_source.open_cube`) tiled on
its own pixel grid.

The layout is described in :mod:`geomae.store.layout`. The store is written into
``STORE.tmp`` and renamed to ``STORE`` only once complete, so a store that exists is
a finished one. Tiles whose nodata fraction exceeds ``max_nodata`` are skipped and
counted. Band statistics over the valid pixels of the written tiles are accumulated
while writing, with the streaming method of :mod:`geomae.compute_stats` (Chan merge for
mean/std, exact uint16 histogram or a reservoir for p2/p98), and stored in the
metadata.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import rasterio
import zarr
from rasterio.crs import CRS
from torch.utils.data import DataLoader
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import GridGeoSampler
from zarr.codecs import BloscCodec

import geomae
from geomae.bands import parse_bands
from geomae.datasets.ssl4eo import SSL4EOS12Patches
from geomae.datasets.xarray_source import (
    Cube,
    CubeLike,
    canonical_band_names,
    grid_starts,
    open_cube,
)
from geomae.errors import BandError, DataError
from geomae.stats_accumulator import StatsAccumulator
from geomae.store.layout import ATTRS_KEY, BOUNDS, TILES, VALID, TileStoreInfo
from geomae.store.remote import StoreLocation, check_access

__all__ = [
    "CutOptions",
    "CutResult",
    "SourceInfo",
    "begin_store",
    "combine_infos",
    "create_tile_arrays",
    "cut_tiles",
    "finish_store",
    "geo_source",
    "resolve_dtype",
    "store_info",
    "warn_rounded",
    "write_bounds",
    "write_tile_store",
]

log = logging.getLogger(__name__)

StoreDtype = Literal["auto", "uint16", "float32"]
_INTEGER_DTYPES = ("uint8", "uint16", "int16")


@dataclass
class _Batch:
    """Tiles cut from the source.

    Attributes:
        tiles: ``(B, C, T, T)`` raw values.
        valid: ``(B, 1, T, T)`` the source's own validity mask, or None.
        bounds: ``(B, 4)`` (xmin, ymin, xmax, ymax).
    """

    tiles: np.ndarray
    valid: np.ndarray | None
    bounds: np.ndarray


class _InsideGrid:
    """torchgeo's grid with the last tile of each row / column moved back inside.

    ``GridGeoSampler`` lets the last tile run past the data (padded with nodata); this
    shifts it to end at the dataset's edge instead, as the datacube grid does.
    """

    def __init__(self, grid: GridGeoSampler, dataset: GeoDataset) -> None:
        self.grid = grid
        x, y, _ = dataset.bounds
        self.xmax, self.ymax = float(x.stop), float(y.stop)

    def __len__(self) -> int:
        return len(self.grid)

    def __iter__(self) -> Iterator[tuple[slice, slice, slice]]:
        for x, y, t in self.grid:
            dx = max(0.0, x.stop - self.xmax)
            dy = max(0.0, y.stop - self.ymax)
            yield slice(x.start - dx, x.stop - dx), slice(y.start - dy, y.stop - dy), t


class _QueryReader:
    """Reads one grid query of a GeoDataset as numpy (picklable for workers)."""

    def __init__(self, dataset: GeoDataset, channels: list[int] | None) -> None:
        self.dataset = dataset
        self.channels = channels

    def __getitem__(self, query: Any) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        sample = self.dataset[query]
        if "image" not in sample:
            raise DataError(
                f"{type(self.dataset).__name__} yields no 'image' (keys {sorted(sample)}); "
                "only image datasets can be written to a tile store"
            )
        image = sample["image"].numpy()  # (C, T, T)
        if self.channels is not None:
            image = image[self.channels]
        valid = sample.get("valid")
        x, y = query[0], query[1]
        bounds = np.array([x.start, y.start, x.stop, y.stop], dtype=np.float64)
        return image, None if valid is None else valid.numpy().astype(bool), bounds


def _stack(items: list[tuple[np.ndarray, np.ndarray | None, np.ndarray]]) -> _Batch:
    shapes = {item[0].shape for item in items}
    if len(shapes) > 1:
        raise DataError(f"grid tiles came back with different shapes {sorted(shapes)}")
    valid = None
    if all(item[1] is not None for item in items):
        valid = np.stack([item[1] for item in items])  # type: ignore[misc]
    return _Batch(
        tiles=np.stack([item[0] for item in items]),
        valid=valid,
        bounds=np.stack([item[2] for item in items]),
    )


@dataclass(frozen=True)
class SourceInfo:
    """What a store records about its source (picklable: no reader attached).

    Attributes:
        bands: canonical band names, in channel order.
        crs: the tiles' CRS, or None (none, or several scenes in different CRSs).
        res: pixel size ``(x, y)``.
        dtype: dtype of the source's values (its files' dtype where known).
        nodata: raw value marking missing pixels, or None.
        sources: paths (or descriptions) of the data.
        num_candidates: grid tiles the source is cut into.
        offset: DN offset of the values.
        level: processing level (``L1C`` / ``L2A``) where known.
    """

    bands: list[str]
    crs: CRS | None
    res: tuple[float, float]
    dtype: np.dtype
    nodata: float | None
    sources: list[str]
    num_candidates: int
    offset: float = 0.0
    level: str | None = None

    @property
    def has_valid(self) -> bool:
        """Whether a store of this source has a ``valid`` array."""
        return self.nodata is not None or self.dtype.kind == "f"


@dataclass
class _Source:
    """What the writer needs from any source: its description and its tile batches."""

    info: SourceInfo
    batches: Iterator[_Batch]


def _geo_source(
    dataset: GeoDataset,
    *,
    bands: str | Sequence[str] | None,
    tile_size: int,
    stride: int,
    batch_size: int,
    num_workers: int,
    nodata: float | None | Literal["auto"],
) -> _Source:
    names = list(getattr(dataset, "bands", None) or [])
    what = f"{type(dataset).__name__} dataset"
    channels: list[int] | None = None
    if names:
        names = canonical_band_names(names, f"{what} bands")
        if bands is not None:
            wanted = parse_bands(bands)
            missing = [b for b in wanted if b not in names]
            if missing:
                raise BandError(f"band(s) {missing} requested but the {what} yields {names}")
            channels, names = [names.index(b) for b in wanted], wanted
    elif bands is None:
        raise BandError(
            f"the {what} has no `bands` attribute naming its channels; pass bands= "
            "with one Sentinel-2 band name per channel, in channel order"
        )
    else:
        names = parse_bands(bands, keep_order=True)
    sampler = _InsideGrid(GridGeoSampler(dataset, size=tile_size, stride=stride), dataset)
    loader: DataLoader[Any] = DataLoader(
        _QueryReader(dataset, channels),  # type: ignore[arg-type]
        sampler=sampler,  # type: ignore[arg-type]
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=_stack,
    )
    if nodata == "auto":
        nodata = getattr(dataset, "nodata", None)
        if nodata is None:
            nodata = _file_attr(dataset, "nodata")
    files = [str(f) for f in getattr(dataset, "files", [])]
    file_dtype = _file_attr(dataset, "dtype")
    return _Source(
        SourceInfo(
            bands=names,
            crs=dataset.crs,
            res=(float(dataset.res[0]), float(dataset.res[1])),
            dtype=np.dtype(file_dtype) if file_dtype is not None else np.dtype("float32"),
            nodata=None if nodata is None else float(nodata),
            sources=files or [repr(dataset)],
            num_candidates=len(sampler),
            offset=float(getattr(dataset, "offset", 0.0) or 0.0),
            level=getattr(dataset, "processing_level", None),
        ),
        iter(loader),
    )


def _is_patch_source(source: Any) -> bool:
    return callable(getattr(source, "iter_patches", None)) and hasattr(source, "bands")


def _patch_source(patches: Any, *, tile_size: int, stride: int, batch_size: int) -> _Source:
    """Tiles of every patch of a patch collection, each patch on its own pixel grid.

    ``patches`` has ``bands``, ``size`` (patch side), ``res``, ``dtype``, ``split``
    (with ``level`` and ``offset``) or ``offset`` / ``processing_level``, ``__len__``
    (patches per season) and ``iter_patches()`` yielding ``(image (C, S, S), crs,
    bounds, source)``.
    """
    size = int(patches.size)
    if size < tile_size:
        raise DataError(
            f"{patches!r}: patches of {size} px are smaller than the tile size {tile_size}"
        )
    starts = grid_starts(size, tile_size, stride)
    split = getattr(patches, "split", None)

    def batches() -> Iterator[_Batch]:
        tiles: list[np.ndarray] = []
        bounds: list[tuple[float, ...]] = []
        for image, _crs, (xmin, ymin, xmax, ymax), _name in patches.iter_patches():
            rx, ry = (xmax - xmin) / size, (ymax - ymin) / size
            for y0 in starts:
                for x0 in starts:
                    tiles.append(image[:, y0 : y0 + tile_size, x0 : x0 + tile_size])
                    bounds.append(
                        (
                            xmin + x0 * rx,
                            ymax - (y0 + tile_size) * ry,
                            xmin + (x0 + tile_size) * rx,
                            ymax - y0 * ry,
                        )
                    )
                    if len(tiles) == batch_size:
                        yield _Batch(np.stack(tiles), None, np.asarray(bounds))
                        tiles, bounds = [], []
        if tiles:
            yield _Batch(np.stack(tiles), None, np.asarray(bounds))

    seasons = getattr(patches, "num_seasons", 4)
    return _Source(
        SourceInfo(
            bands=list(patches.bands),
            crs=None,
            res=tuple(patches.res),  # type: ignore[arg-type]
            dtype=np.dtype(patches.dtype),
            nodata=None,
            sources=[str(getattr(patches, "root", repr(patches)))],
            num_candidates=len(patches) * seasons * len(starts) ** 2,
            offset=float(getattr(split, "offset", getattr(patches, "offset", 0.0))),
            level=getattr(split, "level", getattr(patches, "processing_level", None)),
        ),
        batches(),
    )


def _file_attr(dataset: GeoDataset, attr: Literal["nodata", "dtype"]) -> Any:
    """``nodata`` or the dtype name of the first file of a raster dataset, if any."""
    files = list(getattr(dataset, "files", []))
    if not files:
        return None
    try:
        with rasterio.open(files[0]) as src:
            return src.nodata if attr == "nodata" else src.dtypes[0]
    except rasterio.errors.RasterioIOError:
        return None


def _cube_source(cube: Cube, *, tile_size: int, stride: int, batch_size: int) -> _Source:
    if cube.height < tile_size or cube.width < tile_size:
        raise DataError(
            f"datacube {cube.source} is {cube.height} x {cube.width} pixels, smaller than "
            f"the tile size {tile_size}"
        )
    rows = grid_starts(cube.height, tile_size, stride)
    cols = grid_starts(cube.width, tile_size, stride)

    def batches() -> Iterator[_Batch]:
        tiles: list[np.ndarray] = []
        bounds: list[tuple[float, ...]] = []
        for t in range(cube.num_times):
            for y0 in rows:
                strip = cube.read(t, y0, 0, tile_size, cube.width)  # (C, T, W)
                for x0 in cols:
                    tiles.append(strip[:, :, x0 : x0 + tile_size])
                    bounds.append(cube.bounds(y0, x0, tile_size, tile_size))
                    if len(tiles) == batch_size:
                        yield _Batch(np.stack(tiles), None, np.asarray(bounds))
                        tiles, bounds = [], []
        if tiles:
            yield _Batch(np.stack(tiles), None, np.asarray(bounds))

    return _Source(
        SourceInfo(
            bands=list(cube.bands),
            crs=cube.crs,
            res=cube.res,
            dtype=cube.dtype,
            nodata=cube.nodata,
            sources=[cube.source],
            num_candidates=cube.num_times * len(rows) * len(cols),
        ),
        batches(),
    )


class _Caster:
    """Converts source values to the store dtype, counting lossy roundings."""

    def __init__(self, dtype: np.dtype, nodata: float | None) -> None:
        self.dtype = dtype
        self.fill = 0 if nodata is None else nodata
        self.rounded = 0

    def __call__(self, tiles: np.ndarray, valid: np.ndarray) -> np.ndarray:
        if tiles.dtype == self.dtype:
            return tiles
        if self.dtype.kind == "f":
            return tiles.astype(self.dtype)
        info = np.iinfo(self.dtype)
        values = np.where(np.isfinite(tiles), tiles, self.fill)
        rounded = np.clip(np.rint(values), info.min, info.max)
        self.rounded += int(np.count_nonzero((rounded != values) & valid))
        return rounded.astype(self.dtype)


def _valid_mask(tiles: np.ndarray, given: np.ndarray | None, nodata: float | None) -> np.ndarray:
    """``(B, 1, T, T)``: every band finite and not ``nodata`` (and the source's own mask)."""
    ok = np.isfinite(tiles) if tiles.dtype.kind == "f" else np.ones(tiles.shape, dtype=bool)
    if nodata is not None:
        ok &= tiles != nodata
    valid = np.asarray(ok.all(axis=1, keepdims=True), dtype=bool)  # (B, 1, T, T)
    if given is not None:
        valid &= given.reshape(valid.shape)
    return valid


class _Appender:
    """Buffers accepted tiles and appends them to the zarr arrays a full chunk at a time."""

    def __init__(self, tiles: Any, valid: Any, chunk: int) -> None:
        self.tiles, self.valid, self.chunk = tiles, valid, chunk
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.count = 0

    def add(self, tiles: np.ndarray, valid: np.ndarray) -> None:
        self.pending.append((tiles, valid))
        self.count += len(tiles)
        if sum(len(t) for t, _ in self.pending) >= self.chunk:
            self.flush(full_chunks_only=True)

    def flush(self, *, full_chunks_only: bool = False) -> None:
        if not self.pending:
            return
        tiles = np.concatenate([t for t, _ in self.pending])
        valid = np.concatenate([v for _, v in self.pending])
        cut = len(tiles) - len(tiles) % self.chunk if full_chunks_only else len(tiles)
        if cut:
            self.tiles.append(tiles[:cut])
            if self.valid is not None:
                self.valid.append(valid[:cut])
        self.pending = [(tiles[cut:], valid[cut:])] if cut < len(tiles) else []


def _is_dataset_list(source: Any) -> bool:
    return (
        isinstance(source, (list, tuple))
        and len(source) > 0
        and all(isinstance(d, GeoDataset) for d in source)
    )


def combine_infos(infos: Sequence[SourceInfo]) -> SourceInfo:
    """The description of several scenes written one after the other into one store.

    Every source must yield the same bands, resolution and dtype. Tiles keep their
    bounds in their own scene's CRS; the store's CRS is that CRS when all agree, else
    None (the tiles are still comparable pixels: 10 m Sentinel-2 grids).

    Raises:
        DataError: the sources differ in bands, resolution, dtype, nodata, DN offset or
            processing level.
    """
    first = infos[0]
    if len(infos) == 1:
        return first
    for other in infos[1:]:
        for name in ("bands", "res", "dtype", "nodata", "offset", "level"):
            if getattr(other, name) != getattr(first, name):
                raise DataError(
                    f"{other.sources[0]} has {name} {getattr(other, name)} but "
                    f"{first.sources[0]} has {getattr(first, name)}; every scene of one "
                    "tile store needs the same bands, resolution, dtype, nodata, DN offset "
                    "and processing level"
                )
    crss = {None if s.crs is None else s.crs.to_wkt() for s in infos}
    if len(crss) > 1:
        log.info(
            "%d scenes in %d CRSs: each tile's bounds are in its own scene's CRS, the store "
            "records no single CRS",
            len(infos),
            len(crss),
        )
    return SourceInfo(
        bands=first.bands,
        crs=first.crs if len(crss) == 1 else None,
        res=first.res,
        dtype=first.dtype,
        nodata=first.nodata,
        sources=[f for s in infos for f in s.sources],
        num_candidates=sum(s.num_candidates for s in infos),
        offset=first.offset,
        level=first.level,
    )


def _chain_sources(sources: list[_Source]) -> _Source:
    """Several scenes written one after the other into one store (see combine_infos)."""
    if len(sources) == 1:
        return sources[0]
    info = combine_infos([s.info for s in sources])

    def batches() -> Iterator[_Batch]:
        for source in sources:
            yield from source.batches

    return _Source(info, batches())


@dataclass(frozen=True)
class CutOptions:
    """How sources are cut into tiles and chunked.

    Attributes:
        tile_size: tile height and width in pixels.
        stride: grid step in pixels.
        max_nodata: largest fraction of invalid pixels a kept tile may have.
        chunk_tiles: tiles per zarr chunk.
    """

    tile_size: int = 64
    stride: int = 64
    max_nodata: float = 0.5
    chunk_tiles: int = 16

    def __post_init__(self) -> None:
        """Check the values.

        Raises:
            ValueError: on a non-positive tile size, stride or chunk size, or a
                ``max_nodata`` outside ``[0, 1]``.
        """
        for name in ("tile_size", "stride", "chunk_tiles"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.max_nodata <= 1.0:
            raise ValueError(f"max_nodata must be in [0, 1], got {self.max_nodata}")


@dataclass
class CutResult:
    """What :func:`cut_tiles` wrote.

    Attributes:
        num_tiles: tiles kept and written (K).
        num_skipped: grid tiles dropped over ``max_nodata``.
        rounded: valid values that were not integers and were rounded to the dtype.
        bounds: ``(K, 4)`` float64 bounds of the written tiles.
        stats: statistics of the valid pixels of the written tiles.
    """

    num_tiles: int
    num_skipped: int
    rounded: int
    bounds: np.ndarray
    stats: StatsAccumulator


def resolve_dtype(requested: StoreDtype, info: SourceInfo) -> np.dtype:
    """The store dtype: ``requested``, or for ``auto`` the source's integer dtype / float32."""
    if requested != "auto":
        return np.dtype(requested)
    if info.dtype.name in _INTEGER_DTYPES:
        return info.dtype
    return np.dtype("float32")


def create_tile_arrays(
    group: zarr.Group,
    *,
    info: SourceInfo,
    store_dtype: np.dtype,
    options: CutOptions,
    num_tiles: int = 0,
) -> tuple[Any, Any]:
    """Create the ``tiles`` (and ``valid``) arrays of :mod:`geomae.store.layout` in ``group``.

    Returns:
        ``(tiles, valid)``: ``(num_tiles, C, T, T)`` and ``(num_tiles, 1, T, T)`` arrays
        (``valid`` None when the source has no nodata and is not floating point).
    """
    n_bands, size, chunk = len(info.bands), options.tile_size, options.chunk_tiles
    tiles = group.create_array(
        TILES,
        shape=(num_tiles, n_bands, size, size),
        chunks=(chunk, n_bands, size, size),
        dtype=store_dtype,
        compressors=BloscCodec(cname="lz4", clevel=5, shuffle="shuffle"),
        fill_value=0,
        dimension_names=("tile", "band", "y", "x"),
    )
    valid = None
    if info.has_valid:
        valid = group.create_array(
            VALID,
            shape=(num_tiles, 1, size, size),
            chunks=(chunk, 1, size, size),
            dtype="bool",
            compressors=BloscCodec(cname="lz4", clevel=5, shuffle="bitshuffle"),
            fill_value=False,
            dimension_names=("tile", "band", "y", "x"),
        )
    return tiles, valid


def write_bounds(group: zarr.Group, bounds: np.ndarray) -> None:
    """Write the ``(N, 4)`` ``bounds`` array of a store."""
    group.create_array(
        BOUNDS,
        data=np.asarray(bounds, dtype=np.float64),
        chunks=(max(min(len(bounds), 65536), 1), 4),
        dimension_names=("tile", "coord"),
    )


def cut_tiles(
    batches: Iterator[_Batch],
    tiles_array: Any,
    valid_array: Any,
    *,
    info: SourceInfo,
    store_dtype: np.dtype,
    options: CutOptions,
    seed: int = 0,
) -> CutResult:
    """Keep the tiles of ``batches`` under ``max_nodata`` and append them to the arrays.

    Args:
        batches: tiles of the source, in grid order.
        tiles_array: ``(0, C, T, T)`` array to append to (:func:`create_tile_arrays`).
        valid_array: ``(0, 1, T, T)`` array, or None.
        info: the source's description.
        store_dtype: dtype of ``tiles_array``.
        options: tile size, ``max_nodata`` and chunking.
        seed: seed of the statistics' reservoir (float data).

    Raises:
        DataError: if a batch has the wrong shape.
    """
    n_bands, size = len(info.bands), options.tile_size
    appender = _Appender(tiles_array, valid_array, options.chunk_tiles)
    caster = _Caster(store_dtype, info.nodata)
    accumulator = StatsAccumulator(info.bands, flush_pixels=1 << 20, seed=seed)
    kept_bounds: list[np.ndarray] = []
    skipped = 0
    for batch in batches:
        if batch.tiles.shape[1:] != (n_bands, size, size):
            raise DataError(
                f"{info.sources[0]}: expected tiles ({n_bands}, {size}, {size}), "
                f"got {batch.tiles.shape[1:]} (bounds {batch.bounds[0].tolist()})"
            )
        valid = _valid_mask(batch.tiles, batch.valid, info.nodata)  # (B, 1, T, T)
        invalid_fraction = 1.0 - valid.mean(axis=(1, 2, 3))  # (B,)
        keep = invalid_fraction <= options.max_nodata
        skipped += int((~keep).sum())
        if not keep.any():
            continue
        tiles = caster(batch.tiles[keep], valid[keep])  # (K, C, T, T)
        appender.add(tiles, valid[keep])
        accumulator.update(tiles, valid[keep][:, 0])  # (K, C, T, T), (K, T, T)
        kept_bounds.append(batch.bounds[keep])
    appender.flush()
    bounds = np.concatenate(kept_bounds) if kept_bounds else np.zeros((0, 4))  # (K, 4)
    return CutResult(
        num_tiles=appender.count,
        num_skipped=skipped,
        rounded=caster.rounded,
        bounds=bounds.astype(np.float64),
        stats=accumulator,
    )


def warn_rounded(rounded: int, store_dtype: np.dtype) -> None:
    """Log how many valid values were rounded to fit an integer store dtype."""
    if rounded:
        log.warning(
            "%d valid values were not integers and were rounded to store them as %s "
            "(pass dtype='float32' to keep them)",
            rounded,
            store_dtype.name,
        )


def store_info(
    info: SourceInfo,
    *,
    options: CutOptions,
    store_dtype: np.dtype,
    num_tiles: int,
    num_skipped: int,
    stats: StatsAccumulator,
) -> TileStoreInfo:
    """The metadata record of a store of ``info`` with ``num_tiles`` tiles and ``stats``.

    The band statistics are left out (with a warning) when a band has no valid pixel.
    """
    band_stats = None
    if num_tiles:
        try:
            band_stats = stats.result(
                where="the written tiles",
                offset=info.offset,
                attrs={
                    "source": info.sources,
                    "nodata": info.nodata,
                    "method": "every valid pixel of the tiles written by geomae prepare",
                },
            )
        except ValueError as err:
            log.warning("band statistics not stored: %s", err)
    return TileStoreInfo(
        bands=info.bands,
        crs=None if info.crs is None else info.crs.to_wkt(),
        epsg=None if info.crs is None else info.crs.to_epsg(),
        res=info.res,
        tile_size=options.tile_size,
        stride=options.stride,
        dtype=store_dtype.name,
        num_tiles=num_tiles,
        num_skipped=num_skipped,
        nodata=info.nodata,
        max_nodata=options.max_nodata,
        chunk_tiles=options.chunk_tiles,
        has_valid=info.has_valid,
        sources=info.sources,
        stats=band_stats,
        geomae_version=geomae.__version__,
        offset=info.offset,
        processing_level=info.level,
    )


def begin_store(location: StoreLocation, *, overwrite: bool) -> StoreLocation:
    """Check that a store may be written at ``location``; return where to write it.

    A local store is written into ``STORE.tmp`` (removed first if an earlier run left
    it) and renamed by :func:`finish_store`. A remote store is written in place: one
    there without the metadata record is an unfinished one and is removed.

    Raises:
        DataError: if a finished store exists and ``overwrite`` is False.
        StorageError: if a remote location cannot be used (see
            :func:`~geomae.store.remote.check_access`).
    """
    check_access(location, for_writing=True)
    if location.is_local:
        if location.exists() and not overwrite:
            raise DataError(
                f"tile store {location} already exists; pass overwrite=True (--overwrite)"
            )
        target = location.with_suffix(".tmp")
        if target.exists():
            log.info("removing the unfinished store %s left by an earlier run", target)
            target.remove()
        return target
    if location.has_file("zarr.json"):
        finished = ATTRS_KEY in dict(location.open_group("r").attrs)
        if finished and not overwrite:
            raise DataError(
                f"tile store {location} already exists; pass overwrite=True (--overwrite)"
            )
        if not finished:
            log.info("removing the unfinished store %s left by an earlier run", location)
    location.remove()
    return location


def finish_store(
    group: zarr.Group, target: StoreLocation, location: StoreLocation, info: TileStoreInfo
) -> None:
    """Write the metadata record (last) and, for a local store, rename it into place."""
    group.attrs[ATTRS_KEY] = info.to_dict()
    if target != location:
        target.rename(location)
    log.info(
        "wrote %d tiles (%d skipped over max_nodata=%s) of bands %s to %s",
        info.num_tiles,
        info.num_skipped,
        info.max_nodata,
        info.bands,
        location,
    )


def write_tile_store(
    source: GeoDataset | Sequence[GeoDataset] | CubeLike | SSL4EOS12Patches,
    path: str | Path,
    *,
    tile_size: int = 64,
    stride: int | None = None,
    bands: str | Sequence[str] | None = None,
    max_nodata: float = 0.5,
    nodata: float | None | Literal["auto"] = "auto",
    chunk_tiles: int = 16,
    dtype: StoreDtype = "auto",
    num_workers: int = 0,
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
) -> TileStoreInfo:
    """Tile ``source`` on a regular grid and write the tiles to a zarr tile store.

    Args:
        source: a torchgeo GeoDataset, a list of them (scenes in different CRSs, each
            tiled in its own; their tiles are appended in order), an xarray
            DataArray / Dataset / zarr path, or SSL4EO-S12 patches (every season of
            every location; the store records no CRS, each tile's bounds are in its
            patch's). A source's DN ``offset`` and ``processing_level`` attributes
            (SAFE products, SSL4EO-S12 splits) are recorded, and the statistics
            describe ``DN - offset``.
        path: the store directory to create, or an fsspec URL (``s3://bucket/x.zarr``).
        tile_size: tile height and width in pixels.
        stride: grid step in pixels (defaults to ``tile_size``: no overlap).
        bands: bands to keep, in canonical order (default: all of the source's). For
            a GeoDataset without a ``bands`` attribute, the names of its channels in
            channel order.
        max_nodata: largest fraction of invalid pixels a kept tile may have.
        nodata: raw value marking missing pixels; ``"auto"`` takes the source's own
            (the dataset's ``nodata`` attribute, its files' nodata, or the cube's
            ``_FillValue``), None disables the check.
        chunk_tiles: tiles per zarr chunk.
        dtype: store dtype; ``"auto"`` keeps the source's integer dtype (uint8,
            int16, uint16: e.g. the dtype of the dataset's files even when torchgeo
            returns float32) and stores anything else as float32. Float values stored
            as integers are rounded (a warning counts the ones that changed).
        num_workers: DataLoader processes reading a GeoDataset.
        overwrite: replace an existing store at ``path``.
        storage_options: fsspec options of a URL ``path`` (e.g. s3fs ``key``,
            ``secret``, ``endpoint_url``).

    Returns:
        The metadata record written into the store.

    Raises:
        DataError: if ``path`` exists (without ``overwrite``), the source is smaller
            than a tile, or its tiles have inconsistent shapes.
        StorageError: if a URL ``path`` cannot be written (no credentials, no bucket).
        BandError: on unknown band names or bands the source lacks.
        ValueError: on a non-positive tile size, stride or chunk size, or a
            ``max_nodata`` outside ``[0, 1]``.
    """
    options = CutOptions(
        tile_size=tile_size,
        stride=tile_size if stride is None else stride,
        max_nodata=max_nodata,
        chunk_tiles=chunk_tiles,
    )
    location = StoreLocation.parse(path, storage_options)
    target = begin_store(location, overwrite=overwrite)

    if _is_patch_source(source):
        src = _patch_source(
            source, tile_size=tile_size, stride=options.stride, batch_size=chunk_tiles
        )
    elif isinstance(source, GeoDataset) or _is_dataset_list(source):
        datasets = [source] if isinstance(source, GeoDataset) else list(source)  # type: ignore[arg-type]
        src = _chain_sources(
            [
                geo_source(
                    dataset, bands=bands, options=options, num_workers=num_workers, nodata=nodata
                )
                for dataset in datasets
            ]
        )
    else:
        cube = open_cube(cast(CubeLike, source), bands=bands, nodata=nodata)
        src = _cube_source(cube, tile_size=tile_size, stride=options.stride, batch_size=chunk_tiles)

    info = src.info
    store_dtype = resolve_dtype(dtype, info)
    group = target.open_group("w")
    tiles_array, valid_array = create_tile_arrays(
        group, info=info, store_dtype=store_dtype, options=options
    )
    cut = cut_tiles(
        src.batches, tiles_array, valid_array, info=info, store_dtype=store_dtype, options=options
    )
    warn_rounded(cut.rounded, store_dtype)
    write_bounds(group, cut.bounds)
    record = store_info(
        info,
        options=options,
        store_dtype=store_dtype,
        num_tiles=cut.num_tiles,
        num_skipped=cut.num_skipped,
        stats=cut.stats,
    )
    finish_store(group, target, location, record)
    return record


def geo_source(
    dataset: GeoDataset,
    *,
    bands: str | Sequence[str] | None,
    options: CutOptions,
    num_workers: int,
    nodata: float | None | Literal["auto"],
) -> _Source:
    """A GeoDataset cut on its own grid (see :func:`write_tile_store`), read lazily."""
    return _geo_source(
        dataset,
        bands=bands,
        tile_size=options.tile_size,
        stride=options.stride,
        batch_size=options.chunk_tiles,
        num_workers=num_workers,
        nodata=nodata,
    )
