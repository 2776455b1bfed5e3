"""BigEarthNet-S2 v1.0 dataset: band order, upsampling, multi-hot labels, splits."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.datasets.bigearthnet import (
    BIGEARTHNET_CLASSES_19,
    BIGEARTHNET_CLASSES_43,
    BigEarthNetS2,
)
from geomae.errors import BandError, DataError


def _fixture_module():
    path = Path(__file__).parents[1] / "data" / "bigearthnet" / "data.py"
    spec = importlib.util.spec_from_file_location("bigearthnet_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()


@pytest.fixture(scope="module")
def ben_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("bigearthnet")
    return root, fixture.write_bigearthnet(root)


def test_twelve_bands_upsampled_in_canonical_order(ben_root) -> None:
    root, _ = ben_root
    ds = BigEarthNetS2(root=root, split="train")
    assert ds.bands == list(L2A_BANDS)
    image = ds[0]["image"]
    assert image.shape == (12, 120, 120) and image.dtype == torch.float32
    expected = torch.tensor([fixture.value_of(b) for b in L2A_BANDS], dtype=torch.float32)
    assert torch.equal(image.amin(dim=(1, 2)), expected)
    assert torch.equal(image.amax(dim=(1, 2)), expected)
    assert ds.bands[8] == "B8A" and float(image[8, 0, 0]) == fixture.value_of("B8A")


def test_upsampling_is_spatially_aligned(tmp_path: Path) -> None:
    import rasterio

    fixture.write_bigearthnet(tmp_path)
    patch = fixture.PATCHES[0][0]
    path = tmp_path / "BigEarthNet-v1.0" / patch / f"{patch}_B01.tif"  # 20 x 20 at 60 m
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    data[:, :10, :] = 1000  # north half bright
    data[:, 10:, :] = 0
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    image = BigEarthNetS2(root=tmp_path, split="train", bands=["B01"])[0]["image"]
    assert image.shape == (1, 120, 120)
    assert float(image[0, :50].min()) == 1000.0  # rows well inside the north half
    assert float(image[0, 70:].max()) == 0.0


def test_multi_hot_19_labels(ben_root) -> None:
    root, splits = ben_root
    ds = BigEarthNetS2(root=root, split="train")
    assert ds.class_names == list(BIGEARTHNET_CLASSES_19) and len(ds.class_names) == 19
    by_name = {p: labels for p, _, labels in fixture.PATCHES}
    for index, patch in enumerate(splits["train"]):
        label = ds[index]["label"]
        assert label.shape == (19,) and label.dtype == torch.float32
        names = {ds.class_names[i] for i in label.nonzero().flatten().tolist()}
        expected = {
            "Non-irrigated arable land": "Arable land",
            "Pastures": "Pastures",
            "Coniferous forest": "Coniferous forest",
            "Mixed forest": "Mixed forest",
            "Water bodies": "Inland waters",
            "Continuous urban fabric": "Urban fabric",
        }
        assert names == {expected[n] for n in by_name[patch]}


def test_unmapped_43_class_is_dropped_in_19(ben_root) -> None:
    root, _ = ben_root
    ds = BigEarthNetS2(root=root, split="val")  # Sea and ocean + Road and rail networks
    label = ds[0]["label"]
    assert label.sum() == 1 and label[BIGEARTHNET_CLASSES_19.index("Marine waters")] == 1


def test_43_class_labels(ben_root) -> None:
    root, _ = ben_root
    ds = BigEarthNetS2(root=root, split="val", num_classes=43)
    label = ds[0]["label"]
    assert label.shape == (43,)
    names = {BIGEARTHNET_CLASSES_43[i] for i in label.nonzero().flatten().tolist()}
    assert names == {"Sea and ocean", "Road and rail networks and associated land"}


@pytest.mark.parametrize("style", ["torchgeo", "plain"])
def test_split_files(tmp_path: Path, style: str) -> None:
    splits = fixture.write_bigearthnet(tmp_path, split_style=style)
    name = "bigearthnet-test.csv" if style == "torchgeo" else "test.csv"
    for split in ("train", "val", "test"):
        ds = BigEarthNetS2(root=tmp_path, split=split, bands="rgb")
        assert ds.patches == splits[split]
        assert ds[0]["image"].shape == (3, 120, 120)
    assert BigEarthNetS2(root=tmp_path, split="test").split_file.name == name


def test_band_subset(ben_root) -> None:
    root, _ = ben_root
    ds = BigEarthNetS2(root=root, split="test", bands="B12,B8A,B01")
    assert ds.bands == ["B01", "B8A", "B12"]
    image = ds[0]["image"]
    assert [float(image[i, 5, 5]) for i in range(3)] == [fixture.value_of(b) for b in ds.bands]


def test_missing_root_and_split_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=str(tmp_path / "absent")):
        BigEarthNetS2(root=tmp_path / "absent")
    with pytest.raises(DataError, match="bigearthnet-train.csv"):
        BigEarthNetS2(root=tmp_path)


def test_missing_patch_folder_and_band_file(tmp_path: Path) -> None:
    fixture.write_bigearthnet(tmp_path)
    with (tmp_path / "bigearthnet-val.csv").open("a") as f:
        f.write("S2B_MSIL2A_20180101T000000_9_9,S1\n")
    with pytest.raises(DataError, match="S2B_MSIL2A_20180101T000000_9_9"):
        BigEarthNetS2(root=tmp_path, split="val")
    patch = fixture.PATCHES[0][0]
    band_file = tmp_path / "BigEarthNet-v1.0" / patch / f"{patch}_B8A.tif"
    band_file.unlink()
    ds = BigEarthNetS2(root=tmp_path, split="train")
    with pytest.raises(DataError, match=f"{patch}_B8A.tif"):
        ds[0]


def test_unknown_label_names_file(tmp_path: Path) -> None:
    fixture.write_bigearthnet(tmp_path)
    patch = fixture.PATCHES[0][0]
    labels = tmp_path / "BigEarthNet-v1.0" / patch / f"{patch}_labels_metadata.json"
    labels.write_text(json.dumps({"labels": ["Snow"]}))
    with pytest.raises(DataError, match="Snow"):
        BigEarthNetS2(root=tmp_path, split="train")[0]


def test_b10_rejected(ben_root) -> None:
    root, _ = ben_root
    with pytest.raises(BandError, match="B10"):
        BigEarthNetS2(root=root, bands="l1c")
