#!/usr/bin/env python3
"""Write a tiny seeded BigEarthNet-S2 v1.0 dataset in the real archive's layout.

Layout (as in ``BigEarthNet-S2-v1.0.tar.gz`` plus split CSV files)::

    root/BigEarthNet-v1.0/<patch>/<patch>_B01.tif ... _B12.tif, _B8A.tif
    root/BigEarthNet-v1.0/<patch>/<patch>_labels_metadata.json
    root/bigearthnet-<split>.csv   ("s2_patch,s1_patch" rows, torchgeo's naming)
    or root/<split>.csv            (one patch per line, the 19-class benchmark's naming)

Band files are uint16 at their native sizes (120 px at 10 m, 60 px at 20 m, 20 px at
60 m). Band ``name`` holds the constant ``value_of(name)`` (100 * (k + 1) with ``k``
the band's position in the 12-band canonical order) so that upsampling keeps it exact
and tests can read a channel's band off its value.

Run ``python tests/data/bigearthnet/data.py OUTDIR`` to write it by hand.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
from affine import Affine

L2A_BANDS_12 = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
GSD = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip

#: Labels (43-class names) of the fixture patches, in writing order, and the split each
#: patch goes to. "Road and rail networks and associated land" has no 19-class match.
PATCHES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("S2A_MSIL2A_20170613T101031_0_45", "train", ("Non-irrigated arable land", "Pastures")),
    (
        "S2A_MSIL2A_20170613T101031_0_46",
        "train",
        ("Coniferous forest", "Mixed forest", "Water bodies"),
    ),
    ("S2A_MSIL2A_20170613T101031_1_45", "train", ("Continuous urban fabric",)),
    (
        "S2B_MSIL2A_20170924T093019_2_7",
        "val",
        ("Sea and ocean", "Road and rail networks and associated land"),
    ),
    ("S2B_MSIL2A_20170924T093019_3_7", "test", ("Peatbogs", "Inland marshes")),
)


def value_of(band: str) -> int:
    """Constant value written into ``band``."""
    return 100 * (L2A_BANDS_12.index(band) + 1)


def write_bigearthnet(
    root: Path,
    *,
    split_style: Literal["torchgeo", "plain"] = "torchgeo",
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write the dataset under ``root``.

    Args:
        root: output folder (created).
        split_style: ``"torchgeo"`` writes ``bigearthnet-<split>.csv`` with
            ``s2,s1`` rows; ``"plain"`` writes ``<split>.csv`` with one patch per line.
        seed: seed of the labels file's coordinates (the pixels are constant per band).

    Returns:
        ``{split: [patch name, ...]}``.
    """
    rng = np.random.default_rng(seed)
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for patch, split, labels in PATCHES:
        folder = root / "BigEarthNet-v1.0" / patch
        folder.mkdir(parents=True, exist_ok=True)
        for band in L2A_BANDS_12:
            size = 120 * 10 // GSD[band]
            data = np.full((1, size, size), value_of(band), dtype="uint16")
            _write_tif(folder / f"{patch}_{band}.tif", data, res=GSD[band])
        ulx, uly = (float(v) for v in rng.integers(300000, 400000, 2))
        metadata = {
            "labels": list(labels),
            "coordinates": {"ulx": ulx, "uly": uly, "lrx": ulx + 1200, "lry": uly - 1200},
            "projection": "EPSG:32632",
            "tile_source": f"{patch.rsplit('_', 2)[0]}_N9999_R022_T32TNT_20170613T101031",
            "acquisition_date": "2017-06-13 10:10:31",
        }
        (folder / f"{patch}_labels_metadata.json").write_text(json.dumps(metadata))
        splits[split].append(patch)
    for split, patches in splits.items():
        if split_style == "torchgeo":
            rows = [f"{p},{p.replace('MSIL2A', 'MSIL1C')}_S1" for p in patches]
            (root / f"bigearthnet-{split}.csv").write_text("\n".join(rows) + "\n")
        else:
            (root / f"{split}.csv").write_text("\n".join(patches) + "\n")
    return splits


def _write_tif(path: Path, data: np.ndarray, *, res: float) -> None:
    """Write a (1, H, W) uint16 array as a georeferenced GeoTIFF."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[2],
        "height": data.shape[1],
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32632",
        "transform": Affine(res, 0.0, 500000.0, 0.0, -res, 5000000.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)


if __name__ == "__main__":
    write_bigearthnet(Path(sys.argv[1] if len(sys.argv) > 1 else "bigearthnet"))
