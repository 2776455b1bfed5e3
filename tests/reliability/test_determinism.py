"""Same seed, same config, CPU: the same tiles and bit-identical losses."""

from reliability_utils import make_config, read_metrics, series

from geomae.callbacks import read_fingerprints
from geomae.main import main

STEPS = 6


def _run(out, tiles, seed):
    fingerprints = {
        "class_path": "geomae.callbacks.BatchFingerprints",
        "init_args": {"dirpath": str(out / "fingerprints")},
    }
    config = make_config(out, tiles, trainer={"max_steps": STEPS}, callbacks=[fingerprints])
    assert main(["fit", "--config", str(config), "--seed_everything", str(seed)]) == 0
    losses = series(read_metrics(out / "csv" / "version_0" / "metrics.csv"), "train/loss")
    tiles_seen = [
        r["samples"] for r in read_fingerprints(out / "fingerprints" / "fingerprints-rank0.jsonl")
    ]
    return losses, tiles_seen


def test_same_seed_same_losses(tmp_path, tiles):
    losses_a, tiles_a = _run(tmp_path / "a", tiles, seed=7)
    losses_b, tiles_b = _run(tmp_path / "b", tiles, seed=7)
    assert sorted(losses_a) == list(range(STEPS))
    assert losses_a == losses_b  # exact float equality, step by step
    assert tiles_a == tiles_b and len(tiles_a) == STEPS
    # the check can fail: another seed draws other tiles and masks
    losses_c, tiles_c = _run(tmp_path / "c", tiles, seed=8)
    assert losses_c[0] != losses_a[0] and tiles_c != tiles_a
