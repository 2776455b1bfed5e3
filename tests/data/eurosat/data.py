#!/usr/bin/env python3
"""Write a tiny seeded EuroSAT MS dataset in the real archive's layout.

Layout (as in ``EuroSATallBands.zip`` plus the split files torchgeo reads)::

    root/eurosat-{train,val,test}.txt     file names with a .jpg suffix, like the real ones
    root/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif

Each GeoTIFF holds 13 uint16 bands in the EuroSAT file order (B01..B12, then B8A).
Band ``name`` holds ``value_of(name)`` plus seeded noise in [0, 50): ``1000 + 100 * k``
where ``k`` is the band's position in the 13-band canonical order (B01=0, ..., B8A=8,
B09=9, B10=10, B11=11, B12=12), so tests can read a channel's band off its value.

Run ``python tests/data/eurosat/data.py OUTDIR`` to write it by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

CLASSES = (
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial",
    "Pasture", "PermanentCrop", "Residential", "River", "SeaLake",
)  # fmt: skip
FILE_BANDS = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B09", "B10", "B11", "B12", "B8A",
)  # fmt: skip
CANONICAL_13 = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B10", "B11", "B12",
)  # fmt: skip
IMAGE_DIR = Path("ds/images/remote_sensing/otherDatasets/sentinel_2/tif")
SPLIT_COUNTS = {"train": 2, "val": 1, "test": 1}  # images per class and split


def value_of(band: str) -> int:
    """Base value written into ``band`` (noise in [0, 50) is added on top)."""
    return 1000 + 100 * CANONICAL_13.index(band)


def write_eurosat(
    root: Path,
    *,
    split_counts: dict[str, int] | None = None,
    size: int = 64,
    seed: int = 0,
) -> dict[str, list[tuple[str, int]]]:
    """Write the dataset under ``root``.

    Args:
        root: output folder (created).
        split_counts: images per class for each split.
        size: patch size in pixels.
        seed: noise seed.

    Returns:
        ``{split: [(file name, class index), ...]}`` in writing order.
    """
    counts = split_counts or SPLIT_COUNTS
    rng = np.random.default_rng(seed)
    written: dict[str, list[tuple[str, int]]] = {split: [] for split in counts}
    number = 1
    for split, count in counts.items():
        for label, cls in enumerate(CLASSES):
            for _ in range(count):
                name = f"{cls}_{number}.tif"
                number += 1
                data = np.stack(
                    [value_of(band) + rng.integers(0, 50, (size, size)) for band in FILE_BANDS]
                ).astype("uint16")  # (13, H, W)
                _write_tif(root / IMAGE_DIR / cls / name, data)
                written[split].append((name, label))
    for split, items in written.items():
        lines = [name.replace(".tif", ".jpg") for name, _ in items]
        (root / f"eurosat-{split}.txt").write_text("\n".join(lines) + "\n")
    return written


def _write_tif(path: Path, data: np.ndarray) -> None:
    """Write a (13, H, W) uint16 array as a georeferenced GeoTIFF."""
    path.parent.mkdir(parents=True, exist_ok=True)
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": data.shape[0],
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": Affine(10.0, 0.0, 400000.0, 0.0, -10.0, 5800000.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


if __name__ == "__main__":
    write_eurosat(Path(sys.argv[1] if len(sys.argv) > 1 else "eurosat"))
