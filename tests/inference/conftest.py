"""Fixtures of the whole-scene inference tests: tiny scenes, checkpoints and weights."""

from pathlib import Path

import lightning
import numpy as np
import pytest
import torch
from lightning.pytorch import Trainer

from geomae.bands import L2A_BANDS
from geomae.convert import export_weights
from geomae.inference.predictor import WindowPredictor
from geomae.metadata import GeoMetadata
from geomae.models import ChannelMAE
from geomae.normalization import Normalization
from geomae.stats import BandStat, BandStats

#: A tiny random-init segmentation backbone.
TINY_SEG = {
    "size": "tiny",
    "groups": "satmae",
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "patch_size": 8,
}


@pytest.fixture(scope="session")
def s2_scene(tmp_path_factory, s2data) -> Path:
    """A 96 x 96 px L1C-named scene (13 bands, native resolutions, nodata 0 top-left 24 px)."""
    root = tmp_path_factory.mktemp("s2_scene")
    s2data.write_band_files(root, size=96, nodata=0)
    return root


@pytest.fixture(scope="session")
def seg_ckpt(tmp_path_factory, landcover_paths, landcover_data) -> Path:
    """A SegmentationTask checkpoint after one training step, written by a Lightning Trainer."""
    from geomae.datamodules import LandCoverSegmentationDataModule
    from geomae.trainers import SegmentationTask

    root = tmp_path_factory.mktemp("seg_ckpt")
    stats = BandStats({b: BandStat(float(landcover_data.value_of(b)), 100.0) for b in L2A_BANDS})
    dm = LandCoverSegmentationDataModule(
        paths=str(landcover_paths["scene"]),
        label_paths=str(landcover_paths["vector"]),
        classes=list(landcover_data.CLASSES),
        stats=stats,
        patch_size=16,
        batch_size=2,
        length=2,
    )
    torch.manual_seed(0)
    task = SegmentationTask(
        arch=TINY_SEG, mode="finetune_from_scratch_head", decoder_channels=8, min_steps=0
    )
    trainer = Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=root,
    )
    trainer.fit(task, datamodule=dm)
    path = root / "seg.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="session")
def encoder_weights(tmp_path_factory) -> Path:
    """A tiny 12-band ChannelMAE's encoder as geomae .safetensors (patch 8, 32 px)."""
    root = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(2)
    mae = ChannelMAE.build(
        bands=list(L2A_BANDS),
        groups="satmae",
        size="tiny",
        img_size=32,
        patch_size=8,
        embed_dim=16,
        depth=1,
        num_heads=2,
        decoder_embed_dim=8,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    stats = BandStats({b: BandStat(1000.0, 300.0) for b in L2A_BANDS})
    meta = GeoMetadata(
        bands=list(L2A_BANDS),
        groups=mae.encoder.groups,
        stats=stats,
        patch_size=8,
        img_size=32,
        arch=mae.arch_kwargs(),
        extra={"task": "MAETask"},
    )
    ckpt = root / "mae.ckpt"
    state = {f"model.{k}": v for k, v in mae.state_dict().items()}
    torch.save(
        {
            "state_dict": state,
            "geomae": meta.to_dict(),
            "pytorch-lightning_version": lightning.__version__,
        },
        ckpt,
    )
    weights = root / "encoder.safetensors"
    export_weights(ckpt, weights)
    return weights


def toy_predictor(
    forward, *, bands, channels: int, window: int, scale: int = 1, nodata: float | None = 0.0
) -> WindowPredictor:
    """A WindowPredictor around ``forward`` that sees raw DN (mean 0, std 1, offset 0)."""
    stats = BandStats({b: BandStat(0.0, 1.0) for b in bands})
    meta = GeoMetadata(
        bands=list(bands),
        groups=[list(bands)],
        stats=stats,
        patch_size=scale,
        img_size=window,
        arch={},
        normalization=Normalization("none"),
    )
    predictor = WindowPredictor(
        kind="segmentation" if scale == 1 else "embedding",
        model=torch.nn.Identity(),
        forward=forward,
        metadata=meta,
        window=window,
        scale=scale,
        channels=channels,
    )
    predictor.configure_input(offset=0.0, nodata=nodata)
    return predictor


class RowsSink:
    """Collects finished rows (and checks they come in order)."""

    def __init__(self) -> None:
        self.parts = []

    def write(self, rows) -> None:
        expected = sum(p.values.shape[1] for p in self.parts)
        assert rows.row == expected
        self.parts.append(rows)

    def values(self) -> np.ndarray:
        return np.concatenate([p.values for p in self.parts], axis=1)

    def coverage(self) -> np.ndarray:
        return np.concatenate([p.coverage for p in self.parts], axis=0)


@pytest.fixture
def toy():
    """Helpers: ``toy.predictor(...)`` and ``toy.Sink``."""

    class Toy:
        predictor = staticmethod(toy_predictor)
        Sink = RowsSink

    return Toy
