"""Tiles sampled lazily from an xarray datacube (in memory or a zarr store).

Accepted cubes:

* a ``DataArray`` with dims ``(band, y, x)`` or ``(time, band, y, x)`` in any order,
  whose band coordinate holds Sentinel-2 band names in any spelling (``B02``, ``B2``,
  ``b02``, as stackstac produces);
* a ``Dataset`` whose data variables are bands, each ``(y, x)`` or ``(time, y, x)``
  (as odc-stac produces);
* a path to a zarr store holding either, opened with ``xarray.open_zarr`` without dask
  and without CF masking (raw digital numbers; ``_FillValue`` becomes ``nodata``).

Windows are read with ``isel`` on the lazily indexed array, so a DataLoader worker
reads only the pixels of its own window. The recognized dimension names are
``band``/``bands``/``channel``, ``y``/``lat``/``latitude``, ``x``/``lon``/``longitude``
and ``time``/``t``/``date``; other dimensions must have size 1.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import xarray as xr
from rasterio.crs import CRS
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from geomae.bands import canonical_band, parse_bands
from geomae.errors import BandError, DataError

__all__ = [
    "Cube",
    "CubeLike",
    "Window",
    "canonical_band_names",
    "XarrayTileDataset",
    "grid_starts",
    "open_cube",
    "to_tensor",
]

log = logging.getLogger(__name__)

CubeLike = xr.DataArray | xr.Dataset | str | Path
#: A window ``(time index, first row, first column)``.
Window = tuple[int, int, int]

_BAND_DIMS = ("band", "bands", "channel", "channels")
_Y_DIMS = ("y", "lat", "latitude")
_X_DIMS = ("x", "lon", "longitude")
_TIME_DIMS = ("time", "t", "date")


def _find_dim(dims: Sequence[str], names: Sequence[str]) -> str | None:
    for dim in dims:
        if str(dim).lower() in names:
            return str(dim)
    return None


def grid_starts(n: int, size: int, stride: int) -> list[int]:
    """First pixels of windows of ``size`` covering ``[0, n)`` with step ``stride``.

    The last window is flush with the edge, so the whole extent is covered without
    padding (it may overlap its neighbour by less than a stride).
    """
    starts = list(range(0, n - size + 1, stride))
    if starts and starts[-1] != n - size:
        starts.append(n - size)
    return starts


def to_tensor(array: np.ndarray) -> Tensor:
    """Wrap raw values as a tensor, keeping integer dtypes torch can hold.

    uint8, int16, uint16 and int32 are kept (uint16 Sentinel-2 DN stay 2 bytes per
    value through the DataLoader); every other dtype becomes float32.
    """
    if array.dtype in (np.uint8, np.int16, np.uint16, np.int32, np.float32):
        return torch.from_numpy(np.ascontiguousarray(array))
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _crs_of(obj: xr.DataArray | xr.Dataset) -> CRS | None:
    candidates: list[Any] = []
    for name in ("spatial_ref", "crs"):
        if name in obj.coords:
            attrs = obj.coords[name].attrs
            candidates += [attrs.get("crs_wkt"), attrs.get("spatial_ref")]
    candidates += [obj.attrs.get("crs_wkt"), obj.attrs.get("crs"), obj.attrs.get("epsg")]
    for value in candidates:
        if value is None:
            continue
        try:
            return CRS.from_user_input(value)
        except Exception as err:  # rasterio raises CRSError, ValueError, TypeError
            raise DataError(f"cannot interpret the datacube's CRS {value!r}: {err}") from err
    return None


class Cube:
    """A datacube seen as ``(time, band, y, x)`` with canonical band names.

    Build one with :func:`open_cube`.

    Attributes:
        bands: canonical names of the bands :meth:`read` returns, in that order.
        num_times: size of the time dimension (1 without one).
        height: rows.
        width: columns.
        crs: the cube's CRS, or None when it carries none.
        res: pixel size ``(x, y)`` in CRS units (1.0 without coordinates).
        nodata: raw value marking missing pixels, or None.
        dtype: numpy dtype of the values.
        source: the zarr path or a description, for messages and metadata.
    """

    def __init__(
        self,
        *,
        layers: list[xr.DataArray],
        band_index: list[int] | None,
        bands: list[str],
        dims: tuple[str | None, str | None, str, str],
        nodata: float | None,
        crs: CRS | None,
        source: str,
    ) -> None:
        self._layers = layers
        self._band_index = band_index
        self.bands = bands
        self._time_dim, self._band_dim, self._y_dim, self._x_dim = dims
        first = layers[0]
        self.num_times = int(first.sizes[self._time_dim]) if self._time_dim else 1
        self.height = int(first.sizes[self._y_dim])
        self.width = int(first.sizes[self._x_dim])
        self.nodata = nodata
        self.crs = crs
        self.dtype = np.dtype(first.dtype)
        self.source = source
        self._xs = self._coord(first, self._x_dim)
        self._ys = self._coord(first, self._y_dim)
        self.res = (self._step(self._xs), self._step(self._ys))

    @staticmethod
    def _coord(array: xr.DataArray, dim: str) -> np.ndarray | None:
        if dim not in array.coords:
            return None
        values = np.asarray(array.coords[dim].values, dtype=np.float64)
        return values if values.ndim == 1 else None

    @staticmethod
    def _step(coord: np.ndarray | None) -> float:
        if coord is None or coord.size < 2:
            return 1.0
        return float(abs(coord[1] - coord[0]))

    def read(self, t: int, y0: int, x0: int, height: int, width: int) -> np.ndarray:
        """Read one window of every band.

        Returns:
            ``(C, height, width)`` raw values in the cube's dtype.
        """
        where: dict[str, Any] = {
            self._y_dim: slice(y0, y0 + height),
            self._x_dim: slice(x0, x0 + width),
        }
        if self._time_dim:
            where[self._time_dim] = t
        if self._band_index is None:  # one DataArray per band
            return np.stack([np.asarray(layer.isel(where).values) for layer in self._layers])
        where[self._band_dim] = self._band_index  # type: ignore[index]
        order = [self._band_dim, self._y_dim, self._x_dim]
        return np.asarray(self._layers[0].isel(where).transpose(*order).values)  # (C, h, w)

    def bounds(self, y0: int, x0: int, height: int, width: int) -> tuple[float, ...]:
        """``(xmin, ymin, xmax, ymax)`` of a window (pixel indices without coordinates)."""
        xres, yres = self.res
        if self._xs is None:
            xmin, xmax = float(x0), float(x0 + width)
        else:
            xs = self._xs[x0 : x0 + width]
            xmin, xmax = float(xs.min()) - xres / 2, float(xs.max()) + xres / 2
        if self._ys is None:
            ymin, ymax = float(y0), float(y0 + height)
        else:
            ys = self._ys[y0 : y0 + height]
            ymin, ymax = float(ys.min()) - yres / 2, float(ys.max()) + yres / 2
        return xmin, ymin, xmax, ymax


def canonical_band_names(names: Sequence[Any], what: str) -> list[str]:
    """Canonicalize band names found in data (coordinates, variables, attributes).

    Args:
        names: band names in any spelling.
        what: where they came from, for the error message.

    Returns:
        Canonical names, in the given order.

    Raises:
        BandError: listing every unknown name, or naming duplicated bands.
    """
    canonical, unknown = [], []
    for name in names:
        try:
            canonical.append(canonical_band(str(name)))
        except BandError:
            unknown.append(str(name))
    if unknown:
        raise BandError(
            f"{what}: unknown band name(s) {unknown}; expected Sentinel-2 band names such "
            "as 'B02', 'B2', 'b02' or 'B8A'"
        )
    duplicated = sorted({b for b in canonical if canonical.count(b) > 1})
    if duplicated:
        raise BandError(f"{what}: band(s) {duplicated} appear more than once in {list(names)}")
    return canonical


def _spatial_dims(array: xr.DataArray, what: str, *, band: bool) -> tuple[Any, ...]:
    dims = [str(d) for d in array.dims]
    time_dim = _find_dim(dims, _TIME_DIMS)
    band_dim = _find_dim(dims, _BAND_DIMS) if band else None
    y_dim, x_dim = _find_dim(dims, _Y_DIMS), _find_dim(dims, _X_DIMS)
    known = {time_dim, band_dim, y_dim, x_dim}
    extra = [d for d in dims if d not in known and array.sizes[d] != 1]
    if y_dim is None or x_dim is None or (band and band_dim is None) or extra:
        layout = "(time, band, y, x) or (band, y, x)" if band else "(time, y, x) or (y, x)"
        raise DataError(f"{what}: dims {tuple(dims)} are not {layout}")
    return time_dim, band_dim, y_dim, x_dim


def _squeeze_extra(array: xr.DataArray, keep: set[str | None]) -> xr.DataArray:
    extra = [d for d in array.dims if str(d) not in keep]
    return array.isel({d: 0 for d in extra}) if extra else array


def _nodata_of(obj: xr.DataArray | xr.Dataset) -> float | None:
    candidates = [obj.attrs.get("nodata"), obj.attrs.get("_FillValue")]
    candidates.append(obj.encoding.get("_FillValue"))
    for value in candidates:
        if isinstance(value, (int, float, np.number)) and np.isfinite(float(value)):
            return float(value)
    return None


def _first_nodata(*objs: xr.DataArray | xr.Dataset) -> float | None:
    for obj in objs:
        value = _nodata_of(obj)
        if value is not None:
            return value
    return None


def open_cube(
    data: CubeLike,
    *,
    bands: str | Sequence[str] | None = None,
    nodata: float | None | Literal["auto"] = "auto",
) -> Cube:
    """Normalize a datacube to a :class:`Cube`.

    Args:
        data: a DataArray, a Dataset of band variables, or a zarr path holding either.
        bands: bands to read (a band-set name, comma string or list); None reads all
            the cube's bands. Either way they come in canonical (wavelength) order.
        nodata: raw value marking missing pixels; ``"auto"`` takes the cube's
            ``nodata`` / ``_FillValue`` attribute (None if it has none).

    Returns:
        The cube.

    Raises:
        DataError: if the path cannot be opened or the dims are not recognized.
        BandError: listing band names that are not Sentinel-2 bands, or requested
            bands the cube lacks.
    """
    source = "in-memory datacube"
    if isinstance(data, (str, Path)):
        source = str(data)
        if not Path(data).exists():
            raise DataError(f"datacube {data} does not exist")
        try:
            data = xr.open_zarr(str(data), chunks=None, mask_and_scale=False)
        except Exception as err:  # xarray / zarr raise many types for unreadable stores
            raise DataError(f"datacube {source} cannot be opened as zarr: {err}") from err
    if isinstance(data, xr.Dataset):
        return _cube_from_dataset(data, bands=bands, nodata=nodata, source=source)
    if not isinstance(data, xr.DataArray):
        raise DataError(
            f"expected an xarray DataArray, Dataset or zarr path, got {type(data).__name__}"
        )
    time_dim, band_dim, y_dim, x_dim = _spatial_dims(data, source, band=True)
    if band_dim not in data.coords:
        raise DataError(f"{source}: the {band_dim!r} dimension has no coordinate of band names")
    cube_bands = canonical_band_names(list(data.coords[band_dim].values), source)
    selected = _select(cube_bands, bands, source)
    array = _squeeze_extra(data, {time_dim, band_dim, y_dim, x_dim})
    return Cube(
        layers=[array],
        band_index=[cube_bands.index(b) for b in selected],
        bands=selected,
        dims=(time_dim, band_dim, y_dim, x_dim),
        nodata=_nodata_of(data) if nodata == "auto" else nodata,
        crs=_crs_of(data),
        source=source,
    )


def _cube_from_dataset(
    data: xr.Dataset,
    *,
    bands: str | Sequence[str] | None,
    nodata: float | None | Literal["auto"],
    source: str,
) -> Cube:
    spatial = [str(n) for n, v in data.data_vars.items() if v.ndim >= 2]
    if len(spatial) == 1 and _find_dim([str(d) for d in data[spatial[0]].dims], _BAND_DIMS):
        array = data[spatial[0]]
        array.attrs = {**data.attrs, **array.attrs}
        cube = open_cube(array, bands=bands, nodata=nodata)
        cube.source = source
        return cube
    if not spatial:
        raise DataError(f"{source}: the dataset has no 2-D data variables (bands)")
    cube_bands = canonical_band_names(spatial, f"{source} data variables")
    selected = _select(cube_bands, bands, source)
    layers = [data[spatial[cube_bands.index(b)]] for b in selected]
    time_dim, _, y_dim, x_dim = _spatial_dims(layers[0], source, band=False)
    layers = [_squeeze_extra(layer, {time_dim, y_dim, x_dim}) for layer in layers]
    shapes = {tuple(layer.shape) for layer in layers}
    if len(shapes) > 1:
        raise DataError(f"{source}: band variables have different shapes {sorted(shapes)}")
    first = data[spatial[cube_bands.index(selected[0])]]
    return Cube(
        layers=layers,
        band_index=None,
        bands=selected,
        dims=(time_dim, None, y_dim, x_dim),
        nodata=_first_nodata(first, data) if nodata == "auto" else nodata,
        crs=next((c for c in (_crs_of(first), _crs_of(data)) if c is not None), None),
        source=source,
    )


def _select(cube_bands: list[str], bands: str | Sequence[str] | None, source: str) -> list[str]:
    wanted = parse_bands(cube_bands if bands is None else bands)
    missing = [b for b in wanted if b not in cube_bands]
    if missing:
        raise BandError(f"{source}: band(s) {missing} requested but the cube has {cube_bands}")
    return wanted


class XarrayTileDataset(NonGeoDataset):
    """Square tiles read lazily from a datacube.

    With ``sampling="grid"`` index ``i`` is the ``i``-th tile of a grid over every time
    step (row-major). With ``sampling="random"`` the dataset has ``length`` items and
    index ``i`` is a window drawn from a generator seeded with ``(seed, i)``;
    :class:`geomae.samplers.RandomWindowSampler` instead passes explicit windows, fresh each epoch.
    Any :data:`Window` ``(t, row, col)`` may also be used as the index.

    Args:
        data: the datacube (see :func:`open_cube`).
        bands: bands to read; None reads all of the cube's bands.
        patch_size: tile height and width in pixels.
        sampling: ``"random"`` windows or a ``"grid"``.
        length: number of items with ``sampling="random"``.
        stride: grid step (defaults to ``patch_size``).
        rows: ``(first, stop)`` rows the windows stay inside (None: all rows); used
            for a spatial train/val split.
        seed: seed of the random windows.
        nodata: raw nodata value, or ``"auto"`` for the cube's own attribute.

    Raises:
        DataError: if the cube (or ``rows``) is smaller than ``patch_size``.
    """

    def __init__(
        self,
        data: CubeLike | Cube,
        *,
        bands: str | Sequence[str] | None = None,
        patch_size: int = 64,
        sampling: Literal["random", "grid"] = "random",
        length: int = 1000,
        stride: int | None = None,
        rows: tuple[int, int] | None = None,
        seed: int = 0,
        nodata: float | None | Literal["auto"] = "auto",
    ) -> None:
        self._reopen = (data, bands, nodata) if isinstance(data, (str, Path)) else None
        self._cube = data if isinstance(data, Cube) else open_cube(data, bands=bands, nodata=nodata)
        self.bands = list(self.cube.bands)
        self.patch_size = int(patch_size)
        self.sampling = sampling
        self.length = int(length)
        self.stride = int(stride or patch_size)
        self.seed = int(seed)
        self.rows = rows if rows is not None else (0, self.cube.height)
        span = self.rows[1] - self.rows[0]
        if span < self.patch_size or self.cube.width < self.patch_size:
            raise DataError(
                f"datacube {self.cube.source}: rows {self.rows} x {self.cube.width} columns "
                f"is smaller than the {self.patch_size}-pixel patch size"
            )
        self.with_valid = self.cube.nodata is not None or self.cube.dtype.kind == "f"
        self._grid: list[Window] = []
        if sampling == "grid":
            row_starts = grid_starts(span, self.patch_size, self.stride)
            col_starts = grid_starts(self.cube.width, self.patch_size, self.stride)
            self._grid = [
                (t, self.rows[0] + r, c)
                for t in range(self.cube.num_times)
                for r in row_starts
                for c in col_starts
            ]

    @property
    def cube(self) -> Cube:
        """The datacube (reopened from its zarr path after unpickling in a worker)."""
        if self._cube is None:
            assert self._reopen is not None
            path, bands, nodata = self._reopen
            self._cube = open_cube(path, bands=bands, nodata=nodata)
        return self._cube

    def __getstate__(self) -> dict[str, Any]:
        """Pickle a zarr-backed cube as its path; in-memory cubes travel whole."""
        state = dict(self.__dict__)
        if self._reopen is not None:
            state["_cube"] = None
        return state

    def __len__(self) -> int:
        """Grid tiles, or ``length`` random windows."""
        return len(self._grid) if self.sampling == "grid" else self.length

    def random_window(self, rng: np.random.Generator) -> Window:
        """Draw one window uniformly over time steps and positions inside ``rows``."""
        t = int(rng.integers(self.cube.num_times))
        y0 = int(rng.integers(self.rows[0], self.rows[1] - self.patch_size + 1))
        x0 = int(rng.integers(0, self.cube.width - self.patch_size + 1))
        return t, y0, x0

    def window(self, index: int | Window) -> Window:
        """The window an index stands for."""
        if isinstance(index, tuple):
            return index
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} tiles")
        if self.sampling == "grid":
            return self._grid[index]
        return self.random_window(np.random.default_rng((self.seed, int(index))))

    def __getitem__(self, index: int | Window) -> dict[str, Tensor]:
        """Read one tile.

        Returns:
            ``image`` ``(C, T, T)`` raw values (uint16 kept, floats as float32) and,
            when the cube has a nodata value or float values, ``valid`` ``(1, T, T)``
            bool (every band finite and not nodata).
        """
        t, y0, x0 = self.window(index)
        size = self.patch_size
        array = self.cube.read(t, y0, x0, size, size)  # (C, T, T)
        sample = {"image": to_tensor(array)}
        if self.with_valid:
            ok = np.isfinite(array) if array.dtype.kind == "f" else np.ones(array.shape, bool)
            if self.cube.nodata is not None:
                ok &= array != self.cube.nodata
            sample["valid"] = torch.from_numpy(ok.all(axis=0, keepdims=True))  # (1, T, T)
        return sample
