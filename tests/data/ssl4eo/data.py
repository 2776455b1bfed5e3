#!/usr/bin/env python3
"""Write a tiny seeded SSL4EO-S12 tree in torchgeo's on-disk layout.

``write_ssl4eo(root, split)`` writes ``root/<split>/<7-digit location>/<timestamp>_
<timestamp>_T<tile>/B1.tif ...`` (``s2c``: 13 files with B10, ``s2a``: 12), four
timestamps per location, each band a single-band uint16 GeoTIFF at its native
resolution (10 m bands ``size`` px, 20 m bands ``size / 2``, 60 m bands ``size / 6``),
as in the real corpus. Each pixel encodes its location, season and band::

    value = 1000 * (location + 1) + 100 * season + band index (0..12) + 15 * row_block

so tests can check which location, season and band a sample came from.

Run ``python tests/data/ssl4eo/data.py OUTDIR`` to write both splits.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.transform import from_origin

BANDS_13 = ("B1", "B2", "B3", "B4", "B5", "B6", "B7", "B8", "B8A", "B9", "B10", "B11", "B12")
GSD = {"B1": 60, "B5": 20, "B6": 20, "B7": 20, "B8A": 20, "B9": 60, "B10": 60, "B11": 20, "B12": 20}
DATES = (
    ("20200323T162931_20200323T163750", "20200621T162901_20200621T164746"),
    ("20200924T162929_20200924T164434", "20201228T163711_20201228T164519"),
)
TILES = ("T15QXA", "T21KXT", "T33UUU")
CRS_CODES = ("EPSG:32615", "EPSG:32721", "EPSG:32633")


def split_bands(split: str) -> tuple[str, ...]:
    """File band names of a split, in file-list order."""
    return BANDS_13 if split == "s2c" else tuple(b for b in BANDS_13 if b != "B10")


def pixel_value(location: int, season: int, band: str) -> int:
    """The base value of every pixel of one band of one location and season."""
    return 1000 * (location + 1) + 100 * season + BANDS_13.index(band)


def write_ssl4eo(
    root: str | Path,
    split: str = "s2c",
    *,
    locations: int = 3,
    size: int = 24,
    bands: Sequence[str] | None = None,
    seasons: int = 4,
) -> Path:
    """Write ``locations`` locations of ``split``; return the split folder.

    Args:
        root: dataset root.
        split: ``s2c`` or ``s2a``.
        locations: number of location folders (0000000, 0000001, ...).
        size: 10 m side in pixels (a multiple of 6).
        bands: file band names to write (default: the split's).
        seasons: timestamp folders per location (4 in the real data).
    """
    folder = Path(root) / split
    dates = [d for pair in DATES for d in pair][:seasons]
    for loc in range(locations):
        tile = TILES[loc % len(TILES)]
        crs = CRS.from_string(CRS_CODES[loc % len(CRS_CODES)])
        origin = (500000.0 + 10000.0 * loc, 4000000.0)
        # shuffled creation order: folders must be sorted by date, not by listing
        for season in np.random.default_rng(loc).permutation(len(dates)):
            directory = folder / f"{loc:07d}" / f"{dates[season]}_{tile}"
            directory.mkdir(parents=True, exist_ok=True)
            for band in bands or split_bands(split):
                gsd = GSD.get(band, 10)
                n = size * 10 // gsd
                rows = np.repeat(np.arange(n) * 6 // n, n).reshape(n, n)  # 0..5 top to bottom
                data = (pixel_value(loc, int(season), band) + 15 * rows).astype("uint16")
                profile = {
                    "driver": "GTiff",
                    "width": n,
                    "height": n,
                    "count": 1,
                    "dtype": "uint16",
                    "crs": crs,
                    "transform": from_origin(*origin, gsd, gsd),
                }
                with rasterio.open(directory / f"{band}.tif", "w", **profile) as dst:
                    dst.write(data[None])
    return folder


def main(argv: Sequence[str]) -> int:
    """Write both splits under ``argv[0]``."""
    out = Path(argv[0] if argv else "ssl4eo_fixtures")
    write_ssl4eo(out, "s2c")
    write_ssl4eo(out, "s2a")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
