#!/usr/bin/env python3
"""Write a tiny Sentinel-2 scene with a vector and a raster land-cover layer.

Layout::

    root/IMG_DATA/T33UUU_20200615T100031_B01.tif ... _B12.tif, _B8A.tif
                                     (one GeoTIFF per band at its native resolution)
    root/landuse.gpkg                (polygons, column ``fclass``, EPSG:32633)
    root/landcover.tif               (uint8 class raster at 20 m, nodata 0)

The scene is ``WIDTH`` x ``HEIGHT`` px at 10 m (1200 m x 600 m) in EPSG:32633. Band
``name`` is constant ``value_of(name)`` except for the top-left 60 m x 60 m corner,
which is 0 (nodata) in every band. Both label layers draw horizontal stripes, so every
west-to-east strip of the scene sees every class:

* rows 0-19 (10 m px) ``farm`` / raster value 10, rows 20-39 ``forest`` / 20,
  rows 40-59 ``water`` / 30, over columns 0-109; columns 110-119 are unlabeled;
* vector only: a ``quarry`` polygon (a class not listed in ``CLASSES``) over rows 4-15,
  columns 30-49, drawn after ``farm``;
* raster only: value 99 (not a class) over the same rows and columns.

Run ``python tests/data/landcover/data.py OUTDIR`` to write it by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine

CLASSES = ("farm", "forest", "water")
CLASS_VALUES = (10, 20, 30)
BANDS_13 = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
GSD = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20,
}  # fmt: skip
WIDTH, HEIGHT = 120, 60  # pixels at 10 m
ORIGIN = (330000.0, 5822040.0)  # (x left, y top), EPSG:32633
CRS = "EPSG:32633"
SCENE = "T33UUU_20200615T100031"
STRIPES = (("farm", 0, 20), ("forest", 20, 40), ("water", 40, 60))  # (class, row0, row1)
LABELLED_COLUMNS = (0, 110)
QUARRY = (4, 16, 30, 50)  # rows 4-15, columns 30-49 (10 m px)
NODATA_CORNER = 6  # top-left 6 x 6 px at 10 m = one 60 m pixel


def value_of(band: str) -> int:
    """Constant value of ``band`` outside the nodata corner."""
    return 100 * (BANDS_13.index(band) + 1)


def pixel_box(row0: int, row1: int, col0: int, col1: int) -> shapely.Polygon:
    """Box in CRS coordinates covering 10 m pixel rows ``row0:row1``, columns ``col0:col1``."""
    x0, y0 = ORIGIN
    return shapely.box(x0 + 10 * col0, y0 - 10 * row1, x0 + 10 * col1, y0 - 10 * row0)


def write_landcover(root: Path) -> dict[str, Path]:
    """Write the scene and both label layers under ``root``.

    Returns:
        ``{"scene": IMG_DATA folder, "vector": gpkg path, "raster": tif path}``.
    """
    scene = root / "IMG_DATA"
    scene.mkdir(parents=True, exist_ok=True)
    for band in BANDS_13:
        scale = GSD[band] // 10
        data = np.full((1, HEIGHT // scale, WIDTH // scale), value_of(band), dtype="uint16")
        corner = NODATA_CORNER // scale
        data[:, :corner, :corner] = 0
        _write(scene / f"{SCENE}_{band}.tif", data, res=GSD[band], nodata=0)

    col0, col1 = LABELLED_COLUMNS
    rows = [(name, pixel_box(r0, r1, col0, col1)) for name, r0, r1 in STRIPES]
    rows.append(("quarry", pixel_box(*QUARRY)))
    frame = gpd.GeoDataFrame(
        {"osm_id": [str(i) for i in range(len(rows))], "fclass": [r[0] for r in rows]},
        geometry=[r[1] for r in rows],
        crs=CRS,
    )
    vector = root / "landuse.gpkg"
    frame.to_file(vector, driver="GPKG")

    labels = np.zeros((1, HEIGHT // 2, WIDTH // 2), dtype="uint8")  # 20 m pixels
    for (_, r0, r1), value in zip(STRIPES, CLASS_VALUES, strict=True):
        labels[0, r0 // 2 : r1 // 2, col0 // 2 : col1 // 2] = value
    q_r0, q_r1, q_c0, q_c1 = QUARRY
    labels[0, q_r0 // 2 : q_r1 // 2, q_c0 // 2 : q_c1 // 2] = 99
    raster = root / "landcover.tif"
    _write(raster, labels, res=20, nodata=0)
    return {"scene": scene, "vector": vector, "raster": raster}


def _write(path: Path, data: np.ndarray, *, res: float, nodata: float) -> None:
    """Write a (1, H, W) array as a georeferenced GeoTIFF."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": 1,
        "dtype": data.dtype.name,
        "crs": CRS,
        "transform": Affine(res, 0.0, ORIGIN[0], 0.0, -res, ORIGIN[1]),
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


if __name__ == "__main__":
    write_landcover(Path(sys.argv[1] if len(sys.argv) > 1 else "landcover"))
