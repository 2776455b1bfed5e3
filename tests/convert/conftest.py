"""Fixtures of the converter tests: tiny MAEs as MAETask-style checkpoints, their exports,
and one real checkpoint of a 1-step `MAETask` fit on generated Sentinel-2 tiles."""

import importlib.util

import pytest
import torch
from convert_helpers import DATA_PY, PRESETS, STATS, make_mae, save_checkpoint


@pytest.fixture(scope="session")
def maes():
    """preset -> seeded 12-band ChannelMAE."""
    return {g: make_mae(g, seed=i) for i, g in enumerate(PRESETS)}


@pytest.fixture(scope="session")
def checkpoints(maes, tmp_path_factory):
    """preset -> MAETask-style checkpoint file of ``maes[preset]``."""
    root = tmp_path_factory.mktemp("ckpt")
    return {g: save_checkpoint(m, root / f"{g}.ckpt") for g, m in maes.items()}


@pytest.fixture(scope="session")
def exports(checkpoints, tmp_path_factory):
    """preset -> `export_weights` output (auto target: timm for single, else geomae)."""
    from geomae.convert import export_weights

    root = tmp_path_factory.mktemp("exports")
    return {g: export_weights(c, root / f"{g}.safetensors") for g, c in checkpoints.items()}


@pytest.fixture(scope="session")
def x():
    """(2, 12, 32, 32) input batch."""
    return torch.randn(2, 12, 32, 32, generator=torch.Generator().manual_seed(5))


def _load_s2data():
    spec = importlib.util.spec_from_file_location("s2_fixture_data_convert", DATA_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def real_checkpoint(tmp_path_factory):
    """A checkpoint saved by Lightning after one MAETask step on a generated tile.

    Returns ``(path, task)``; the task holds the trained weights.
    """
    from lightning.pytorch import Trainer, seed_everything

    from geomae.datamodules import Sentinel2PretrainDataModule
    from geomae.trainers import MAETask

    root = tmp_path_factory.mktemp("real")
    _load_s2data().write_multiband(root / "tiles" / "a.tif", size=96)
    STATS.save(root / "stats.yaml")
    seed_everything(0)
    dm = Sentinel2PretrainDataModule(
        paths=str(root / "tiles"),
        tile_format="multiband",
        bands="all",
        patch_size=32,
        batch_size=4,
        length=4,
        stats=str(root / "stats.yaml"),
        pin_memory=False,
    )
    task = MAETask(
        groups="satmae",
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        warmup_steps=0,
    )
    trainer = Trainer(
        max_steps=1,
        accelerator="cpu",
        devices=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        default_root_dir=root,
    )
    trainer.fit(task, datamodule=dm)
    path = root / "last.ckpt"
    trainer.save_checkpoint(path)
    return path, task
