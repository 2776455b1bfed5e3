"""Helpers of the converter tests: tiny seeded MAEs saved like MAETask checkpoints."""

from pathlib import Path

import torch

from geomae.bands import L2A_BANDS
from geomae.metadata import GeoMetadata
from geomae.models import ChannelMAE
from geomae.stats import BandStat, BandStats

DATA_PY = Path(__file__).parents[1] / "data" / "sentinel2" / "data.py"
PRESETS = ("single", "satmae", "per-band")

#: A 12-band MAE small enough for CPU tests (encoder D=32, depth 2).
ARCH = {
    "size": "tiny",
    "img_size": 32,
    "patch_size": 8,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "decoder_embed_dim": 16,
    "decoder_depth": 1,
    "decoder_num_heads": 2,
}

#: Statistics that differ per band, so that a wrong selection shows.
STATS = BandStats({b: BandStat(1000.0 + 100 * i, 200.0 + i) for i, b in enumerate(L2A_BANDS)})


def make_mae(groups, bands=L2A_BANDS, seed=0, **arch):
    """A ChannelMAE whose every parameter is perturbed (group embed and biases are not zero)."""
    torch.manual_seed(seed)
    mae = ChannelMAE.build(bands=list(bands), groups=groups, **{**ARCH, **arch})
    with torch.no_grad():
        for p in mae.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return mae.eval()


def metadata_of(mae, **extra):
    enc = mae.encoder
    return GeoMetadata(
        bands=list(enc.bands),
        groups=[list(g) for g in enc.groups],
        stats=STATS,
        patch_size=enc.patch_size,
        img_size=enc.img_size[0],
        arch=mae.arch_kwargs(),
        offset=1000.0,
        extra={"task": "MAETask", **extra},
    )


def save_checkpoint(mae, path, **extra):
    """Save ``mae`` the way MAETask's checkpoints hold it."""
    checkpoint = {
        "epoch": 0,
        "global_step": 1,
        "state_dict": {f"model.{k}": v for k, v in mae.state_dict().items()},
        "geomae": metadata_of(mae).to_dict(),
        **extra,
    }
    torch.save(checkpoint, path)
    return path
