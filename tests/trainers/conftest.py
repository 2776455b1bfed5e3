"""Fixtures of the fine-tuning task tests: generated datasets and tiny configs."""

import csv
import math
from pathlib import Path

import pytest
import torch
import yaml

from geomae.bands import L2A_BANDS
from geomae.convert import export_weights
from geomae.metadata import GeoMetadata
from geomae.models import ChannelMAE
from geomae.stats import BandStat, BandStats

CONFIGS = Path(__file__).parents[2] / "configs"

#: A tiny random-init backbone (the `arch` of a task without a weights file).
TINY_ARCH = {
    "size": "tiny",
    "groups": "satmae",
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "patch_size": 16,
}


def tiny_config(
    name: str, out: Path, *, data: dict, model: dict | None = None, trainer: dict | None = None
) -> Path:
    """A shipped config with a CSV logger, checkpoints and the data under ``out``.

    Training is cut to 2 batches of one epoch (then one validation) unless ``trainer``
    says otherwise.
    """
    cfg = yaml.safe_load((CONFIGS / name).read_text())
    cfg["trainer"].update(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=2,
        log_every_n_steps=1,
        num_sanity_val_steps=0,
        default_root_dir=str(out),
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    cfg["trainer"].update(trainer or {})
    cfg["trainer"]["logger"] = [
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(out), "name": "csv", "version": ""},
        }
    ]
    for callback in cfg["trainer"]["callbacks"]:
        if callback["class_path"].endswith("ModelCheckpoint"):
            callback["init_args"]["dirpath"] = str(out / "checkpoints")
    cfg["model"]["init_args"].update(model or {})
    cfg["data"]["init_args"].update(num_workers=0, **data)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def read_metrics(out: Path) -> dict[str, list[float]]:
    """Every logged value of the run's CSV logger, by metric name."""
    with (out / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    values: dict[str, list[float]] = {}
    for row in rows:
        for key, value in row.items():
            if value not in ("", None):
                values.setdefault(key, []).append(float(value))
    return values


def assert_finite(values: list[float]) -> None:
    assert values and all(math.isfinite(v) for v in values), values


class Helpers:
    """The helpers above, handed to tests as the `ft` fixture."""

    TINY_ARCH = TINY_ARCH
    tiny_config = staticmethod(tiny_config)
    read_metrics = staticmethod(read_metrics)
    assert_finite = staticmethod(assert_finite)


@pytest.fixture(scope="session")
def ft() -> type[Helpers]:
    return Helpers


#: Architecture of the tiny MAE whose converted encoder the fine-tuning tests start from.
MAE_ARCH = {
    "groups": "satmae",
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


@pytest.fixture(scope="session")
def pretrained(tmp_path_factory, eurosat_data):
    """A tiny 12-band ChannelMAE saved as an MAETask-style checkpoint and converted.

    Its statistics are the EuroSAT fixture's band values with std 20 (far from the
    band-table defaults), so a test can tell whose statistics normalized the data.
    """
    root = tmp_path_factory.mktemp("pretrained")
    torch.manual_seed(1)  # not the CLI's seed 0, or a random init would equal these weights
    mae = ChannelMAE.build(bands=list(L2A_BANDS), **MAE_ARCH)
    stats = BandStats({b: BandStat(float(eurosat_data.value_of(b)), 20.0) for b in L2A_BANDS})
    meta = GeoMetadata(
        bands=list(L2A_BANDS),
        groups=mae.encoder.groups,
        stats=stats,
        patch_size=8,
        img_size=32,
        arch=mae.arch_kwargs(),
        offset=0.0,
        extra={"task": "MAETask"},
    )
    ckpt = root / "mae.ckpt"
    torch.save(
        {
            "state_dict": {f"model.{k}": v for k, v in mae.state_dict().items()},
            "geomae": meta.to_dict(),
        },
        ckpt,
    )
    weights = root / "weights.safetensors"
    export_weights(ckpt, weights)
    encoder = {k: v.clone() for k, v in mae.encoder.state_dict().items()}
    return {"ckpt": ckpt, "weights": weights, "stats": stats, "encoder": encoder}
