"""The best-val checkpoint of a fine-tuning run, read back from its last checkpoint."""

import shutil
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.callbacks import ModelCheckpoint

from geomae.datamodules import EuroSATDataModule
from geomae.errors import DataError
from geomae.selection import best_checkpoint
from geomae.trainers import ClassificationTask


def _fit(root, folder, *, monitor):
    task = ClassificationTask(
        backbone=None,
        arch={"size": "tiny", "groups": "single", "embed_dim": 16, "depth": 1, "num_heads": 2},
        mode="finetune_from_scratch_head",
        lr=5e-2,
        min_steps=0,
    )
    dm = EuroSATDataModule(root=root, bands="rgb", batch_size=4, augment="none")
    checkpoint = ModelCheckpoint(
        dirpath=folder, monitor=monitor, mode="max", save_top_k=1, save_last=True
    )
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=4,
        limit_train_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[checkpoint],
    )
    trainer.fit(task, datamodule=dm)
    return checkpoint


def test_best_checkpoint_is_read_from_the_last_one(eurosat_root, tmp_path):
    folder = tmp_path / "run" / "checkpoints"
    callback = _fit(eurosat_root, folder, monitor="val/OA")
    best = best_checkpoint(folder / "last.ckpt")
    assert best.path == folder.resolve() / callback.best_model_path.split("/")[-1]
    assert best.monitor == "val/OA" and best.score == pytest.approx(
        float(callback.best_model_score)
    )
    stored = torch.load(best.path, map_location="cpu", weights_only=True)
    assert stored["callbacks"]  # a real Lightning checkpoint

    moved = tmp_path / "moved"
    shutil.move(str(folder), moved)  # the recorded absolute path is gone: found beside
    assert best_checkpoint(moved / "last.ckpt").path == moved / best.path.name


def test_a_run_without_a_monitored_checkpoint_is_an_error(eurosat_root, tmp_path):
    folder = tmp_path / "checkpoints"
    _fit(eurosat_root, folder, monitor=None)
    with pytest.raises(DataError, match="records no best checkpoint"):
        best_checkpoint(folder / "last.ckpt")


def test_geomae_test_ckpt_path_best_scores_the_best_val_checkpoint(
    eurosat_root, eurosat_data, tmp_path, ft
):
    import yaml

    from geomae.bands import L2A_BANDS
    from geomae.main import GeomaeCLI, main
    from geomae.stats import BandStat, BandStats

    root = tmp_path / "runs"
    stats = tmp_path / "stats.yaml"
    BandStats({b: BandStat(float(eurosat_data.value_of(b)), 20.0) for b in L2A_BANDS}).save(stats)
    cfg_path = ft.tiny_config(
        "linear_probe_eurosat.yaml",
        tmp_path / "cfg",
        data={"root": str(eurosat_root), "batch_size": 4, "stats": str(stats)},
        model={"backbone": None, "arch": ft.TINY_ARCH},
        trainer={"max_epochs": 3, "default_root_dir": str(root)},
    )
    cfg = yaml.safe_load(cfg_path.read_text())
    # outputs follow the run folder, as in the shipped configs
    cfg["trainer"]["logger"] = [{"class_path": "geomae.loggers.CSVLogger"}]
    for callback in cfg["trainer"]["callbacks"]:
        callback.get("init_args", {}).pop("dirpath", None)
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(cfg_path)]) == 0

    last = root / "version_0" / "checkpoints" / "last.ckpt"
    expected = best_checkpoint(last).path
    cli = GeomaeCLI(["test", "--config", str(cfg_path), "--ckpt_path", "best"])
    assert cli.trainer.ckpt_path is not None
    assert Path(cli.trainer.ckpt_path).resolve() == expected.resolve()
    assert expected.name != "last.ckpt"
    assert (root / "version_1").is_dir()  # the test run has a folder of its own
