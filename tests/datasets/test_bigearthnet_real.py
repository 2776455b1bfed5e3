"""Six real BigEarthNet-S2 v1 patches: the v1 reader, and the v2 reader on the same pixels.

The patches (datasets/bigearthnet_v1_sample, see its PROVENANCE.md) are read with the v1
reader; then rewritten into both BigEarthNet v2 forms (release folders + metadata.parquet,
and an LMDB of safetensors blobs of the native arrays), where the v2 reader must give the
v1 reader's images (within 1 DN: GDAL rounds its bilinear output to uint16) and labels.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import lmdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import rasterio
import torch
from safetensors.numpy import save as save_safetensors

from geomae.bands import L2A_BANDS
from geomae.datasets.bigearthnet import BIGEARTHNET_CLASSES_19, BigEarthNetS2
from geomae.datasets.bigearthnet_v2 import BigEarthNetV2S2

SAMPLE = Path(__file__).parents[2] / "datasets" / "bigearthnet_v1_sample"
PATCHES = sorted(p.name for p in SAMPLE.iterdir() if p.is_dir())
ARABLE, MIXED_AGRI = "Arable land", BIGEARTHNET_CLASSES_19[6]
#: The 19-class labels, derived by hand from each patch's 43-class JSON labels.
EXPECTED_19 = {
    "S2A_MSIL2A_20170613T101031_87_48": {ARABLE, MIXED_AGRI},
    "S2A_MSIL2A_20170617T113321_36_85": {ARABLE, "Pastures"},
    "S2A_MSIL2A_20170617T113321_4_55": {"Pastures"},
    "S2A_MSIL2A_20171221T112501_56_35": {
        "Complex cultivation patterns",
        MIXED_AGRI,
        "Broad-leaved forest",
        "Transitional woodland, shrub",
    },
    "S2B_MSIL2A_20170924T93020_69_24": {
        "Coniferous forest",
        "Mixed forest",
        "Transitional woodland, shrub",
        "Inland wetlands",
        "Inland waters",
    },
    "S2B_MSIL2A_20180204T94161_57_38": {ARABLE, "Coniferous forest", "Mixed forest"},
}


def _names(label: torch.Tensor) -> set[str]:
    return {BIGEARTHNET_CLASSES_19[i] for i in label.nonzero().flatten().tolist()}


@pytest.fixture(scope="module")
def v1(tmp_path_factory: pytest.TempPathFactory) -> BigEarthNetS2:
    root = tmp_path_factory.mktemp("ben_v1_real")
    (root / "BigEarthNet-v1.0").symlink_to(SAMPLE, target_is_directory=True)
    (root / "train.csv").write_text("\n".join(PATCHES) + "\n")
    return BigEarthNetS2(root=root, split="train")


@pytest.fixture(scope="module")
def v2_root(tmp_path_factory: pytest.TempPathFactory, v1: BigEarthNetS2) -> Path:
    """The six patches in both v2 forms; v1 patch names serve as v2 patch ids."""
    root = tmp_path_factory.mktemp("ben_v2_from_real")
    env = lmdb.open(str(root / "BigEarthNet-V2-LMDB"), map_size=64 * 1024**2)
    rows: dict[str, list] = {c: [] for c in ("patch_id", "labels", "split", "country")}
    with env.begin(write=True) as txn:
        for index, patch in enumerate(PATCHES):
            product = patch.rsplit("_", 2)[0]
            folder = root / "BigEarthNet-S2" / product / patch
            folder.mkdir(parents=True)
            arrays = {}
            for band in L2A_BANDS:
                src = SAMPLE / patch / f"{patch}_{band}.tif"
                shutil.copyfile(src, folder / f"{patch}_{band}.tif")
                with rasterio.open(src) as f:
                    arrays[band] = f.read(1)
            txn.put(patch.encode(), save_safetensors(arrays))
            rows["patch_id"].append(patch)
            rows["labels"].append(sorted(_names(v1[index]["label"])))
            rows["split"].append("train")
            rows["country"].append("Finland" if patch.startswith("S2B") else "Elsewhere")
    env.close()
    table = pa.table(
        {
            **rows,
            "labels": pa.array(rows["labels"], pa.list_(pa.string())),
            "contains_seasonal_snow": [False] * len(PATCHES),
            "contains_cloud_or_shadow": [False] * len(PATCHES),
        }
    )
    pq.write_table(table, root / "metadata.parquet")
    return root


def test_six_real_patches_native_sizes_and_values() -> None:
    assert len(PATCHES) == 6
    for patch in PATCHES:
        for band in L2A_BANDS:
            with rasterio.open(SAMPLE / patch / f"{patch}_{band}.tif") as src:
                side = {10: 120, 20: 60, 60: 20}[int(round(src.res[0]))]
                assert src.shape == (side, side) and src.dtypes[0] == "uint16", (patch, band)


def test_v1_reader_on_real_patches(v1: BigEarthNetS2) -> None:
    assert v1.patches == PATCHES
    for index, patch in enumerate(PATCHES):
        sample = v1[index]
        image = sample["image"]
        assert image.shape == (12, 120, 120) and bool(torch.isfinite(image).all())
        # L2A surface reflectance x 10000 without offset: physical values, not all dark
        assert float(image.min()) >= 0.0 and float(image.max()) < 20000.0
        assert float(image.mean()) > 100.0
        assert _names(sample["label"]) == EXPECTED_19[patch], patch


@pytest.mark.parametrize("form", ["folder", "lmdb"])
def test_v2_reader_matches_v1_on_real_pixels(v1: BigEarthNetS2, v2_root: Path, form: str) -> None:
    v2 = BigEarthNetV2S2(root=v2_root, split="train", form=form)
    assert v2.patches == PATCHES
    for index, patch in enumerate(PATCHES):
        a, b = v1[index], v2[index]
        assert torch.equal(a["label"], b["label"]), patch
        diff = (a["image"] - b["image"]).abs()  # (12, 120, 120)
        assert float(diff.max()) <= 1.0, (patch, float(diff.max()))
        # the 10 m bands are read unchanged by both
        ten = [L2A_BANDS.index(band) for band in ("B02", "B03", "B04", "B08")]
        assert float(diff[ten].max()) == 0.0, patch


def test_v2_forms_agree_exactly_on_real_pixels(v2_root: Path) -> None:
    folder = BigEarthNetV2S2(root=v2_root, form="folder", countries=["Finland"])
    store = BigEarthNetV2S2(root=v2_root, form="lmdb", countries=["Finland"])
    assert len(folder) == 2 and folder.patches == store.patches
    for i in range(len(folder)):
        assert torch.equal(folder[i]["image"], store[i]["image"])
        assert np.isfinite(folder[i]["image"].numpy()).all()
