"""Two-process CPU DDP (gloo) through the real command line.

`geomae fit ... --trainer.strategy=ddp --trainer.devices=2 --trainer.accelerator=cpu`
must train with each rank reading different tiles, and with the learning rate scaled
by the world size.
"""

import math
import subprocess

import pytest
import torch
from reliability_utils import PYTHON, REPO, cli_env, make_config, read_metrics, series

from geomae.callbacks import read_fingerprints

BASE_LR = 0.05
BATCH = 4
DDP = ["--trainer.strategy=ddp", "--trainer.devices=2", "--trainer.accelerator=cpu"]


def _fit(config, *extra):
    return subprocess.run(
        [PYTHON, "-m", "geomae.main", "fit", "--config", str(config), *DDP, *extra],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.slow
def test_two_process_ddp_shards_tiles_and_scales_lr(tmp_path, tiles):
    out = tmp_path / "run"
    fingerprints = {
        "class_path": "geomae.callbacks.BatchFingerprints",
        "init_args": {"dirpath": str(out / "fingerprints")},
    }
    config = make_config(
        out,
        tiles,
        trainer={"max_steps": 4},
        # constant lr (no warmup, no decay) so the logged lr is the scaled peak
        model={"base_lr": BASE_LR, "warmup_steps": 0, "min_lr_ratio": 1.0},
        data={"augment": "none", "batch_size": BATCH},  # tile hash = tile identity
        callbacks=[fingerprints],
    )
    result = _fit(config)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "distributed_backend=gloo" in log and "Starting with 2 processes" in log
    assert f"(batch {BATCH} x world 2 x accumulate 1)" in log

    rows = read_metrics(out / "csv" / "version_0" / "metrics.csv")
    losses = series(rows, "train/loss")
    assert sorted(losses) == [0, 1, 2, 3] and all(math.isfinite(v) for v in losses.values())
    one_process_lr = BASE_LR * BATCH / 256
    lrs = series(rows, "lr/pg1")
    assert lrs and all(v == pytest.approx(2 * one_process_lr, rel=1e-6) for v in lrs.values())

    rank0 = read_fingerprints(out / "fingerprints" / "fingerprints-rank0.jsonl")
    rank1 = read_fingerprints(out / "fingerprints" / "fingerprints-rank1.jsonl")
    assert [r["step"] for r in rank0] == [r["step"] for r in rank1] == [0, 1, 2, 3]
    tiles0 = [t for r in rank0 for t in r["samples"]]
    tiles1 = [t for r in rank1 for t in r["samples"]]
    assert len(tiles0) == len(tiles1) == 4 * BATCH
    for a, b in zip(rank0, rank1, strict=True):
        assert a["samples"] != b["samples"], f"both ranks trained on the same batch {a}"
    # each rank reads its own shard of the epoch's tiles: random positions may rarely
    # coincide, identical ranks would share every tile
    shared = set(tiles0) & set(tiles1)
    assert len(shared) <= 2, shared

    last = torch.load(out / "ckpt" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and last["geomae"]["bands"] == ["B02", "B03", "B04", "B08"]


@pytest.mark.slow
def test_two_process_ddp_skips_non_finite_steps_together(tmp_path, tiles):
    out = tmp_path / "run"
    config = make_config(
        out,
        tiles,
        trainer={"max_steps": 3},
        model={"base_lr": 1e30, "warmup_steps": 0, "on_nonfinite": "skip"},
    )
    result = _fit(config)
    log = result.stdout + result.stderr
    assert result.returncode == 0, log[-4000:]
    assert "non-finite loss nan at step 1: batch skipped" in log
    last = torch.load(out / "ckpt" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 3
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    # both skipped steps left AdamW alone on every rank (rank 0's state is saved)
    steps = {float(s["step"]) for s in last["optimizer_states"][0]["state"].values()}
    assert steps == {1.0}
