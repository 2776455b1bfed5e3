import os
import re

import numpy as np
import pytest
import rasterio
import torch
from torch.utils.data import DataLoader
from torchgeo.samplers import GridGeoSampler

from geomae.bands import L2A_BANDS
from geomae.datamodules.loaders import collate_tensors
from geomae.datasets.sentinel2 import Sentinel2Scenes, Sentinel2Tiles, band_pattern_filters
from geomae.errors import BandError, ConfigError, DataError


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


# --- band_pattern: other file names -------------------------------------------------


def _centres(ds):
    """x of the column centres and y of the row centres of a full read of ``ds`` at 10 m."""
    x, y, _ = ds.bounds
    xs = np.arange(x.start + 5.0, x.stop, 10.0)
    ys = np.arange(y.stop - 5.0, y.start, -10.0)
    return xs, ys


def _native_at(path, xs, ys, fill=0):
    """Pixel of ``path`` containing each (y, x) centre (nearest resampling), ``fill`` outside."""
    with rasterio.open(path) as src:
        data = src.read(1)
        left, top = src.transform.c, src.transform.f
        cols = np.floor((xs - left) / src.res[0]).astype(int)
        rows = np.floor((top - ys) / src.res[1]).astype(int)
    inside = ((rows >= 0) & (rows < data.shape[0]))[:, None] & (
        (cols >= 0) & (cols < data.shape[1])
    )[None, :]
    out = np.full((len(ys), len(xs)), fill, dtype=np.float32)
    r, c = np.nonzero(inside)
    out[r, c] = data[rows[r], cols[c]]
    return out, inside


def test_band_pattern_filters():
    assert Sentinel2Scenes.filename_glob == "T*_*_B02*"  # the class defaults stay
    glob_, regex = band_pattern_filters("s2_{band}.jp2")
    assert glob_ == "s2_B02.jp2"
    assert re.match(regex, "s2_B02.jp2", re.VERBOSE).span("band") == (3, 6)
    assert re.match(regex, "xs2_B02.jp2", re.VERBOSE) is None
    assert re.match(regex, "s2_B02.jp2.aux.xml", re.VERBOSE) is None
    glob_, regex = band_pattern_filters("*_{band}.tif")
    assert glob_ == "*_B02.tif"
    assert re.match(regex, "T18SVG_2016_B02.tif", re.VERBOSE).group("band") == "B02"
    assert re.match(regex, "T18SVG_2016_B02_10m.tif", re.VERBOSE) is None
    # regex characters are literal (also in torchgeo's verbose mode), ? is one character
    glob_, regex = band_pattern_filters("v1.0 (x)+#?_{band}[a].tif")
    assert glob_ == "v1.0 (x)+#?_B02[[]a].tif"
    assert re.match(regex, "v1.0 (x)+#7_B02[a].tif", re.VERBOSE)
    assert re.match(regex, "v1x0 (x)+#7_B02[a].tif", re.VERBOSE) is None


def test_band_pattern_bare_names(tmp_path, s2data):
    paths = s2data.write_band_files(
        tmp_path / "IMG_DATA", size=48, ext="jp2", filename="s2_{band}.jp2"
    )
    ds = Sentinel2Scenes(paths=tmp_path, band_pattern="s2_{band}.jp2", resampling="nearest")
    assert len(ds) == 1 and ds.bands == list(L2A_BANDS)
    assert ds.raster_files() == [str(paths[b]) for b in L2A_BANDS]  # one scene, every band's file
    image = _full(ds)["image"]
    assert image.shape == (12, 48, 48)
    for band, factor in (("B02", 1), ("B8A", 2), ("B01", 6)):
        native = s2data.band_array(band, 48 // factor).astype(np.float32)
        expected = np.kron(native, np.ones((factor, factor), np.float32))
        np.testing.assert_array_equal(image[L2A_BANDS.index(band)].numpy(), expected)
    # the B02 file itself may be given
    assert len(Sentinel2Scenes(paths=paths["B02"], band_pattern="s2_{band}.jp2")) == 1
    # without the pattern these names are not found
    with pytest.raises(DataError, match="no Sentinel-2 files found"):
        Sentinel2Scenes(paths=tmp_path)


def test_band_pattern_with_wildcard(tmp_path, s2data):
    s2data.write_band_files(tmp_path / "a", size=48, filename="sceneA_{band}.tif")
    s2data.write_band_files(tmp_path / "b", size=48, seed=1, filename="x_2016_{band}.tif")
    s2data.write_band_files(tmp_path / "c", size=48, layout="l2a")  # _B02_10m.tif: no match
    ds = Sentinel2Scenes(paths=tmp_path, band_pattern="*_{band}.tif", bands="B02,B11")
    assert sorted(os.path.basename(f) for f in ds.index.filepath) == [
        "sceneA_B02.tif",
        "x_2016_B02.tif",
    ]
    assert sorted(os.path.basename(f) for f in ds.raster_files()) == [
        "sceneA_B02.tif",
        "sceneA_B11.tif",
        "x_2016_B02.tif",
        "x_2016_B11.tif",
    ]
    # a per-scene read takes each band from its own scene's file
    one = Sentinel2Scenes(
        paths=tmp_path / "b", band_pattern="*_{band}.tif", bands="B11", resampling="nearest"
    )
    native = s2data.band_array("B11", 24, seed=1).astype(np.float32)
    np.testing.assert_array_equal(_full(one)["image"][0].numpy(), np.kron(native, np.ones((2, 2))))


@pytest.mark.parametrize(
    "pattern", ["s2_B02.jp2", "s2_{band}_{band}.jp2", "IMG_DATA/s2_{band}.jp2", "{tile}_{band}.tif"]
)
def test_band_pattern_without_a_single_band_field_is_config_error(tmp_path, s2data, pattern):
    s2data.write_band_files(tmp_path, size=48, filename="s2_{band}.jp2", bands=["B02"])
    with pytest.raises(ConfigError) as err:
        Sentinel2Scenes(paths=tmp_path, band_pattern=pattern, bands="B02")
    assert repr(pattern) in str(err.value)
    if pattern == "s2_B02.jp2":
        assert "must contain {band} exactly once" in str(err.value)


def test_band_pattern_nothing_found_names_paths_and_pattern(tmp_path, s2data):
    s2data.write_band_files(tmp_path, size=48)  # product names: no s2_*.jp2 here
    with pytest.raises(DataError) as err:
        Sentinel2Scenes(paths=[tmp_path, tmp_path / "more"], band_pattern="s2_{band}.jp2")
    message = str(err.value)
    assert message.startswith("no Sentinel-2 files found in")
    assert str(tmp_path) in message and str(tmp_path / "more") in message
    assert "s2_{band}.jp2" in message and "s2_B02.jp2" in message


def test_band_pattern_missing_band_file_is_named(tmp_path, s2data):
    paths = s2data.write_band_files(tmp_path, size=48, filename="s2_{band}.tif")
    paths["B8A"].unlink()
    with pytest.raises(
        DataError, match=r"band B8A file .*/s2_B8A\.tif \(s2_\{band\}\.tif\) does not exist"
    ):
        Sentinel2Scenes(paths=tmp_path, band_pattern="s2_{band}.tif")
    assert Sentinel2Scenes(paths=tmp_path, band_pattern="s2_{band}.tif", bands="10m").bands == [
        "B02",
        "B03",
        "B04",
        "B08",
    ]


#: Origin shifts (dx, dy) in metres of coarse bands whose bounds differ from B02's, as in
#: the Virginia scene (there 10-40 m): whole and half 20 m pixels, thirds of 60 m pixels.
SHIFTS = {
    "B05": (-20.0, 40.0),  # starts 1 px west, 2 px north of B02: overhangs left and top
    "B11": (40.0, -20.0),  # starts inside: B02's 4 left columns and 2 top rows uncovered
    "B8A": (-10.0, 0.0),  # half a 20 m pixel west (Virginia's 20 m bands)
    "B01": (20.0, -40.0),  # a third / two thirds of a 60 m pixel
    "B09": (-10.0, 20.0),  # Virginia's 60 m bands
}


def _pixel_ids(n):
    """(n, n) uint16 array whose value names its own pixel: 1 + 100 * row + col."""
    rows, cols = np.mgrid[0:n, 0:n]
    return (1 + 100 * rows + cols).astype(np.uint16)


def test_misaligned_band_bounds_are_read_on_the_b02_grid(tmp_path, s2data):
    bands = ["B02", *SHIFTS]
    gsd = {b: s2data.GSD[b] for b in bands}
    data = {b: _pixel_ids(48 * 10 // gsd[b]) for b in SHIFTS}
    paths = s2data.write_band_files(
        tmp_path, size=48, bands=bands, filename="s2_{band}.tif", shifts=SHIFTS, data=data
    )
    ds = Sentinel2Scenes(
        paths=tmp_path, band_pattern="s2_{band}.tif", bands=bands, nodata=0, resampling="nearest"
    )
    # the index (and so every sampler) uses B02's bounds, not the union with the others'
    x, y, _ = ds.bounds
    assert (x.start, y.start, x.stop, y.stop) == (600000.0, 5399520.0, 600480.0, 5400000.0)
    sample = _full(ds)
    image, valid = sample["image"].numpy(), sample["valid"][0].numpy()
    xs, ys = _centres(ds)
    covered = np.ones((48, 48), bool)
    for band in SHIFTS:
        expected, inside = _native_at(paths[band], xs, ys)
        np.testing.assert_array_equal(image[ds.bands.index(band)], expected, err_msg=band)
        covered &= inside
    np.testing.assert_array_equal(valid, covered)  # uncovered areas are nodata
    # spelled out: the top-left 10 m pixel, centre (600005, 5399995), lies in B05's pixel
    # row 2 (5400040 - 45 m), column 1 (599980 + 25 m) = id 202; in B8A's row 0, col 0
    # (599990 + 15 m); B11 does not reach it (its data starts 40 m east, 20 m south)
    c = {b: ds.bands.index(b) for b in bands}
    assert image[c["B05"], 0, 0] == 202 and image[c["B8A"], 0, 0] == 1
    assert image[c["B11"], 0, 0] == 0 and image[c["B11"], 2, 4] == 1
    # B01's first pixel (60 m, from x 600020, y 5399960) covers columns 2-7, rows 4-9
    assert (image[c["B01"], 4:10, 2:8] == 1).all() and (image[c["B01"], 4:10, 8] == 2).all()
    assert image[c["B01"], 10, 2] == 101


def test_misaligned_bands_bilinear_keeps_geographic_position(tmp_path, s2data):
    """Bilinear upsampling of a linear ramp in map coordinates is exact: any shift shows."""
    shifts = {"B05": (-20.0, 40.0), "B8A": (-10.0, 0.0), "B11": (40.0, -20.0)}

    def ramp(band):
        dx, dy = shifts[band]
        cols = 600000.0 + dx + 10.0 + 20.0 * np.arange(24)  # x of the 20 m pixel centres
        rows = 5400000.0 + dy - 10.0 - 20.0 * np.arange(24)
        return ((cols[None, :] - 599000.0) / 5 + 2 * (5401000.0 - rows[:, None]) / 5).astype(
            np.uint16
        )

    bands = ["B02", *shifts]
    s2data.write_band_files(
        tmp_path,
        size=48,
        bands=bands,
        filename="s2_{band}.tif",
        shifts=shifts,
        data={b: ramp(b) for b in shifts},
    )
    ds = Sentinel2Scenes(
        paths=tmp_path, band_pattern="s2_{band}.tif", bands=bands, resampling="bilinear"
    )
    image = _full(ds)["image"].numpy()
    xs, ys = _centres(ds)
    expected = (xs[None, :] - 599000.0) / 5 + 2 * (5401000.0 - ys[:, None]) / 5
    for band, (dx, dy) in shifts.items():
        # interior: 10 m centres with native neighbours on every side
        left, top = 600000.0 + dx, 5400000.0 + dy
        inner_x = (xs > left + 10) & (xs < left + 480 - 10)
        inner_y = (ys < top - 10) & (ys > top - 480 + 10)
        got = image[ds.bands.index(band)][np.ix_(inner_y, inner_x)]
        np.testing.assert_allclose(got, expected[np.ix_(inner_y, inner_x)], atol=0.5, err_msg=band)


def test_real_virginia_scene_with_band_pattern(virginia_scene):
    ds = Sentinel2Scenes(paths=virginia_scene, band_pattern="s2_{band}.jp2", resampling="nearest")
    assert len(ds) == 1 and ds.bands == list(L2A_BANDS)  # B10 dropped
    assert ds.crs.to_epsg() == 32618 and ds.res == (10.0, 10.0)
    x, y, _ = ds.bounds  # B02's bounds; B01 reaches y 4179480, B11 starts at x 435720
    assert (x.start, y.start, x.stop, y.stop) == (435730.0, 4159990.0, 455060.0, 4179460.0)
    x0, y1 = 440000.0, 4170000.0
    sample = ds[x0 : x0 + 640, y1 - 640 : y1]
    image = sample["image"]
    assert image.shape == (12, 64, 64) and image.dtype == torch.float32
    # L1C digital numbers (TOA reflectance x 10000) of farmland / forest / water in winter
    assert image.min() > 0 and image.max() < 12000
    medians = image.flatten(1).median(dim=1).values
    assert ((medians > 50) & (medians < 4000)).all(), medians
    # every band is its file's pixels at the right place on B02's 10 m grid
    xs = np.arange(x0 + 5.0, x0 + 640, 10.0)
    ys = np.arange(y1 - 5.0, y1 - 640, -10.0)
    for band in ("B02", "B05", "B8A", "B01", "B09", "B12"):
        expected, inside = _native_at(virginia_scene / f"s2_{band}.jp2", xs, ys)
        assert inside.all()
        np.testing.assert_array_equal(image[L2A_BANDS.index(band)].numpy(), expected, err_msg=band)
