"""Pretraining ablation: one short `geomae fit` per row, scored by the online probe.

Every row is ``geomae fit --config configs/pretrain_sample.yaml`` with a step budget
(``--steps``, default 600) and one change. The online probe of that config (OSM land
use of the Brandenburg scene, 32-px tiles by majority class, train strip -> val strip)
scores the encoder at the end beside a random-init encoder of the same architecture and
the per-band statistics baseline; the masked-patch PSNR is reported next to the
visible-mean baseline. The script prints a Markdown table (and writes it with a PNG of
probe accuracy against pretraining minutes for every row) under ``--output``.

    python benchmarks/ablate_pretraining.py --steps 600 --output runs/ablation
    python benchmarks/ablate_pretraining.py --rows baseline,consistent   # a subset

Each row's runs are ``--output/<row>/version_N/``; rows are resumable: a row with a
run that wrote ``probe.json`` is not run again.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from geomae.runs import run_dirs

ROOT = Path(__file__).parents[1]
CONFIG = ROOT / "configs" / "pretrain_sample.yaml"

#: row name -> extra CLI overrides (on top of the recipe).
ROWS: dict[str, list[str]] = {
    "baseline": [],
    "consistent": ["--model.init_args.masking", "consistent"],
    "spectral": ["--model.init_args.masking", "spectral"],
    "norm_pix": ["--model.init_args.norm_pix_loss", "true"],
    "patch4": ["--model.init_args.patch_size", "4"],
    "ratio0.5": ["--model.init_args.mask_ratio", "0.5"],
    "ratio0.9": ["--model.init_args.mask_ratio", "0.9"],
    "narrow": ["--model.init_args.embed_dim", "64", "--model.init_args.num_heads", "2"],
    "deep6": ["--model.init_args.depth", "6"],
    "lr3x": ["--model.init_args.base_lr", "3.0e-2"],
    "lr0.3x": ["--model.init_args.base_lr", "3.0e-3"],
    "warmup_long": ["--model.init_args.warmup_steps", "300"],
    "decoder2": ["--model.init_args.decoder_depth", "2"],
    "single": ["--model.init_args.groups", "single"],
    "steps2x": ["@steps2x"],
}


def _history(folder: Path) -> Path | None:
    """The ``probe.json`` of the row's newest run that wrote one (None: none did)."""
    for run in reversed(run_dirs(folder)):
        if (run / "probe.json").is_file():
            return run / "probe.json"
    return None


def _run(name: str, extra: list[str], *, steps: int, out: Path) -> dict[str, float]:
    folder = out / name
    history = _history(folder)
    if history is not None:
        return _summary(json.loads(history.read_text()), folder)
    if extra == ["@steps2x"]:
        steps, extra = 2 * steps, []
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump(_row_config(folder)))
    args = [
        sys.executable,
        "-m",
        "geomae.main",
        "fit",
        "--config",
        str(config),
        "--trainer.max_steps",
        str(steps),
        *extra,
    ]
    folder.mkdir(parents=True, exist_ok=True)
    tic = time.monotonic()
    with (folder / "fit.log").open("w") as log:
        subprocess.run(args, check=True, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    (folder / "wall_seconds.txt").write_text(f"{time.monotonic() - tic:.1f}\n")
    history = _history(folder)
    if history is None:
        raise RuntimeError(f"row {name}: the run in {folder} wrote no probe.json")
    return _summary(json.loads(history.read_text()), folder)


def _row_config(folder: Path) -> dict[str, Any]:
    """The recipe with its runs in ``folder/version_N`` and the probe at the end only."""
    cfg = yaml.safe_load(CONFIG.read_text())
    trainer = cfg["trainer"]
    trainer["default_root_dir"] = str(folder)  # logs and checkpoints follow (geomae.runs)
    callbacks = []
    for callback in trainer["callbacks"]:
        name = callback["class_path"].rsplit(".", 1)[-1]
        if name == "RichProgressBar":
            continue  # a log file, not a terminal
        if name == "OnlineProbe":
            callback["init_args"]["every_n_epochs"] = 10_000  # final weights only
        callbacks.append(callback)
    trainer["callbacks"] = callbacks
    trainer["enable_progress_bar"] = False
    return cfg


def _summary(history: list[dict[str, float]], folder: Path) -> dict[str, float]:
    last = history[-1]
    wall = folder / "wall_seconds.txt"
    return {
        "steps": last["step"],
        "minutes": float(wall.read_text()) / 60 if wall.is_file() else last["minutes"],
        "linear": last["linear_acc"],
        "knn": last["knn_acc"],
        "random_linear": last["random_init/linear_acc"],
        "stats_linear": last["stats_baseline/linear_acc"],
        "psnr": last.get("val/psnr", float("nan")),
        "psnr_base": last.get("val/psnr_baseline", float("nan")),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--output", type=Path, default=ROOT / "runs" / "ablation")
    args = parser.parse_args()
    names = [n for n in args.rows.split(",") if n]
    unknown = [n for n in names if n not in ROWS]
    if unknown:
        raise SystemExit(f"unknown rows {unknown}; known: {list(ROWS)}")
    results = {n: _run(n, ROWS[n], steps=args.steps, out=args.output) for n in names}
    lines = [
        "| row | change | steps | minutes | probe linear acc | kNN acc | random init | "
        "stats baseline | PSNR dB | visible-mean PSNR dB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in results.items():
        change = " ".join(ROWS[name]).replace("--model.init_args.", "") or "recipe"
        lines.append(
            f"| {name} | {change} | {r['steps']:.0f} | {r['minutes']:.1f} | {r['linear']:.3f} | "
            f"{r['knn']:.3f} | {r['random_linear']:.3f} | {r['stats_linear']:.3f} | "
            f"{r['psnr']:.2f} | {r['psnr_base']:.2f} |"
        )
    table = "\n".join(lines)
    print(table)
    args.output.mkdir(parents=True, exist_ok=True)
    (args.output / "ablation.md").write_text(table + "\n")


if __name__ == "__main__":
    main()
