#!/usr/bin/env python3
"""Write tiny seeded Sentinel-2 fixtures in real on-disk layouts.

Three layouts, each callable from tests (writing into ``tmp_path``) or from the command
line (``python tests/data/sentinel2/data.py OUTDIR``):

* ``write_band_files``: one GeoTIFF (or JPEG 2000) per band, named like an L1C
  ``IMG_DATA`` folder (``T32UQD_20200612T103031_B02.tif``), like an L2A SAFE granule
  (``R10m/T32UQD_20200612T103031_B02_10m.tif``) or by any name template
  (``filename="s2_{band}.jp2"``), each band at its native resolution, optionally with
  its own origin shift (bounds that differ from the 10 m grid) and its own pixels.
* ``write_multiband``: one GeoTIFF holding several bands at 10 m, in a given band order.

Pixel values are smooth per-band gradients plus seeded noise, in uint16 digital numbers
(or float32 with ``dtype="float32"``), so that band order mistakes and resampling
errors show up in the numbers.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

S2_BANDS_13 = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
L2A_BANDS_12 = tuple(b for b in S2_BANDS_13 if b != "B10")
GSD = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip

TILE = "T32UQD"
DATE = "20200612T103031"
CRS_CODE = "EPSG:32632"
ORIGIN = (600000.0, 5400000.0)  # (x left, y top) in metres


def band_array(
    band: str,
    size: int,
    *,
    seed: int = 0,
    dtype: str = "uint16",
) -> np.ndarray:
    """Pixel values of ``band`` on a ``size`` x ``size`` grid (its native resolution).

    Each band has its own level (500 + 150 * band index), a diagonal gradient and
    seeded noise; values stay well inside 1..65534.
    """
    index = S2_BANDS_13.index(band)
    rng = np.random.default_rng(seed * 100 + index)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64) / max(size - 1, 1)
    values = 500.0 + 150.0 * index + 400.0 * (xx + 0.5 * yy) + rng.normal(0, 40, (size, size))
    values = np.clip(np.round(values), 1, 65534)
    return values.astype(dtype)


def _write(
    path: Path,
    data: np.ndarray,
    *,
    res: float,
    nodata: float | None,
    driver: str,
    origin: tuple[float, float] = ORIGIN,
) -> None:
    """Write a (bands, H, W) array as a georeferenced raster with top-left ``origin``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": driver,
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": CRS.from_string(CRS_CODE),
        "transform": from_origin(origin[0], origin[1], res, res),
    }
    if nodata is not None:
        profile["nodata"] = nodata
    if driver == "JP2OpenJPEG":
        profile["QUALITY"] = "100"
        profile["REVERSIBLE"] = "YES"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


def _nodata_block(size: int) -> tuple[slice, slice]:
    """Top-left quarter-size block (in a band's own pixels) set to nodata."""
    return slice(0, size // 4), slice(0, size // 4)


def write_band_files(
    root: str | Path,
    *,
    size: int = 96,
    layout: Literal["l1c", "l2a"] = "l1c",
    ext: Literal["tif", "jp2"] = "tif",
    bands: Sequence[str] = S2_BANDS_13,
    nodata: float | None = None,
    seed: int = 0,
    tile: str = TILE,
    date: str = DATE,
    filename: str | None = None,
    shifts: Mapping[str, tuple[float, float]] | None = None,
    data: Mapping[str, np.ndarray] | None = None,
) -> dict[str, Path]:
    """Write one file per band, each at its native resolution.

    Args:
        root: output folder.
        size: width/height of the 10 m bands in pixels (a multiple of 6).
        layout: ``l1c``: ``root/T.._B02.tif``; ``l2a``: ``root/R10m/T.._B02_10m.tif``
            (and ``R20m``/``R60m``).
        ext: ``tif`` (GeoTIFF) or ``jp2`` (JPEG 2000, lossless).
        bands: bands to write.
        nodata: if set, the top-left block (a quarter of the side) of every band is
            set to this value and declared as the files' nodata.
        seed: noise seed.
        tile: tile id in the file names.
        date: acquisition time in the file names.
        filename: file name template (``l1c`` layout), formatted with ``band``,
            ``tile``, ``date``, ``gsd`` and ``ext``, e.g. ``"s2_{band}.jp2"``.
        shifts: ``{band: (dx, dy)}`` metres added to that band's origin (top-left
            corner), so its bounds differ from the 10 m grid's.
        data: ``{band: (H, W) array}`` pixels to write instead of the generated ones
            (at the band's native resolution; any size).

    Returns:
        ``{band: path}`` of the files written.
    """
    if size % 6:
        raise ValueError(f"size must be a multiple of 6 (got {size})")
    root = Path(root)
    driver = "GTiff" if ext == "tif" else "JP2OpenJPEG"
    paths = {}
    for band in bands:
        gsd = GSD[band]
        n = size * 10 // gsd
        if data is not None and band in data:
            pixels = np.asarray(data[band])
        else:
            pixels = band_array(band, n, seed=seed)
            if nodata is not None:
                pixels[_nodata_block(n)] = nodata
        if filename is not None:
            name = filename.format(band=band, tile=tile, date=date, gsd=gsd, ext=ext)
            path = root / name
        elif layout == "l1c":
            path = root / f"{tile}_{date}_{band}.{ext}"
        else:
            path = root / f"R{gsd}m" / f"{tile}_{date}_{band}_{gsd}m.{ext}"
        dx, dy = (shifts or {}).get(band, (0.0, 0.0))
        origin = (ORIGIN[0] + dx, ORIGIN[1] + dy)
        _write(path, pixels[None], res=float(gsd), nodata=nodata, driver=driver, origin=origin)
        paths[band] = path
    if layout == "l2a" and "B02" in bands:
        # real L2A granules also hold the 10 m bands resampled to 20 m and 60 m: the
        # dataset must index the native 10 m file only
        for gsd in (20, 60):
            pixels = band_array("B02", size * 10 // gsd, seed=seed)
            path = root / f"R{gsd}m" / f"{tile}_{date}_B02_{gsd}m.{ext}"
            _write(path, pixels[None], res=float(gsd), nodata=nodata, driver=driver)
    return paths


def write_multiband(
    path: str | Path,
    *,
    size: int = 96,
    band_order: Sequence[str] = L2A_BANDS_12,
    nodata: float | None = None,
    nan_pixels: int = 0,
    dtype: str = "uint16",
    seed: int = 0,
) -> np.ndarray:
    """Write one multi-band GeoTIFF at 10 m with bands in ``band_order``.

    Args:
        path: output file.
        size: width/height in pixels.
        band_order: band of each raster band, in file order.
        nodata: if set, the top-left quarter-size block is set to it in every band
            and declared as the file's nodata.
        nan_pixels: number of random pixels set to NaN in band 1 (float dtypes only).
        dtype: numpy dtype name.
        seed: noise seed.

    Returns:
        The ``(len(band_order), size, size)`` array written.
    """
    data = np.stack([band_array(b, size, seed=seed, dtype=dtype) for b in band_order])
    if nodata is not None:
        data[(slice(None), *_nodata_block(size))] = nodata
    if nan_pixels:
        rng = np.random.default_rng(seed + 7)
        flat = rng.choice(size * size, nan_pixels, replace=False)
        data[0].reshape(-1)[flat] = np.nan
    _write(Path(path), data, res=10.0, nodata=nodata, driver="GTiff")
    return data


def main(argv: Sequence[str]) -> int:
    """Write every layout under ``argv[0]``."""
    out = Path(argv[0] if argv else "sentinel2_fixtures")
    write_band_files(out / "l1c")
    write_band_files(out / "l2a" / "IMG_DATA", layout="l2a", nodata=0)
    write_multiband(out / "multiband" / "tile.tif")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
