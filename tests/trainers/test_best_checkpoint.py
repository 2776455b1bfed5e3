"""The best-val checkpoint of a fine-tuning run, read back from its last checkpoint."""

import shutil

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
