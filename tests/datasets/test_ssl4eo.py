"""SSL4EO-S12 patches in torchgeo's layout: splits, band order, seasons, windows, errors."""

import shutil

import pytest
import torch

from geomae.bands import S2_BANDS
from geomae.datasets.ssl4eo import SPLITS, SSL4EOS12Patches, find_ssl4eo_split, ssl4eo_file_name
from geomae.errors import BandError, ConfigError, DataError

SIZE = 24


def test_split_table_matches_torchgeo_layout():
    assert SPLITS["s2c"].level == "L1C" and len(SPLITS["s2c"].bands) == 13
    assert SPLITS["s2a"].level == "L2A" and len(SPLITS["s2a"].bands) == 12
    assert "B10" not in SPLITS["s2a"].bands
    assert [ssl4eo_file_name(b) for b in SPLITS["s2c"].bands] == [
        "B1.tif", "B2.tif", "B3.tif", "B4.tif", "B5.tif", "B6.tif", "B7.tif",
        "B8.tif", "B8A.tif", "B9.tif", "B10.tif", "B11.tif", "B12.tif",
    ]  # fmt: skip
    assert SPLITS["s2c"].offset == SPLITS["s2a"].offset == 0.0


@pytest.mark.parametrize(("split", "bands", "count"), [("s2c", "l1c", 13), ("s2a", "all", 12)])
def test_band_order_and_values(tmp_path, ssl4eodata, split, bands, count):
    ssl4eodata.write_ssl4eo(tmp_path, split, size=SIZE)
    ds = SSL4EOS12Patches(root=tmp_path, split=split, bands=bands)
    assert len(ds) == 3 and ds.size == SIZE and ds.split.name == split
    sample = ds[(2, 1)]
    image = sample["image"]  # (C, H, W)
    assert image.shape == (count, SIZE, SIZE) and image.dtype == torch.float32
    assert int(sample["location"]) == 2 and int(sample["season"]) == 1
    for c, band in enumerate(ds.bands):
        file_band = ssl4eo_file_name(band)[:-4]
        # row 0 of every band (coarse ones upsampled to 10 m) holds the base value
        assert image[c, 0, 0] == ssl4eodata.pixel_value(2, 1, file_band), band
    assert ds.bands == [b for b in S2_BANDS if split == "s2c" or b != "B10"]


def test_seasons_are_in_date_order(tmp_path, ssl4eodata):
    ssl4eodata.write_ssl4eo(tmp_path, "s2a", size=SIZE, locations=1)
    ds = SSL4EOS12Patches(root=tmp_path / "s2a", bands="rgb")
    names = [p.name[:15] for p in ds.seasons(0)]
    assert names == sorted(names) and len(names) == 4
    firsts = [int(ds[(0, s)]["image"][0, 0, 0]) for s in range(4)]
    assert firsts == [ssl4eodata.pixel_value(0, s, "B2") for s in range(4)]


def test_windows_and_bounds(tmp_path, ssl4eodata):
    ssl4eodata.write_ssl4eo(tmp_path, "s2c", size=SIZE, locations=1)
    ds = SSL4EOS12Patches(root=tmp_path, bands=["B02", "B05"], patch_size=12)
    full = SSL4EOS12Patches(root=tmp_path, bands=["B02", "B05"])[(0, 0)]
    window = ds[(0, 0, 12, 6)]
    assert torch.equal(window["image"], full["image"][:, 12:24, 6:18])
    xmin, ymin, xmax, ymax = full["bounds"]
    assert window["bounds"] == (xmin + 60, ymin, xmin + 180, ymin + 120)
    centred = ds[(0, 0)]
    assert torch.equal(centred["image"], full["image"][:, 6:18, 6:18])
    assert full["image"][1].unique().numel() == 6  # 20 m band on the 10 m grid, 6 row blocks
    with pytest.raises(IndexError, match="outside the 24 px patch"):
        ds[(0, 0, 13, 0)]


def test_find_split(tmp_path, ssl4eodata):
    ssl4eodata.write_ssl4eo(tmp_path, "s2c", size=SIZE, locations=1)
    assert find_ssl4eo_split(tmp_path) == (tmp_path / "s2c", "s2c")
    ssl4eodata.write_ssl4eo(tmp_path, "s2a", size=SIZE, locations=1)
    with pytest.raises(ConfigError, match=r"holds the SSL4EO-S12 splits \['s2c', 's2a'\]"):
        find_ssl4eo_split(tmp_path)
    assert find_ssl4eo_split(tmp_path, "s2a") == (tmp_path / "s2a", "s2a")
    renamed = tmp_path / "my_l1c"
    shutil.copytree(tmp_path / "s2c", renamed)
    assert find_ssl4eo_split(renamed) == (renamed, "s2c")  # B10.tif present
    with pytest.raises(DataError, match="not an SSL4EO-S12 Sentinel-2 folder"):
        find_ssl4eo_split(tmp_path / "s2c" / "0000000")
    with pytest.raises(ConfigError, match="'s1' is not a Sentinel-2 split"):
        find_ssl4eo_split(tmp_path, "s1")


def test_wrong_split_bands(tmp_path, ssl4eodata):
    ssl4eodata.write_ssl4eo(tmp_path, "s2a", size=SIZE, locations=1)
    with pytest.raises(BandError, match=r"\['B10'\] are not in SSL4EO-S12 s2a \(L2A\)"):
        SSL4EOS12Patches(root=tmp_path, split="s2a", bands="l1c")
    with pytest.raises(DataError, match="are not those of SSL4EO-S12 s2c .*is it the s2a split"):
        SSL4EOS12Patches(root=tmp_path / "s2a", split="s2c")


def test_missing_band_file_and_season_are_named(tmp_path, ssl4eodata):
    folder = ssl4eodata.write_ssl4eo(tmp_path, "s2a", size=SIZE, locations=2, seasons=3)
    ds = SSL4EOS12Patches(root=tmp_path, bands="10m")
    with pytest.raises(DataError, match=r"0000001 has 3 timestamp folder\(s\); season 3"):
        ds[(1, 3)]
    missing = ds.seasons(1)[0] / "B8.tif"
    missing.unlink()
    with pytest.raises(DataError, match=f"band B08 file {missing} does not exist"):
        ds[(1, 0)]
    assert folder.is_dir()
