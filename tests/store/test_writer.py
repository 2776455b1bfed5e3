import logging

import numpy as np
import pytest
import xarray as xr
import zarr
from torchgeo.datasets import RasterDataset

from geomae.bands import L2A_BANDS
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import BandError, DataError
from geomae.store import TileStore, write_tile_store
from geomae.store.layout import ATTRS_KEY

ORIGIN_X, ORIGIN_Y = 600000.0, 5400000.0  # top-left of the tests/data/sentinel2 fixtures


class MultibandTiles(RasterDataset):
    """A plain torchgeo RasterDataset over multi-band GeoTIFFs (12 L2A bands)."""

    filename_glob = "*.tif"
    all_bands = tuple(L2A_BANDS)


class UnnamedTiles(RasterDataset):
    """A RasterDataset that does not name its channels."""

    filename_glob = "*.tif"


def _direct(ds, bounds):
    xmin, ymin, xmax, ymax = bounds
    return ds[xmin:xmax, ymin:ymax]


def test_roundtrip_equals_direct_reads(tmp_path, scene_dir):
    ds = Sentinel2Scenes(paths=scene_dir, nodata=0)
    info = write_tile_store(ds, tmp_path / "store", tile_size=32, chunk_tiles=4, max_nodata=1.0)
    store = TileStore(tmp_path / "store")
    assert info.num_tiles == len(store) == 9 and info.num_skipped == 0
    tiles, valid = store.read(np.arange(len(store)))
    assert tiles.dtype == np.uint16 and tiles.shape == (9, 12, 32, 32)
    for i, bounds in enumerate(store.bounds):
        sample = _direct(ds, bounds)
        expected = sample["image"].numpy()
        np.testing.assert_array_equal(expected, expected.round())  # integer DN
        assert tiles[i].tobytes() == expected.astype(np.uint16).tobytes()
        np.testing.assert_array_equal(valid[i], sample["valid"].numpy())
    # the 3 x 3 grid covers the 960 m extent exactly
    assert sorted(set(store.bounds[:, 0])) == [ORIGIN_X, ORIGIN_X + 320, ORIGIN_X + 640]
    assert sorted(set(store.bounds[:, 3])) == [ORIGIN_Y - 640, ORIGIN_Y - 320, ORIGIN_Y]
    assert not (tmp_path / "store.tmp").exists()


def test_plain_rasterdataset_roundtrip_and_band_subset(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "tiles" / "a.tif", size=64)
    ds = MultibandTiles(paths=tmp_path / "tiles")  # torchgeo returns float32 images
    info = write_tile_store(ds, tmp_path / "store", tile_size=32, bands="rgb", chunk_tiles=2)
    assert info.bands == ["B02", "B03", "B04"]
    assert info.dtype == "uint16"  # the files' dtype, not torchgeo's float32
    assert info.nodata is None and not info.has_valid
    store = TileStore(tmp_path / "store")
    tiles, valid = store.read(np.arange(len(store)))
    assert valid is None and len(store) == 4
    channels = [L2A_BANDS.index(b) for b in info.bands]
    for i, bounds in enumerate(store.bounds):
        expected = _direct(ds, bounds)["image"].numpy()[channels].astype(np.uint16)
        assert tiles[i].tobytes() == expected.tobytes()


def test_channels_must_be_named(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "tiles" / "a.tif", size=32, band_order=["B04", "B03"])
    ds = UnnamedTiles(paths=tmp_path / "tiles")
    with pytest.raises(BandError, match="no `bands` attribute"):
        write_tile_store(ds, tmp_path / "store", tile_size=32)
    info = write_tile_store(ds, tmp_path / "store", tile_size=32, bands=["b4", "B3"])
    assert info.bands == ["B04", "B03"]  # channel order kept
    tiles, _ = TileStore(tmp_path / "store").read(np.array([0]))
    assert tiles[0, 0].mean() > tiles[0, 1].mean()  # B04's level is above B03's in the fixture
    with pytest.raises(BandError, match="B99"):
        write_tile_store(ds, tmp_path / "other", tile_size=32, bands=["B99", "B03"])


def test_metadata_is_complete(tmp_path, scene_dir):
    ds = Sentinel2Scenes(paths=scene_dir, nodata=0)
    write_tile_store(ds, tmp_path / "store", tile_size=32, stride=32, chunk_tiles=4)
    attrs = zarr.open_group(str(tmp_path / "store"), mode="r").attrs[ATTRS_KEY]
    assert attrs["bands"] == list(L2A_BANDS)
    assert attrs["epsg"] == 32632 and "UTM zone 32N" in attrs["crs"]
    assert attrs["res"] == [10.0, 10.0]
    assert (attrs["tile_size"], attrs["stride"], attrs["chunk_tiles"]) == (32, 32, 4)
    assert attrs["dtype"] == "uint16" and attrs["nodata"] == 0.0 and attrs["max_nodata"] == 0.5
    assert attrs["num_candidates"] == 9
    assert attrs["num_tiles"] + attrs["num_skipped"] == 9
    assert attrs["has_valid"] is True
    assert len(attrs["sources"]) == 1 and attrs["sources"][0].endswith("_B02.tif")
    assert attrs["geomae_version"]
    group = zarr.open_group(str(tmp_path / "store"), mode="r")
    assert group["tiles"].chunks == (4, 12, 32, 32)
    assert group["valid"].dtype == np.bool_ and group["bounds"].dtype == np.float64

    # stats = statistics of the valid pixels of exactly the written tiles
    store = TileStore(tmp_path / "store")
    tiles, valid = store.read(np.arange(len(store)))
    mask = valid[:, 0]
    for c, band in enumerate(attrs["bands"]):
        values = tiles[:, c][mask].astype(np.float64)
        stat = attrs["stats"]["bands"][band]
        assert stat["mean"] == pytest.approx(values.mean(), rel=1e-9)
        assert stat["std"] == pytest.approx(values.std(), rel=1e-9)
        assert stat["p2"] == pytest.approx(np.percentile(values, 2))
        assert stat["p98"] == pytest.approx(np.percentile(values, 98))
    assert store.info.stats.bands["B02"].mean == attrs["stats"]["bands"]["B02"]["mean"]


def _fraction_in_nodata_block(bounds, block=240.0):
    """Share of a tile inside the fixture's top-left nodata block (240 m x 240 m)."""
    xmin, ymin, xmax, ymax = bounds
    dx = max(0.0, min(xmax, ORIGIN_X + block) - max(xmin, ORIGIN_X))
    dy = max(0.0, min(ymax, ORIGIN_Y) - max(ymin, ORIGIN_Y - block))
    return dx * dy / ((xmax - xmin) * (ymax - ymin))


@pytest.mark.parametrize("max_nodata", [0.0, 0.4, 0.5, 1.0])
def test_nodata_threshold(tmp_path, scene_dir, max_nodata):
    ds = Sentinel2Scenes(paths=scene_dir, nodata=0)
    info = write_tile_store(ds, tmp_path / "store", tile_size=16, max_nodata=max_nodata)
    # a 6 x 6 grid; fractions in the block: 1.0, 0.5, 0.5, 0.25, 0 elsewhere
    grid = [
        (ORIGIN_X + 160 * j, ORIGIN_Y - 160 * (i + 1), ORIGIN_X + 160 * (j + 1), ORIGIN_Y - 160 * i)
        for i in range(6)
        for j in range(6)
    ]
    expected = {b for b in grid if _fraction_in_nodata_block(b) <= max_nodata}
    store = TileStore(tmp_path / "store")
    assert {tuple(b) for b in store.bounds.tolist()} == expected
    assert info.num_skipped == 36 - len(expected)
    assert store.info.num_skipped == info.num_skipped
    assert {0.0: 4, 0.4: 3, 0.5: 1, 1.0: 0}[max_nodata] == info.num_skipped
    _, valid = store.read(np.arange(len(store)))
    assert (1 - valid.mean(axis=(1, 2, 3))).max() <= max_nodata


def _cube(times=2, height=40, width=48, dtype="uint16"):
    rng = np.random.default_rng(3)
    data = rng.integers(1, 5000, size=(times, 4, height, width)).astype(dtype)
    return xr.DataArray(
        data,
        dims=("time", "band", "y", "x"),
        coords={
            "time": np.arange(times),
            "band": ["B2", "B3", "B4", "B8"],  # stackstac-style spellings
            "y": 5000.0 - 10.0 * np.arange(height) - 5.0,
            "x": 300.0 + 10.0 * np.arange(width) + 5.0,
            "spatial_ref": xr.DataArray(0, attrs={"crs_wkt": "EPSG:32633"}),
        },
    )


def test_cube_roundtrip(tmp_path):
    cube = _cube()
    info = write_tile_store(cube, tmp_path / "store", tile_size=16, chunk_tiles=5)
    # rows start at 0, 16 and 24 (last flush with the edge), columns at 0, 16, 32
    assert info.num_tiles == 2 * 3 * 3 and info.num_skipped == 0
    assert info.bands == ["B02", "B03", "B04", "B08"] and info.epsg == 32633
    assert info.res == (10.0, 10.0) and info.dtype == "uint16"
    store = TileStore(tmp_path / "store")
    tiles, _ = store.read(np.arange(len(store)))
    k = 0
    for t in range(2):
        for y0 in (0, 16, 24):
            for x0 in (0, 16, 32):
                window = cube.values[t, :, y0 : y0 + 16, x0 : x0 + 16]
                np.testing.assert_array_equal(tiles[k], window)
                xmin, ymax = 300.0 + 10 * x0, 5000.0 - 10 * y0
                assert store.bounds[k].tolist() == [xmin, ymax - 160, xmin + 160, ymax]
                k += 1


def test_cube_nodata_attribute_and_float(tmp_path):
    cube = _cube(times=1, height=32, width=32)
    cube.values[0, :, :16, :16] = 0
    cube.attrs["_FillValue"] = 0
    info = write_tile_store(cube, tmp_path / "store", tile_size=16, max_nodata=0.5)
    assert info.nodata == 0.0 and info.num_skipped == 1 and info.num_tiles == 3

    floats = _cube(times=1, height=32, width=32, dtype="float64")
    floats.values[0, 1, 0, :8] = np.nan
    info = write_tile_store(floats, tmp_path / "float", tile_size=16)
    assert info.dtype == "float32" and info.has_valid and info.nodata is None
    tiles, valid = TileStore(tmp_path / "float").read(np.arange(4))
    assert tiles.dtype == np.float32
    assert valid[0, 0, 0, :8].sum() == 0 and valid[0, 0, 0, 8:].all()
    assert np.isfinite(info.stats.bands["B03"].mean)  # NaN pixels excluded


def _add_quarter(sample):
    return {**sample, "image": sample["image"] + 0.25}


def test_non_integer_floats_are_rounded_with_a_warning(tmp_path, s2data, caplog):
    s2data.write_multiband(tmp_path / "tiles" / "a.tif", size=32)
    ds = MultibandTiles(paths=tmp_path / "tiles", transforms=_add_quarter)
    with caplog.at_level(logging.WARNING, logger="geomae.store.writer"):
        info = write_tile_store(ds, tmp_path / "store", tile_size=32)
    assert info.dtype == "uint16"  # the files' dtype
    assert f"{32 * 32 * 12} valid values were not integers" in caplog.text
    store = TileStore(tmp_path / "store")
    tiles, _ = store.read(np.array([0]))
    expected = _direct(ds, store.bounds[0])["image"].numpy()
    np.testing.assert_array_equal(tiles[0], np.rint(expected).astype(np.uint16))
    info = write_tile_store(ds, tmp_path / "float", tile_size=32, dtype="float32")
    tiles, _ = TileStore(tmp_path / "float").read(np.array([0]))
    np.testing.assert_array_equal(tiles[0], expected)


def test_existing_store_and_leftover_tmp(tmp_path):
    cube = _cube(times=1, height=16, width=16)
    write_tile_store(cube, tmp_path / "store", tile_size=16)
    with pytest.raises(DataError, match="already exists"):
        write_tile_store(cube, tmp_path / "store", tile_size=16)
    (tmp_path / "again.tmp").mkdir()
    (tmp_path / "again.tmp" / "junk").write_text("from a killed run")
    write_tile_store(cube, tmp_path / "again", tile_size=16)
    assert not (tmp_path / "again.tmp").exists() and len(TileStore(tmp_path / "again")) == 1
    info = write_tile_store(cube, tmp_path / "store", tile_size=8, overwrite=True)
    assert info.num_tiles == 4 and len(TileStore(tmp_path / "store")) == 4


def test_bad_arguments(tmp_path):
    cube = _cube(times=1, height=16, width=16)
    with pytest.raises(DataError, match="smaller than the tile size"):
        write_tile_store(cube, tmp_path / "s", tile_size=32)
    with pytest.raises(ValueError, match="max_nodata"):
        write_tile_store(cube, tmp_path / "s", tile_size=8, max_nodata=1.5)
    with pytest.raises(ValueError, match="stride"):
        write_tile_store(cube, tmp_path / "s", tile_size=8, stride=0)
    with pytest.raises(BandError, match="B05"):
        write_tile_store(cube, tmp_path / "s", tile_size=8, bands=["B02", "B05"])


def test_scenes_in_different_crs_go_into_one_store_unwarped(tmp_path, s2data):
    import rasterio

    s2data.write_band_files(tmp_path / "a", size=96, nodata=0, seed=1)
    s2data.write_band_files(tmp_path / "b", size=96, nodata=0, seed=2, tile="T18SVG")
    for f in (tmp_path / "b").glob("*.tif"):
        with rasterio.open(f, "r+") as dst:
            dst.crs = "EPSG:32618"  # same pixels, another UTM zone
    scenes = [Sentinel2Scenes(paths=tmp_path / d, nodata=0) for d in ("a", "b")]
    info = write_tile_store(scenes, tmp_path / "store", tile_size=32, chunk_tiles=4, max_nodata=1.0)
    store = TileStore(tmp_path / "store")
    assert info.num_tiles == len(store) == 18 and info.crs is None
    tiles, _ = store.read(np.arange(len(store)))
    for k, ds in enumerate(scenes):  # each scene tiled on its own grid, not reprojected
        for i in range(9):
            expected = _direct(ds, store.bounds[9 * k + i])["image"].numpy().astype(np.uint16)
            assert tiles[9 * k + i].tobytes() == expected.tobytes()
    assert any("T18SVG" in s for s in info.sources) and any("T32UQD" in s for s in info.sources)


def test_scenes_with_other_bands_are_refused(tmp_path, s2data):
    s2data.write_band_files(tmp_path / "a", size=96)
    s2data.write_band_files(tmp_path / "b", size=96, tile="T18SVG")
    scenes = [
        Sentinel2Scenes(paths=tmp_path / "a"),
        Sentinel2Scenes(paths=tmp_path / "b", bands="rgb"),
    ]
    with pytest.raises(DataError, match="same bands"):
        write_tile_store(scenes, tmp_path / "store", tile_size=32)
    assert not (tmp_path / "store").exists()
