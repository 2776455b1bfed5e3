import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader
from torchgeo.samplers import GridGeoSampler

from geomae.bands import L2A_BANDS
from geomae.datamodules.base import collate_tensors
from geomae.datasets.sentinel2 import Sentinel2Scenes, Sentinel2Tiles
from geomae.errors import BandError, DataError


def _full(ds):
    x, y, _ = ds.bounds
    return ds[x, y]


def test_real_sample_scene_yields_12_bands_at_10m(sample_scene):
    ds = Sentinel2Scenes(paths=sample_scene)
    assert ds.bands == list(L2A_BANDS)  # B10 dropped
    assert ds.res == (10.0, 10.0)
    assert ds.crs.to_epsg() == 32633
    x, y, _ = ds.bounds
    assert (x.stop - x.start, y.stop - y.start) == (15360.0, 7680.0)
    sample = ds[x.start : x.start + 320, y.stop - 320 : y.stop]
    image = sample["image"]
    assert image.shape == (12, 32, 32) and image.dtype == torch.float32
    assert "valid" not in sample  # no nodata configured
    # raw DN, not normalized: compare B02 with the file itself (top-left 32x32)
    with rasterio.open(sample_scene / "T33UUU_20170216T102101_B02.jp2") as src:
        b02 = src.read(1, window=((0, 32), (0, 32)))
    np.testing.assert_array_equal(image[1].numpy(), b02.astype(np.float32))
    assert image.min() > 0


@pytest.mark.parametrize(("layout", "ext"), [("l1c", "tif"), ("l2a", "tif"), ("l1c", "jp2")])
def test_band_files_layouts(tmp_path, s2data, layout, ext):
    s2data.write_band_files(tmp_path, size=48, layout=layout, ext=ext)
    ds = Sentinel2Scenes(paths=tmp_path, resampling="nearest")
    assert len(ds) == 1  # only the native 10 m B02 file is indexed
    image = _full(ds)["image"]
    assert image.shape == (12, 48, 48)
    for band, factor in (("B02", 1), ("B05", 2), ("B09", 6)):
        native = s2data.band_array(band, 48 // factor).astype(np.float32)
        expected = np.kron(native, np.ones((factor, factor), np.float32))
        np.testing.assert_array_equal(image[L2A_BANDS.index(band)].numpy(), expected)


def test_band_subset_and_bilinear_upsampling(tmp_path, s2data):
    s2data.write_band_files(tmp_path, size=48)
    ds = Sentinel2Scenes(paths=tmp_path, bands="B8A,B04")
    assert ds.bands == ["B04", "B8A"]
    image = _full(ds)["image"]
    assert image.shape == (2, 48, 48)
    native = s2data.band_array("B8A", 24).astype(np.float32)
    # bilinear upsampling keeps the mean but is not a block copy
    assert abs(image[1].mean().item() - native.mean()) < 5
    assert not np.array_equal(image[1].numpy(), np.kron(native, np.ones((2, 2), np.float32)))


def test_nodata_gives_valid_mask(tmp_path, s2data):
    s2data.write_band_files(tmp_path, size=48, nodata=0)
    ds = Sentinel2Scenes(paths=tmp_path, nodata=0)
    sample = _full(ds)
    valid = sample["valid"]
    assert valid.shape == (1, 48, 48) and valid.dtype == torch.bool
    # each band's top-left quarter-side block is nodata; B01/B09 (60 m) blocks are
    # 2 px = 12 px at 10 m, the largest, so they set the invalid region
    expected = np.ones((48, 48), bool)
    expected[:12, :12] = False
    np.testing.assert_array_equal(valid[0].numpy(), expected)
    assert (sample["image"][:, ~valid[0]] == 0).any(dim=0).all()


def test_reading_outside_data_is_invalid(tmp_path, s2data):
    s2data.write_band_files(tmp_path, size=48, nodata=0)
    ds = Sentinel2Scenes(paths=tmp_path, nodata=0)
    x, y, _ = ds.bounds
    sample = ds[x.stop - 100 : x.stop + 100, y.start : y.start + 200]
    valid = sample["valid"][0]
    assert valid[:, :10].all() and not valid[:, 10:].any()


def test_no_matching_files_names_path_and_pattern(tmp_path):
    (tmp_path / "notes.txt").write_text("no imagery")
    with pytest.raises(DataError) as err:
        Sentinel2Scenes(paths=tmp_path)
    assert str(tmp_path) in str(err.value)
    assert "T*_*_B02*.jp2|tif" in str(err.value)


def test_missing_band_file_is_named(tmp_path, s2data):
    paths = s2data.write_band_files(tmp_path, size=48)
    paths["B11"].unlink()
    with pytest.raises(DataError, match=r"band B11 file .*_B11\.tif does not exist"):
        Sentinel2Scenes(paths=tmp_path)
    assert Sentinel2Scenes(paths=tmp_path, bands="10m").bands == ["B02", "B03", "B04", "B08"]


def test_unknown_band_is_band_error(tmp_path, s2data):
    s2data.write_band_files(tmp_path, size=48)
    with pytest.raises(BandError, match="B13"):
        Sentinel2Scenes(paths=tmp_path, bands=["B02", "B13"])


def test_multiband_default_order(tmp_path, s2data):
    data = s2data.write_multiband(tmp_path / "a.tif", size=32)
    ds = Sentinel2Tiles(paths=tmp_path)
    assert ds.bands == list(L2A_BANDS)
    np.testing.assert_array_equal(_full(ds)["image"].numpy(), data.astype(np.float32))


def test_multiband_custom_order_returns_canonical_order(tmp_path, s2data):
    order = ["B08", "B04", "B03", "B02", "B10"]
    data = s2data.write_multiband(tmp_path / "t.tif", size=32, band_order=order)
    ds = Sentinel2Tiles(paths=tmp_path / "t.tif", band_order=order)
    assert ds.bands == ["B02", "B03", "B04", "B08"]  # B10 dropped, canonical order
    image = _full(ds)["image"].numpy()
    for c, band in enumerate(ds.bands):
        np.testing.assert_array_equal(image[c], data[order.index(band)].astype(np.float32))
    with pytest.raises(BandError, match="B05"):
        Sentinel2Tiles(paths=tmp_path, band_order=order, bands=["B02", "B05"])


def test_multiband_count_mismatch_names_file(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "four.tif", size=32, band_order=["B02", "B03", "B04", "B08"])
    with pytest.raises(DataError, match=r"four\.tif has 4 band\(s\) but band_order lists 12"):
        Sentinel2Tiles(paths=tmp_path)


def test_multiband_nan_is_invalid(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "f.tif", size=32, dtype="float32", nan_pixels=5)
    ds = Sentinel2Tiles(paths=tmp_path, nodata=-1)
    valid = _full(ds)["valid"]
    assert int((~valid).sum()) == 5


def test_multiband_not_found(tmp_path):
    with pytest.raises(DataError, match=r"\*\.tif\|\*\.tiff"):
        Sentinel2Tiles(paths=tmp_path)


def test_grid_reading_through_dataloader(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "a.tif", size=32, nodata=0)
    ds = Sentinel2Tiles(paths=tmp_path, nodata=0)
    loader = DataLoader(
        ds, batch_size=4, sampler=GridGeoSampler(ds, 16, 16), collate_fn=collate_tensors
    )
    batches = list(loader)
    assert len(batches) == 1
    assert set(batches[0]) == {"image", "valid"}
    assert batches[0]["image"].shape == (4, 12, 16, 16)
    assert batches[0]["valid"].shape == (4, 1, 16, 16)


def test_transforms_applied_after_valid(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "a.tif", size=32, nodata=0)
    seen = {}

    def transform(sample):
        seen.update(sample)
        return {"image": sample["image"] * 2, "valid": sample["valid"]}

    ds = Sentinel2Tiles(paths=tmp_path, nodata=0, transforms=transform)
    out = _full(ds)
    assert "valid" in seen
    assert torch.equal(out["image"], seen["image"] * 2)
