"""`kill -9` during `geomae fit`, then the same command with `--ckpt_path last`.

The resumed run must continue at the checkpoint's global step and epoch with the
optimizer's and scheduler's state, and its loss curve must continue the first one
instead of starting over.
"""

import os
import signal
import socket
import subprocess
import time

import pytest
import torch
from reliability_utils import PYTHON, REPO, cli_env, make_config, read_metrics, series

from geomae.checkpoint_io import PARTIAL_PREFIX

MAX_STEPS = 24  # 4 steps per epoch, a multiple of the checkpoint interval
KILL_AFTER = 12  # kill once the checkpoint of this step exists


def _state(path):
    ckpt = torch.load(path, weights_only=True)
    adam_steps = {float(s["step"]) for s in ckpt["optimizer_states"][0]["state"].values()}
    assert len(adam_steps) == 1
    return {
        "step": ckpt["global_step"],
        "epoch": ckpt["epoch"],
        "adam": adam_steps.pop(),
        "scheduler": ckpt["lr_schedulers"][0]["last_epoch"],
    }


@pytest.mark.slow
def test_kill_9_then_resume_from_last(tmp_path, tiles):
    out = tmp_path / "run"
    # checkpoints every 3 steps: most of them fall inside an epoch
    config = make_config(out, tiles, trainer={"max_steps": MAX_STEPS}, every_n_train_steps=3)
    command = [PYTHON, "-m", "geomae.main", "fit", "--config", str(config)]
    ckpt_dir = out / "ckpt"
    with (tmp_path / "first.log").open("w") as log:
        first = subprocess.Popen(command, cwd=REPO, env=cli_env(), stdout=log, stderr=log)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and first.poll() is None:
            if (ckpt_dir / f"step={KILL_AFTER:04d}.ckpt").exists():
                break
            time.sleep(0.02)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
    assert first.returncode == -signal.SIGKILL, (tmp_path / "first.log").read_text()[-3000:]

    killed = _state(ckpt_dir / "last.ckpt")
    step = killed["step"]
    # last.ckpt is written right after step=NNNN.ckpt: the kill may fall in between
    assert KILL_AFTER - 3 <= step < MAX_STEPS and step % 3 == 0
    assert killed["adam"] == step and killed["scheduler"] == step
    # a partial file left by a save that a kill interrupted is newer than last.ckpt:
    # `--ckpt_path last` must not pick it
    stale = ckpt_dir / f"{PARTIAL_PREFIX}{socket.gethostname()}-999999999-x.tmp"
    stale.write_bytes(b"half a checkpoint")

    resumed = subprocess.run(
        [*command, "--ckpt_path", "last"],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Restoring states from the checkpoint path at {ckpt_dir / 'last.ckpt'}" in (
        resumed.stdout + resumed.stderr
    )
    assert not stale.exists()  # cleaned up by the first save of the resumed run

    final = _state(ckpt_dir / "last.ckpt")
    # AdamW counted every step of both runs: its state was restored, not rebuilt
    assert final == {"step": MAX_STEPS, "epoch": final["epoch"], "adam": MAX_STEPS,
                     "scheduler": MAX_STEPS}  # fmt: skip
    assert final["epoch"] == (MAX_STEPS - 1) // 4

    before = read_metrics(out / "csv" / "version_0" / "metrics.csv")
    after = read_metrics(out / "csv" / "version_1" / "metrics.csv")
    loss_before, loss_after = series(before, "train/loss"), series(after, "train/loss")
    # the resumed run starts at the checkpoint's step and epoch and runs to the end
    assert min(loss_after) == step and max(loss_after) == MAX_STEPS - 1
    assert sorted(loss_after) == list(range(step, MAX_STEPS))
    first_row = next(r for r in after if r.get("train/loss"))
    # the checkpoint records the epoch of the last finished batch; a kill right after an
    # epoch's last batch resumes at the start of the next epoch
    assert killed["epoch"] == (step - 1) // 4
    assert int(first_row["epoch"]) == step // 4
    # the learning rate schedule continues: same lr at the steps both runs logged
    lr_before, lr_after = series(before, "lr/pg1"), series(after, "lr/pg1")
    assert min(lr_after) == step
    for s in set(lr_before) & set(lr_after):
        assert lr_after[s] == pytest.approx(lr_before[s], rel=1e-9)
    # the loss continues from where it was, far below where training started
    start = sum(loss_before[s] for s in (0, 1, 2)) / 3
    at_kill = sum(loss_before[s] for s in range(step - 3, step)) / 3
    resumed_start = sum(loss_after[s] for s in range(step, step + 3)) / 3
    assert start - at_kill > 0.06  # the first run had learned something
    assert abs(resumed_start - at_kill) < 0.04
