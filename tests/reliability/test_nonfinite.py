"""The NaN guard: a non-finite loss stops the run (with the last good state) or is skipped.

An absurd learning rate makes the weights overflow after the first update, so the loss
of step 1 is NaN: a real divergence, no monkeypatching.
"""

import math

import torch
from reliability_utils import make_config, read_metrics, series

from geomae.main import main

DIVERGE = {"base_lr": 1e30, "warmup_steps": 0}


def test_non_finite_loss_stops_with_the_last_good_state(tmp_path, tiles, capsys):
    out = tmp_path / "run"
    config = make_config(out, tiles, model=DIVERGE, trainer={"max_steps": 6}, every_n_train_steps=1)
    capsys.readouterr()
    assert main(["fit", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    saved = out / "nonfinite-step1.ckpt"
    assert (
        f"geomae: error: the training loss became nan at global step 1 (epoch 0); the last "
        f"good state is saved in {saved}"
    ) in err
    good = torch.load(saved, weights_only=True)
    assert good["global_step"] == 1
    weights = good["state_dict"]
    assert all(torch.isfinite(v).all() for v in weights.values())
    # it is the state after the last finite step: the periodic checkpoint of step 1
    periodic = torch.load(out / "ckpt" / "step=0001.ckpt", weights_only=True)["state_dict"]
    assert weights.keys() == periodic.keys()
    assert all(torch.equal(weights[k], periodic[k]) for k in weights)
    # ... and it resumes (optimizer and scheduler state included)
    assert len(good["optimizer_states"]) == 1 and good["lr_schedulers"][0]["last_epoch"] == 1


def test_non_finite_loss_skip_leaves_weights_and_optimizer_alone(tmp_path, tiles):
    out = tmp_path / "run"
    model = {**DIVERGE, "on_nonfinite": "skip"}
    config = make_config(out, tiles, model=model, trainer={"max_steps": 4})
    assert main(["fit", "--config", str(config)]) == 0
    last = torch.load(out / "ckpt" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values())
    # only step 0 updated the weights: AdamW's step count stayed at 1
    steps = {float(s["step"]) for s in last["optimizer_states"][0]["state"].values()}
    assert steps == {1.0}
    rows = read_metrics(out / "csv" / "version_0" / "metrics.csv")
    losses = series(rows, "train/loss")
    assert math.isfinite(losses[0]) and all(math.isnan(losses[s]) for s in (1, 2, 3))
    assert series(rows, "train/skipped") == {1: 1.0, 2: 2.0, 3: 3.0}
