"""The weights' normalization and processing level are applied and checked by the
DataModules the fine-tuning tasks and the benchmark use."""

import logging

import pytest
import torch

from geomae.datamodules import EuroSATDataModule
from geomae.errors import ConfigError
from geomae.stats import BandStat, BandStats
from geomae.trainers import ClassificationTask


def _batch(dm):
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    return raw, dm.on_after_batch_transfer(dm.transfer_batch_to_device(raw, "cpu", 0), 0)


def test_scale_normalization_reaches_the_datamodule(ssl4eo_like, eurosat_root):
    dm = EuroSATDataModule(root=eurosat_root, bands="all", batch_size=2)
    dm.setup("fit")  # the tile size: 64 px, the 32-px position embedding is resampled
    task = ClassificationTask(backbone=str(ssl4eo_like), mode="linear")
    task.setup_from_datamodule(dm)
    assert task.backbone.bands == dm.bands and "B10" not in dm.bands
    assert {(s.mean, s.std) for s in dm.stats.bands.values()} == {(0.0, 10000.0)}
    raw, batch = _batch(dm)
    expected = raw["image"].float() / 10000.0  # x / 10000, as SSL4EO-S12
    assert torch.allclose(batch["image"], expected, rtol=1e-6, atol=0)
    meta = task.metadata
    assert meta.normalization.spec() == "scale:10000" and meta.processing_level == "L1C"


def test_user_stats_that_differ_are_a_warning_naming_bands(ssl4eo_like, eurosat_root, caplog):
    stats = BandStats({b: BandStat(1000.0, 500.0) for b in ("B02", "B03", "B04")})
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2, stats=stats)
    task = ClassificationTask(backbone=str(ssl4eo_like), mode="linear", img_size=32)
    with caplog.at_level(logging.WARNING):
        task.setup_from_datamodule(dm)
    assert "its inputs must be x / 10000" in caplog.text
    for band in ("B02", "B03", "B04"):
        assert f"{band}: mean 1000 vs 0, std 500 vs 10000" in caplog.text
    assert dm.stats.bands["B02"].std == 500.0  # the user's win
    assert task.metadata.normalization.kind == "zscore"  # what the model really saw


def test_l2a_weights_on_l1c_data_are_refused(l2a_like, eurosat_root):
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2)
    task = ClassificationTask(backbone=str(l2a_like), mode="linear", img_size=32)
    with pytest.raises(
        ConfigError,
        match=r"pretrained on Sentinel-2 L2A data but EuroSATDataModule yields L1C data.*allow_level_mismatch",
    ):
        task.setup_from_datamodule(dm)


def test_a_level_mismatch_can_be_allowed(l2a_like, eurosat_root, caplog):
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2, allow_level_mismatch=True)
    task = ClassificationTask(backbone=str(l2a_like), mode="linear", img_size=32)
    with caplog.at_level(logging.WARNING):
        task.setup_from_datamodule(dm)
    assert "going on because allow_level_mismatch is set" in caplog.text


def test_a_datamodule_of_unknown_level_is_not_checked(l2a_like, eurosat_root):
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2, processing_level=None)
    ClassificationTask(backbone=str(l2a_like), mode="linear", img_size=32).setup_from_datamodule(dm)


def test_a_fine_tuned_checkpoint_of_an_import_rebuilds(ssl4eo_like, eurosat_root):
    dm = EuroSATDataModule(root=eurosat_root, bands="rgbn", batch_size=2)
    task = ClassificationTask(backbone=str(ssl4eo_like), mode="linear", img_size=32)
    task.setup_from_datamodule(dm)
    checkpoint = {}
    task.on_save_checkpoint(checkpoint)
    restored = ClassificationTask(  # the hyperparameters load_from_checkpoint would restore
        backbone=str(ssl4eo_like), mode="linear", img_size=32, task="multiclass", num_classes=10
    )
    restored.on_load_checkpoint(checkpoint)
    restored.load_state_dict(task.state_dict(), strict=True)
    x = torch.randn(1, 4, 32, 32)
    with torch.no_grad():
        assert torch.equal(task.features(x), restored.features(x))
    assert restored.metadata.processing_level == "L1C"
    assert restored.metadata.normalization.spec() == "scale:10000"
