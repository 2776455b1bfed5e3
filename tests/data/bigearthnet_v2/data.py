#!/usr/bin/env python3
"""Write a tiny seeded BigEarthNet v2 dataset in both forms users have.

Layout (the official release, plus the LMDB form of rico-hdl / configilm)::

    root/metadata.parquet                                       kept patches
    root/metadata_for_patches_with_snow_cloud_or_shadow.parquet snowy / cloudy patches
    root/BigEarthNet-S2/<product>/<patch_id>/<patch_id>_B01.tif ... _B12.tif, _B8A.tif
    root/Reference_Maps/<product>/<patch_id>/<patch_id>_reference_map.tif
    root/BigEarthNet-V2-LMDB/   LMDB keyed by patch id -> safetensors blob of uint16 bands,
                                plus Sentinel-1 entries (keys "S1...", arrays VV, VH)

Band files are uint16 at their native sizes (120 px at 10 m, 60 px at 20 m, 20 px at
60 m). Band ``name`` of every patch holds ``base_of(name)`` (100 * (k + 1), ``k`` the
band's position in the 12-band canonical order) plus seeded noise in ``[0, NOISE)``, so a
channel's band can be read off its value (``value // 100``) after bilinear upsampling,
and the two forms can be compared pixel by pixel. The LMDB holds the very same arrays.
Reference maps hold CORINE codes drawn from :data:`MAP_CODES` (122, roads, has no
19-class counterpart).

Run ``python tests/data/bigearthnet_v2/data.py OUTDIR`` to write it by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import rasterio
from affine import Affine
from safetensors.numpy import save as save_safetensors

L2A_BANDS_12 = (
    "B01", "B02", "B03", "B04", "B05", "B06", "B07",
    "B08", "B8A", "B09", "B11", "B12",
)  # fmt: skip
GSD = {
    "B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20,
    "B08": 10, "B8A": 20, "B09": 60, "B11": 20, "B12": 20,
}  # fmt: skip
NOISE = 50
MAP_CODES = (111, 122, 211, 312, 523)

_P1 = "S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP"
_P2 = "S2B_MSIL2A_20170924T093019_N9999_R036_T35VNJ"
_P3 = "S2A_MSIL2A_20171221T112501_N9999_R037_T29SND"

#: (patch_id, split column, country, labels, snow, cloud) of the kept patches.
PATCHES: tuple[tuple[str, str, str, tuple[str, ...], bool, bool], ...] = (
    (f"{_P1}_37_88", "train", "Austria", ("Arable land", "Pastures"), False, False),
    (f"{_P1}_37_89", "train", "Austria", ("Coniferous forest", "Mixed forest"), False, False),
    (f"{_P2}_10_11", "train", "Finland", ("Inland waters", "Inland wetlands"), False, False),
    (f"{_P2}_10_12", "validation", "Finland", ("Marine waters",), False, False),
    (f"{_P3}_5_6", "validation", "Portugal", ("Permanent crops", "Urban fabric"), False, False),
    (f"{_P3}_5_7", "test", "Portugal", ("Beaches, dunes, sands",), False, False),
    (f"{_P1}_38_90", "test", "Austria", (), False, False),
)
#: The patches of the snow/cloud table.
SNOW_CLOUD_PATCHES: tuple[tuple[str, str, str, tuple[str, ...], bool, bool], ...] = (
    (f"{_P2}_11_11", "train", "Finland", ("Coniferous forest",), True, False),
    (f"{_P1}_39_90", "train", "Austria", ("Pastures",), False, True),
    (f"{_P3}_6_6", "test", "Portugal", ("Urban fabric",), True, True),
)
COLUMNS = (
    "patch_id", "labels", "split", "country", "s1_name", "s2v1_name",
    "contains_seasonal_snow", "contains_cloud_or_shadow",
)  # fmt: skip


def base_of(band: str) -> int:
    """Base value of ``band`` (its pixels lie in ``[base, base + NOISE)``)."""
    return 100 * (L2A_BANDS_12.index(band) + 1)


def product_of(patch_id: str) -> str:
    """Product folder of a patch id."""
    return patch_id.rsplit("_", 2)[0]


def s1_name(patch_id: str) -> str:
    """A Sentinel-1 patch name paired with ``patch_id`` (stored in the LMDB, ignored)."""
    tile = product_of(patch_id).rsplit("_", 1)[1][1:]
    return f"S1B_IW_GRDH_1SDV_20170612T165809_{tile}_" + "_".join(patch_id.rsplit("_", 2)[1:])


def patch_arrays(patch_id: str, seed: int = 0) -> dict[str, np.ndarray]:
    """The native-size uint16 arrays of one patch (deterministic per patch and seed)."""
    key = sum(ord(c) * (i + 1) for i, c in enumerate(patch_id))
    rng = np.random.default_rng([seed, key])
    out = {}
    for band in L2A_BANDS_12:
        size = 120 * 10 // GSD[band]
        noise = rng.integers(0, NOISE, (size, size))
        out[band] = (base_of(band) + noise).astype("uint16")
    return out


def reference_codes(patch_id: str, seed: int = 0) -> np.ndarray:
    """The (120, 120) uint16 CORINE codes of one patch's reference map."""
    key = sum(ord(c) * (i + 1) for i, c in enumerate(patch_id))
    rng = np.random.default_rng([seed, key, 1])
    return rng.choice(np.array(MAP_CODES, dtype="uint16"), size=(120, 120))


def all_patches() -> list[str]:
    """Every patch id of both tables."""
    return [p[0] for p in PATCHES + SNOW_CLOUD_PATCHES]


def write_metadata(path: Path, rows: tuple, *, drop: tuple[str, ...] = ()) -> None:
    """Write a metadata parquet table (optionally without some columns)."""
    data = {
        "patch_id": [r[0] for r in rows],
        "labels": pa.array([list(r[3]) for r in rows], type=pa.list_(pa.string())),
        "split": [r[1] for r in rows],
        "country": [r[2] for r in rows],
        "s1_name": [s1_name(r[0]) for r in rows],
        "s2v1_name": [r[0].replace("_N9999", "").rsplit("_", 3)[0] for r in rows],
        "contains_seasonal_snow": [r[4] for r in rows],
        "contains_cloud_or_shadow": [r[5] for r in rows],
    }
    pq.write_table(pa.table({k: v for k, v in data.items() if k not in drop}), path)


def write_benv2(
    root: Path,
    *,
    form: Literal["folder", "lmdb", "both"] = "both",
    reference_maps: bool = True,
    seed: int = 0,
) -> dict[str, list[str]]:
    """Write the dataset under ``root``.

    Args:
        root: output folder (created).
        form: write the GeoTIFF folders, the LMDB, or both.
        reference_maps: write ``Reference_Maps``.
        seed: seed of the pixel noise and the maps.

    Returns:
        ``{split: [patch_id, ...]}`` of ``metadata.parquet`` (``val`` for ``validation``).
    """
    root.mkdir(parents=True, exist_ok=True)
    write_metadata(root / "metadata.parquet", PATCHES)
    write_metadata(
        root / "metadata_for_patches_with_snow_cloud_or_shadow.parquet", SNOW_CLOUD_PATCHES
    )
    ids = all_patches()
    if form in ("folder", "both"):
        for patch_id in ids:
            folder = root / "BigEarthNet-S2" / product_of(patch_id) / patch_id
            folder.mkdir(parents=True, exist_ok=True)
            for band, array in patch_arrays(patch_id, seed).items():
                write_tif(folder / f"{patch_id}_{band}.tif", array, res=GSD[band])
    if form in ("lmdb", "both"):
        env = lmdb.open(str(root / "BigEarthNet-V2-LMDB"), map_size=64 * 1024**2)
        with env.begin(write=True) as txn:
            for patch_id in ids:
                txn.put(patch_id.encode(), save_safetensors(patch_arrays(patch_id, seed)))
                s1 = {
                    "VV": np.full((120, 120), -12.5, dtype="float32"),
                    "VH": np.full((120, 120), -19.5, dtype="float32"),
                }
                txn.put(s1_name(patch_id).encode(), save_safetensors(s1))
        env.close()
    if reference_maps:
        for patch_id in ids:
            folder = root / "Reference_Maps" / product_of(patch_id) / patch_id
            folder.mkdir(parents=True, exist_ok=True)
            write_tif(
                folder / f"{patch_id}_reference_map.tif", reference_codes(patch_id, seed), res=10
            )
    splits: dict[str, list[str]] = {"train": [], "val": [], "test": []}
    for patch_id, split, *_ in PATCHES:
        splits["val" if split == "validation" else split].append(patch_id)
    return splits


def write_tif(path: Path, data: np.ndarray, *, res: float) -> None:
    """Write a (H, W) uint16 array as a georeferenced single-band GeoTIFF."""
    profile = {
        "driver": "GTiff",
        "width": data.shape[1],
        "height": data.shape[0],
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32633",
        "transform": Affine(res, 0.0, 500000.0, 0.0, -res, 5000000.0),
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data, 1)


if __name__ == "__main__":
    write_benv2(Path(sys.argv[1] if len(sys.argv) > 1 else "bigearthnet_v2"))
