import pickle

import numpy as np
import pytest
import torch
import xarray as xr

from geomae.datasets.xarray_source import (
    XarrayTileDataset,
    grid_starts,
    open_cube,
)
from geomae.errors import BandError, DataError
from geomae.samplers import RandomWindowSampler


def _array(*, times=None, names=("B2", "B3", "B4", "B8"), height=40, width=48, dtype="uint16"):
    rng = np.random.default_rng(7)
    shape = (len(names), height, width) if times is None else (times, len(names), height, width)
    dims = ("band", "y", "x") if times is None else ("time", "band", "y", "x")
    coords = {
        "band": list(names),
        "y": 6000.0 - 10.0 * np.arange(height) - 5.0,
        "x": 500.0 + 10.0 * np.arange(width) + 5.0,
        "spatial_ref": xr.DataArray(0, attrs={"crs_wkt": "EPSG:32631"}),
    }
    if times is not None:
        coords["time"] = np.arange(times)
    return xr.DataArray(rng.integers(1, 9000, shape).astype(dtype), dims=dims, coords=coords)


def test_grid_starts_cover_the_extent():
    assert grid_starts(40, 16, 16) == [0, 16, 24]
    assert grid_starts(48, 16, 16) == [0, 16, 32]
    assert grid_starts(16, 16, 8) == [0]
    assert grid_starts(10, 16, 16) == []


def test_band_y_x_array_grid_tiles_equal_slices():
    da = _array()
    ds = XarrayTileDataset(da, patch_size=16, sampling="grid")
    assert ds.bands == ["B02", "B03", "B04", "B08"]  # canonicalized from stackstac names
    assert len(ds) == 3 * 3
    sample = ds[4]  # row 16, column 16
    assert sample["image"].dtype == torch.uint16 and sample["image"].shape == (4, 16, 16)
    np.testing.assert_array_equal(sample["image"].numpy(), da.values[:, 16:32, 16:32])
    assert "valid" not in sample  # integer cube without nodata
    assert ds.cube.crs.to_epsg() == 32631 and ds.cube.res == (10.0, 10.0)
    assert ds.cube.bounds(16, 16, 16, 16) == (660.0, 5680.0, 820.0, 5840.0)


def test_time_band_y_x_array_and_band_subset():
    da = _array(times=3).transpose("y", "band", "x", "time")  # any dim order
    ds = XarrayTileDataset(da, bands="rgb", patch_size=16, sampling="grid")
    assert ds.bands == ["B02", "B03", "B04"] and len(ds) == 3 * 9
    t, y0, x0 = ds.window(9 + 8)  # second time step, last tile (row 24, column 32)
    assert (t, y0, x0) == (1, 24, 32)
    expected = da.transpose("time", "band", "y", "x").values[1, :3, 24:40, 32:48]
    np.testing.assert_array_equal(ds[17]["image"].numpy(), expected)


def test_random_windows_are_seeded_and_inside():
    da = _array(times=2)
    ds = XarrayTileDataset(da, patch_size=16, length=50, seed=5, rows=(8, 40))
    again = XarrayTileDataset(da, patch_size=16, length=50, seed=5, rows=(8, 40))
    windows = [ds.window(i) for i in range(50)]
    assert windows == [again.window(i) for i in range(50)]
    assert windows != [XarrayTileDataset(da, patch_size=16, seed=6).window(i) for i in range(50)]
    assert {w[0] for w in windows} == {0, 1}
    assert all(8 <= y0 <= 24 and 0 <= x0 <= 32 for _, y0, x0 in windows)
    t, y0, x0 = windows[3]
    np.testing.assert_array_equal(
        ds[3]["image"].numpy(), da.values[t, :, y0 : y0 + 16, x0 : x0 + 16]
    )
    with pytest.raises(IndexError):
        ds[50]


def test_dataset_of_band_variables_with_nodata():
    da = _array(names=("b04", "b03", "b02"), height=32, width=32)
    da.values[:, :4, :4] = 0
    cube = da.to_dataset(dim="band")  # odc-stac style: one variable per band
    for name in cube.data_vars:
        cube[name].attrs["nodata"] = 0
    ds = XarrayTileDataset(cube, patch_size=16, sampling="grid")
    assert ds.bands == ["B02", "B03", "B04"] and ds.cube.nodata == 0.0
    sample = ds[0]
    np.testing.assert_array_equal(sample["image"][0].numpy(), da.values[2, :16, :16])  # B02
    valid = sample["valid"]
    assert valid.shape == (1, 16, 16) and valid.dtype == torch.bool
    assert not valid[0, :4, :4].any() and valid.sum() == 256 - 16


def test_zarr_path_matches_memory_and_pickles(tmp_path):
    da = _array(times=2, dtype="uint16")
    da.name = "reflectance"
    da.to_dataset().to_zarr(tmp_path / "cube.zarr")
    mem = XarrayTileDataset(da, patch_size=16, sampling="grid")
    disk = XarrayTileDataset(tmp_path / "cube.zarr", patch_size=16, sampling="grid")
    assert disk.bands == mem.bands and len(disk) == len(mem)
    for i in (0, 7, 17):
        np.testing.assert_array_equal(disk[i]["image"].numpy(), mem[i]["image"].numpy())
    assert disk[0]["image"].dtype == torch.uint16  # no CF masking to float
    clone = pickle.loads(pickle.dumps(disk))
    assert clone._cube is None  # reopened from the path on first use
    np.testing.assert_array_equal(clone[5]["image"].numpy(), mem[5]["image"].numpy())


def test_float_cube_valid_from_nan():
    da = _array(height=16, width=16, dtype="float32")
    da.values[1, 0, :5] = np.nan
    sample = XarrayTileDataset(da, patch_size=16, sampling="grid")[0]
    assert sample["image"].dtype == torch.float32
    assert sample["valid"][0, 0, :5].sum() == 0 and sample["valid"].sum() == 256 - 5


def test_unknown_band_names_are_listed():
    with pytest.raises(BandError, match=r"unknown band name\(s\) \['NIRx', 'B99'\]"):
        open_cube(_array(names=("B02", "NIRx", "B99")))
    cube = _array().to_dataset(dim="band")
    cube["SCL"] = cube["B2"]
    with pytest.raises(BandError, match=r"\['SCL'\]"):
        open_cube(cube)
    with pytest.raises(BandError, match=r"\['B02'\] appear more than once"):
        open_cube(_array(names=("B2", "b02")))
    with pytest.raises(BandError, match=r"band\(s\) \['B05'\] requested"):
        open_cube(_array(), bands=["B02", "B05"])


def test_bad_cubes():
    da = _array()
    with pytest.raises(DataError, match="dims"):
        open_cube(da.rename({"x": "col"}))
    with pytest.raises(DataError, match="no coordinate of band names"):
        open_cube(da.drop_vars("band"))
    with pytest.raises(DataError, match="smaller than the 64-pixel patch size"):
        XarrayTileDataset(da, patch_size=64)
    with pytest.raises(DataError, match="does not exist"):
        open_cube("/nonexistent/cube.zarr")


def test_random_window_sampler_epochs_and_ranks():
    ds = XarrayTileDataset(_array(times=2), patch_size=16, length=21, seed=1)
    shards = [list(RandomWindowSampler(ds, seed=2, num_replicas=2, rank=r)) for r in range(2)]
    assert len(shards[0]) == len(shards[1]) == 11
    whole = list(RandomWindowSampler(ds, seed=2, num_replicas=1, rank=0))
    assert shards[0] + shards[1][:10] == whole  # contiguous blocks of one epoch's draws
    assert shards[1][10] == whole[0]  # padding wraps around
    sampler = RandomWindowSampler(ds, seed=2, num_replicas=1, rank=0)
    sampler.set_epoch(1)
    assert list(sampler) != whole
    t, y0, x0 = whole[4]
    np.testing.assert_array_equal(ds[whole[4]]["image"].numpy(), ds.cube.read(t, y0, x0, 16, 16))
