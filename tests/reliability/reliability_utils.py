"""Helpers of the reliability tests: fixture writers, tiny `geomae fit` configs, CSV logs."""

import csv
import importlib.util
import os
import sys
from pathlib import Path

import yaml

from geomae.bands import L2A_BANDS
from geomae.stats import BandStat, BandStats

DATA_PY = Path(__file__).parents[1] / "data" / "sentinel2" / "data.py"
REPO = Path(__file__).parents[2]


def load_s2data():
    spec = importlib.util.spec_from_file_location("s2_fixture_data_reliability", DATA_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_stats(path: Path, bands=L2A_BANDS) -> Path:
    stats = BandStats({b: BandStat(1200.0 + 150 * i, 300.0) for i, b in enumerate(bands)})
    stats.save(path)
    return path


def make_config(
    out: Path,
    tiles: Path,
    *,
    trainer: dict | None = None,
    model: dict | None = None,
    data: dict | None = None,
    callbacks: list | None = None,
    every_n_train_steps: int | None = None,
) -> Path:
    """Write a tiny `geomae fit` config (4 bands, 32 px tiles, a 43 k-parameter MAE).

    Outputs go under ``out``: ``csv/version_N/metrics.csv`` and ``ckpt/``.
    """
    out.mkdir(parents=True, exist_ok=True)
    checkpoint = {"dirpath": str(out / "ckpt"), "save_last": True, "save_top_k": -1}
    if every_n_train_steps:
        checkpoint.update(every_n_train_steps=every_n_train_steps, filename="{step:04d}")
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "max_steps": 8,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "default_root_dir": str(out),
            "logger": [
                {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {
                        "save_dir": str(out),
                        "name": "csv",
                        "flush_logs_every_n_steps": 1,
                    },
                }
            ],
            "callbacks": [
                {
                    "class_path": "lightning.pytorch.callbacks.LearningRateMonitor",
                    "init_args": {"logging_interval": "step"},
                },
                {
                    "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                    "init_args": checkpoint,
                },
                *(callbacks or []),
            ],
            **(trainer or {}),
        },
        "model": {
            "class_path": "geomae.trainers.MAETask",
            "init_args": {
                "groups": "single",
                "embed_dim": 32,
                "depth": 1,
                "num_heads": 2,
                "decoder_embed_dim": 32,
                "decoder_depth": 1,
                "decoder_num_heads": 2,
                "patch_size": 8,
                "base_lr": 0.05,
                "warmup_steps": 2,
                **(model or {}),
            },
        },
        "data": {
            "class_path": "geomae.datamodules.Sentinel2PretrainDataModule",
            "init_args": {
                "paths": str(tiles),
                "tile_format": "multiband",
                "bands": "rgbn",
                "stats": str(tiles.parent / "stats.yaml"),
                "patch_size": 32,
                "batch_size": 4,
                "length": 16,
                "val_fraction": 0.34,
                "num_workers": 0,
                **(data or {}),
            },
        },
    }
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def read_metrics(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def series(rows: list[dict[str, str]], key: str) -> dict[int, float]:
    """``{step: value}`` of one logged metric."""
    return {int(r["step"]): float(r[key]) for r in rows if r.get(key)}


def cli_env() -> dict[str, str]:
    """Environment of `python -m geomae.main` subprocesses (quiet, no GPU probing)."""
    env = dict(os.environ)
    env.pop("GEOMAE_DEBUG", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env["CUDA_VISIBLE_DEVICES"] = ""
    return env


PYTHON = sys.executable


def write_tile(
    path: Path,
    *,
    size: int = 96,
    res: float = 10.0,
    crs: str = "EPSG:32632",
    origin: tuple[float, float] = (600000.0, 5400000.0),
    count: int = 12,
    dtype: str = "uint16",
    fill: float | None = None,
    seed: int = 0,
) -> Path:
    """Write a ``count``-band GeoTIFF with seeded values around 1000-3000 (or ``fill``)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_origin

    rng = np.random.default_rng(seed)
    if fill is None:
        data = rng.integers(1000, 3000, size=(count, size, size)).astype(dtype)
    else:
        data = np.full((count, size, size), fill, dtype=dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=size,
        height=size,
        count=count,
        dtype=dtype,
        crs=crs,
        transform=from_origin(origin[0], origin[1], res, res),
    ) as dst:
        dst.write(data)
    return path


def truncate(path: Path, fraction: float) -> Path:
    """Cut ``path`` to ``fraction`` of its size, as an interrupted copy would."""
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(int(size * fraction))
    return path
