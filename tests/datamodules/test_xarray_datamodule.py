import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import xarray as xr

from geomae.datamodules.xarray_source import XarrayDataModule
from geomae.errors import BandError, ConfigError
from geomae.samplers import RandomWindowSampler


def _cube(times=2, height=64, width=64):
    rng = np.random.default_rng(11)
    levels = np.array([800, 1200, 1600, 2400]).reshape(1, 4, 1, 1)
    data = levels + rng.integers(0, 400, (times, 4, height, width))
    data[:, :, :4, :4] = 0  # a nodata corner
    return xr.DataArray(
        data.astype("uint16"),
        dims=("time", "band", "y", "x"),
        coords={"band": ["B02", "B03", "B04", "B08"]},
        attrs={"_FillValue": 0},
    )


def test_batches_are_model_ready_with_sampled_stats(caplog):
    cube = _cube()
    with caplog.at_level(logging.INFO, logger="geomae.datamodules.xarray_source"):
        dm = XarrayDataModule(data=cube, patch_size=16, batch_size=4, length=12, val_fraction=0.25)
    assert "computing band statistics" in caplog.text
    assert dm.bands == ["B02", "B03", "B04", "B08"] and dm.cube.nodata == 0.0
    valid_values = cube.values[:, 1][cube.values[:, 1] > 0]
    assert dm.stats.bands["B03"].mean == pytest.approx(valid_values.mean(), rel=0.02)
    assert dm.stats.bands["B03"].std == pytest.approx(valid_values.std(), rel=0.1)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, RandomWindowSampler)
    batches = list(loader)
    assert len(batches) == 3
    raw = batches[0]
    assert raw["image"].dtype == torch.uint16 and raw["valid"].shape == (4, 1, 16, 16)
    out = dm.on_after_batch_transfer(dict(raw), 0)
    assert out["image"].dtype == torch.float32 and out["image"].shape == (4, 4, 16, 16)
    assert out["valid"].dtype == torch.bool and out["valid"].shape == (4, 1, 16, 16)
    mean = torch.tensor(dm.stats.mean(dm.bands)).view(1, -1, 1, 1)
    std = torch.tensor(dm.stats.std(dm.bands)).view(1, -1, 1, 1)
    expected = (raw["image"].to(torch.float32) - mean) / std
    torch.testing.assert_close(out["image"], torch.where(raw["valid"], expected, 0.0))


def test_val_strip_is_held_out():
    dm = XarrayDataModule(data=_cube(), patch_size=16, length=40, val_fraction=0.25)
    assert dm.train_rows == (0, 48) and dm.val_rows == (48, 64)
    dm.setup("fit")
    windows = list(dm.train_dataloader().sampler)
    assert all(y0 + 16 <= 48 for _, y0, _ in windows)
    val = dm.val_dataset
    assert len(val) == 2 * 4  # two time steps x one row of four tiles
    assert {val.window(i)[1] for i in range(len(val))} == {48}
    raw = next(iter(dm.val_dataloader()))
    np.testing.assert_array_equal(raw["image"][0].numpy(), dm.cube.read(0, 48, 0, 16, 16))


def test_windows_change_per_epoch_and_shard_per_rank():
    dm = XarrayDataModule(data=_cube(), patch_size=16, length=10)
    dm.setup("fit")
    sampler = dm.train_dataloader().sampler
    first = list(sampler)
    sampler.set_epoch(1)
    assert list(sampler) != first
    shards = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": rank})
        shards.append(list(dm.train_dataloader().sampler))
    assert shards[0] + shards[1] == first  # disjoint blocks of the same draws


def test_zarr_path_bands_and_explicit_stats(tmp_path):
    _cube().to_dataset(dim="band").to_zarr(tmp_path / "cube.zarr")
    stats = {b: {"mean": 1000.0, "std": 300.0} for b in ("B02", "B08")}
    dm = XarrayDataModule(
        data=str(tmp_path / "cube.zarr"), bands=["b8", "B2"], patch_size=16, stats=stats
    )
    assert dm.bands == ["B02", "B08"] and dm.hparams["data"] == str(tmp_path / "cube.zarr")
    assert dm.cube.nodata == 0.0  # _FillValue kept as an attribute, values stay uint16
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    assert raw["image"].shape == (32, 2, 16, 16) and raw["image"].dtype == torch.uint16
    with pytest.raises(BandError, match="B05"):
        XarrayDataModule(data=str(tmp_path / "cube.zarr"), bands=["B05"], stats=stats)


def test_too_small_for_the_split():
    with pytest.raises(ConfigError, match="too few for a val strip"):
        XarrayDataModule(data=_cube(height=24), patch_size=16, val_fraction=0.2)
    dm = XarrayDataModule(data=_cube(height=24), patch_size=16, val_fraction=0.0)
    dm.setup("fit")
    assert dm.val_dataloader() == []
