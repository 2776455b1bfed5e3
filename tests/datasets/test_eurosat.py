"""EuroSAT MS dataset: canonical band order, labels, splits and layout errors."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.datasets.eurosat import EUROSAT_CLASSES, EUROSAT_FILE_BANDS, EuroSATMS
from geomae.errors import BandError, DataError


def _fixture_module():
    path = Path(__file__).parents[1] / "data" / "eurosat" / "data.py"
    spec = importlib.util.spec_from_file_location("eurosat_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()


@pytest.fixture(scope="module")
def eurosat_root(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("eurosat")
    written = fixture.write_eurosat(root)
    return root, written


def _band_of(value: float) -> str:
    """Read a band name off a fixture pixel value (1000 + 100 * k + noise < 50)."""
    return fixture.CANONICAL_13[int((value - 1000) // 100)]


def test_file_band_order_has_b8a_last() -> None:
    assert EUROSAT_FILE_BANDS[-1] == "B8A"
    assert fixture.FILE_BANDS == EUROSAT_FILE_BANDS


def test_twelve_bands_in_canonical_order(eurosat_root) -> None:
    root, _ = eurosat_root
    ds = EuroSATMS(root=root, split="train")
    assert ds.bands == list(L2A_BANDS)
    sample = ds[0]
    image = sample["image"]
    assert image.shape == (12, 64, 64)
    assert image.dtype == torch.float32
    found = [_band_of(float(image[i].min())) for i in range(12)]
    assert found == list(L2A_BANDS)
    assert found[8] == "B8A" and "B10" not in found
    # raw DN, not normalized: noise is within [0, 50) of the band's base value
    assert float(image[8].max()) < fixture.value_of("B8A") + 50


def test_labels_and_split_membership(eurosat_root) -> None:
    root, written = eurosat_root
    for split in ("train", "val", "test"):
        ds = EuroSATMS(root=root, split=split, bands="rgb")
        assert len(ds) == len(written[split])
        assert ds.class_names == list(EUROSAT_CLASSES)
        expected = {name: label for name, label in written[split]}
        for index in range(len(ds)):
            name = Path(ds.samples[index][0]).name
            sample = ds[index]
            assert sample["label"].dtype == torch.int64 and sample["label"].shape == ()
            assert int(sample["label"]) == expected[name]
            assert EUROSAT_CLASSES[int(sample["label"])] == name.split("_")[0]


def test_band_subset_in_canonical_order(eurosat_root) -> None:
    root, _ = eurosat_root
    ds = EuroSATMS(root=root, split="val", bands=["b8a", "B2", "B12", "B04"])
    assert ds.bands == ["B02", "B04", "B8A", "B12"]
    image = ds[0]["image"]
    assert [_band_of(float(image[i].min())) for i in range(4)] == ds.bands


def test_b10_can_be_requested(eurosat_root) -> None:
    root, _ = eurosat_root
    ds = EuroSATMS(root=root, split="test", bands="l1c")
    image = ds[0]["image"]
    assert image.shape[0] == 13
    assert _band_of(float(image[10].min())) == "B10"


def test_missing_root_names_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match=str(missing)):
        EuroSATMS(root=missing)


def test_missing_split_file_names_it(tmp_path: Path) -> None:
    fixture.write_eurosat(tmp_path, split_counts={"train": 1})
    with pytest.raises(DataError, match="eurosat-val.txt"):
        EuroSATMS(root=tmp_path, split="val")


def test_split_listing_missing_images(tmp_path: Path) -> None:
    fixture.write_eurosat(tmp_path, split_counts={"train": 1, "val": 1})
    with (tmp_path / "eurosat-train.txt").open("a") as f:
        f.write("Forest_999.jpg\n")
    with pytest.raises(DataError, match="Forest_999.tif"):
        EuroSATMS(root=tmp_path, split="train")


def test_missing_image_folder(tmp_path: Path) -> None:
    fixture.write_eurosat(tmp_path, split_counts={"train": 1})
    shutil.rmtree(tmp_path / "ds")
    with pytest.raises(DataError, match="sentinel_2/tif"):
        EuroSATMS(root=tmp_path, split="train")


def test_wrong_band_count_names_file(tmp_path: Path) -> None:
    import rasterio

    fixture.write_eurosat(tmp_path, split_counts={"train": 1})
    ds = EuroSATMS(root=tmp_path, split="train")
    path = Path(ds.samples[0][0])
    with rasterio.open(path) as src:
        profile, data = src.profile, src.read()
    profile["count"] = 3
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data[:3])
    with pytest.raises(DataError, match=path.name):
        ds[0]


def test_unknown_band_rejected(eurosat_root) -> None:
    root, _ = eurosat_root
    with pytest.raises(BandError, match="B13"):
        EuroSATMS(root=root, bands=["B02", "B13"])
