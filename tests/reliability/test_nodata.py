"""Nodata and non-finite pixels: mostly-empty tiles are skipped, the rest is masked.

Catalogue rows "NaN / Inf pixels" and "all-nodata tiles" of docs/errors.md.
"""

import math

import numpy as np
import pytest
import rasterio
import torch
from reliability_utils import make_config, read_metrics, series, write_stats, write_tile

from geomae.compute_stats import compute_stats
from geomae.datamodules.nodata import NodataFilter, collate_kept, invalid_fraction
from geomae.datamodules.pretrain import Sentinel2PretrainDataModule
from geomae.datasets.sentinel2 import Sentinel2Tiles
from geomae.main import main
from geomae.models import ChannelMAE
from geomae.trainers import MAETask


def _blank(path, *, columns=None, rows=None, value=0.0):
    """Set a block of every band of ``path`` to ``value`` (in place)."""
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, rows or slice(None), columns or slice(None)] = value
        dst.write(data)


@pytest.fixture
def holey(tmp_path):
    """96 x 96 px tile (nodata=0): the left 40 columns and the top-right val tile are empty."""
    path = write_tile(tmp_path / "tiles" / "a.tif", seed=3)
    _blank(path, columns=slice(0, 40))
    _blank(path, columns=slice(64, 96), rows=slice(0, 32))
    write_stats(tmp_path / "stats.yaml")
    return path.parent


def _datamodule(root, **kw):
    kw = {
        "paths": str(root),
        "tile_format": "multiband",
        "bands": "rgbn",
        "patch_size": 32,
        "batch_size": 8,
        "length": 64,
        "val_fraction": 0.34,
        "nodata": 0,
        "stats": str(root.parent / "stats.yaml"),
        **kw,
    }
    dm = Sentinel2PretrainDataModule(**kw)
    dm.setup("fit")
    return dm


def _fractions(loader):
    out = []
    for batch in loader:
        valid = batch["valid"] & torch.isfinite(batch["image"]).all(1, keepdim=True)
        out += (1 - valid.float().mean(dim=(1, 2, 3))).tolist()
    return out


def test_training_tiles_above_the_threshold_are_redrawn(holey):
    torch.manual_seed(0)
    unfiltered = _fractions(_datamodule(holey, max_nodata_fraction=1.0).train_dataloader())
    assert max(unfiltered) > 0.5  # the sampler does propose mostly-empty tiles
    torch.manual_seed(0)
    dm = _datamodule(holey, max_nodata_fraction=0.5)
    filtered = _fractions(dm.train_dataloader())
    assert len(filtered) == 64  # batches keep their size
    assert max(filtered) <= 0.5
    assert any(0 < f <= 0.5 for f in filtered)  # partial nodata is kept (and masked)
    # the replacements are reproducible: same seed, same tiles
    torch.manual_seed(0)
    again = _datamodule(holey, max_nodata_fraction=0.5)
    assert _fractions(again.train_dataloader()) == filtered


def test_redraw_gives_up_with_a_warning_when_everything_is_empty(tmp_path, caplog):
    path = write_tile(tmp_path / "tiles" / "a.tif")
    _blank(path)
    write_stats(tmp_path / "stats.yaml")
    dataset = Sentinel2Tiles(paths=str(path.parent), bands="rgbn", nodata=0)
    dm_sampler = _datamodule(path.parent, max_nodata_fraction=1.0).train_sampler
    wrapped = NodataFilter(dataset, max_nodata_fraction=0.5, redraw_from=dm_sampler, max_redraws=3)
    sample = wrapped[next(iter(dm_sampler))]
    assert invalid_fraction(sample) == 1.0 and wrapped.exhausted == 1
    assert "3 redraws found no tile under max_nodata_fraction=0.5" in caplog.text


def test_validation_tiles_above_the_threshold_are_dropped(holey):
    dm = _datamodule(holey, max_nodata_fraction=0.5)
    assert len(dm.val_sampler) == 3  # a column of three 32 px tiles
    val = list(dm.val_dataloader())
    assert sum(len(b["image"]) for b in val) == 2  # the empty top tile is left out
    assert "keep" not in val[0]
    kept = _datamodule(holey, max_nodata_fraction=1.0)
    assert sum(len(b["image"]) for b in kept.val_dataloader()) == 3


def test_a_batch_of_dropped_tiles_is_empty_and_skipped():
    samples = [
        {"image": torch.zeros(4, 8, 8), "valid": torch.zeros(1, 8, 8, dtype=torch.bool),
         "keep": torch.tensor(False)}
        for _ in range(3)
    ]  # fmt: skip
    batch = collate_kept(samples)
    assert batch["image"].shape == (0, 4, 8, 8) and batch["valid"].shape == (0, 1, 8, 8)
    task = MAETask(bands="rgbn", stats=None, img_size=8, groups="single", patch_size=4,
                   embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=16,
                   decoder_num_heads=2)  # fmt: skip
    assert task.validation_step(batch, 0) is None


@pytest.fixture
def nan_tiles(tmp_path):
    """float32 reflectance tile with NaN and +/-Inf pixels and no declared nodata."""
    path = write_tile(tmp_path / "tiles" / "a.tif", dtype="float32", seed=4)
    rng = np.random.default_rng(0)
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        for band, value in ((0, np.nan), (2, np.inf), (3, -np.inf)):
            rows, cols = rng.integers(0, 96, 60), rng.integers(0, 96, 60)
            data[band, rows, cols] = value
        dst.write(data)
    write_stats(tmp_path / "stats.yaml")
    return path.parent


def test_non_finite_pixels_are_masked_before_the_model(nan_tiles):
    torch.manual_seed(0)
    dm = _datamodule(nan_tiles, nodata=None, batch_size=16, length=16)
    raw = next(iter(dm.train_dataloader()))
    assert not torch.isfinite(raw["image"]).all()  # the tiles do hold NaN / Inf
    batch = dm.on_after_batch_transfer(dm.transfer_batch_to_device(raw, "cpu", 0), 0)
    image, valid = batch["image"], batch["valid"]  # (B, 4, 32, 32), (B, 1, 32, 32)
    assert torch.isfinite(image).all()
    assert torch.equal(valid, torch.isfinite(raw["image"]).all(1, keepdim=True))
    assert (image * ~valid == 0).all()

    torch.manual_seed(0)
    mae = ChannelMAE.build(bands=dm.bands, groups="single", img_size=32, patch_size=8,
                     embed_dim=16, depth=1, num_heads=2, decoder_embed_dim=16,
                     decoder_depth=1, decoder_num_heads=2)  # fmt: skip
    with torch.random.fork_rng():
        torch.manual_seed(1)
        loss = mae(image, valid).loss
    # whatever the invalid pixels hold, the loss is the same: they are excluded
    poisoned = torch.where(valid, image, torch.full_like(image, 1e6))
    with torch.random.fork_rng():
        torch.manual_seed(1)
        loss_poisoned = mae(poisoned, valid).loss
    assert torch.isfinite(loss) and torch.equal(loss, loss_poisoned)


def test_fit_on_tiles_with_nan_keeps_a_finite_loss(tmp_path, nan_tiles):
    config = make_config(tmp_path / "run", nan_tiles, trainer={"max_steps": 4})
    # on_nonfinite=raise (the default) would stop the run if a NaN reached the loss
    assert main(["fit", "--config", str(config)]) == 0
    losses = series(read_metrics(tmp_path / "run" / "csv" / "version_0" / "metrics.csv"),
                    "train/loss")  # fmt: skip
    assert sorted(losses) == [0, 1, 2, 3] and all(math.isfinite(v) for v in losses.values())


def test_statistics_exclude_nodata_and_non_finite_pixels(holey, nan_tiles):
    stats = compute_stats(
        Sentinel2Tiles(paths=str(holey), bands="rgbn", nodata=0),
        bands="rgbn", num_samples=16, tile_size=32, nodata=0,
    )  # fmt: skip
    for band, stat in stats.bands.items():
        # the valid values are 1000..2999; counting the zeros would pull p2 to 0
        assert 1000 <= stat.p2 and stat.p98 < 3000 and 1000 < stat.mean < 3000, band
    stats = compute_stats(
        Sentinel2Tiles(paths=str(nan_tiles), bands="rgbn"),
        bands="rgbn", num_samples=16, tile_size=32,
    )  # fmt: skip
    for band, stat in stats.bands.items():
        assert math.isfinite(stat.mean) and math.isfinite(stat.std), band
        assert 1000 <= stat.p2 and stat.p98 < 3000, band
