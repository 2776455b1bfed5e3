"""Run folders: every `geomae fit` writes into `<default_root_dir>/version_N/` of its own."""

import csv
import logging
import os
from pathlib import Path

import pytest
import yaml

from geomae.main import main
from geomae.runs import (
    claim_run_dir,
    is_global_zero_process,
    newest_file,
    next_run_dir,
    run_dirs,
    run_number,
)

REPO = Path(__file__).parents[1]
QUICKSTART = REPO / "configs" / "quickstart.yaml"

#: What one quickstart run leaves in its folder (plus the TensorBoard events file).
RUN_FILES = {
    "checkpoints",
    "config.yaml",
    "hparams.yaml",
    "metrics.csv",
    "probe.json",
    "reconstructions",
}
#: A few steps of the quickstart: 2 steps per epoch, one validation batch, probe at the end.
TINY = [
    "--trainer.max_steps",
    "2",
    "--trainer.limit_val_batches",
    "1",
    "--trainer.log_every_n_steps",
    "1",
    "--data.init_args.length",
    "32",
    "--data.init_args.batch_size",
    "16",
    "--data.init_args.num_workers",
    "0",
]


def _absolute_paths(value):
    """The config with the repository's relative data paths made absolute."""
    if isinstance(value, dict):
        return {k: _absolute_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_absolute_paths(v) for v in value]
    if isinstance(value, str) and value.startswith("datasets/"):
        return str(REPO / value)
    return value


@pytest.fixture
def quickstart(tmp_path, sample_scene, monkeypatch) -> Path:
    """configs/quickstart.yaml as shipped (data paths absolute), run from an empty folder."""
    config = tmp_path / "quickstart.yaml"
    config.write_text(yaml.safe_dump(_absolute_paths(yaml.safe_load(QUICKSTART.read_text()))))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return config


def _fit(config: Path, root: Path, *extra: str) -> None:
    rc = main(
        ["fit", "--config", str(config), "--trainer.default_root_dir", str(root), *TINY, *extra]
    )
    assert rc == 0


def _assert_complete_run(run: Path) -> None:
    names = {p.name for p in run.iterdir()}
    events = {n for n in names if n.startswith("events.out.tfevents.")}
    assert len(events) == 1, names
    assert names - events == RUN_FILES
    assert (run / "checkpoints" / "last.ckpt").is_file()
    assert [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith("mae-")]
    assert len(list((run / "reconstructions").glob("epoch*.png"))) == 1
    with (run / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert any(r.get("val/loss") for r in rows) and any(r.get("probe/linear_acc") for r in rows)


def _steps(run: Path) -> list[int]:
    with (run / "metrics.csv").open() as f:
        return sorted({int(r["step"]) for r in csv.DictReader(f) if r.get("train/loss")})


def test_quickstart_ships_no_output_path_but_default_root_dir():
    trainer = yaml.safe_load(QUICKSTART.read_text())["trainer"]
    assert trainer["default_root_dir"] == "runs/quickstart"
    for logger in trainer["logger"]:
        assert "save_dir" not in logger.get("init_args", {})
    for callback in trainer["callbacks"]:
        assert "dirpath" not in callback.get("init_args", {})


def test_two_roots_get_two_complete_runs_and_nothing_elsewhere(quickstart, tmp_path):
    _fit(quickstart, tmp_path / "a")
    _fit(quickstart, tmp_path / "b")
    for root in (tmp_path / "a", tmp_path / "b"):
        assert [p.name for p in root.iterdir()] == ["version_0"]
        _assert_complete_run(root / "version_0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "cwd", "quickstart.yaml"]
    assert list((tmp_path / "cwd").iterdir()) == []  # nothing relative to the working dir
    # the run's config.yaml is the configuration as given: re-running it starts a new run
    saved = yaml.safe_load((tmp_path / "a" / "version_0" / "config.yaml").read_text())
    assert saved["trainer"]["default_root_dir"] == str(tmp_path / "a")
    assert all(lg["init_args"]["save_dir"] is None for lg in saved["trainer"]["logger"])


def test_runs_in_one_root_get_their_own_folders_and_last_resumes(quickstart, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="geomae.main")
    root = tmp_path / "runs"
    _fit(quickstart, root)
    first = (root / "version_0" / "checkpoints" / "last.ckpt").read_bytes()
    _fit(quickstart, root, "--trainer.max_steps", "4", "--ckpt_path", "last")
    assert [p.name for p in run_dirs(root)] == ["version_0", "version_1"]
    assert sorted(p.name for p in root.iterdir()) == ["version_0", "version_1"]
    for run in run_dirs(root):
        _assert_complete_run(run)
    # the first run is untouched: no last-v1.ckpt beside its last.ckpt, its metrics kept
    assert (root / "version_0" / "checkpoints" / "last.ckpt").read_bytes() == first
    assert not list(root.glob("version_0/checkpoints/last-v*.ckpt"))
    assert _steps(root / "version_0") == [0, 1]
    # `--ckpt_path last` resumed the first run's last.ckpt: the second continues its steps
    assert f"resuming {root / 'version_0' / 'checkpoints' / 'last.ckpt'}" in caplog.text
    resumed = _steps(root / "version_1")
    assert len(resumed) == 2 and min(resumed) > 1


def test_a_run_that_fails_before_writing_leaves_no_folder(quickstart, tmp_path, capsys):
    root = tmp_path / "runs"
    rc = main(
        [
            "fit",
            "--config",
            str(quickstart),
            "--trainer.default_root_dir",
            str(root),
            *TINY,
            "--data.init_args.paths",
            str(tmp_path / "missing"),
        ]
    )
    assert rc == 2 and "geomae: error:" in capsys.readouterr().err
    assert run_dirs(root) == []


def test_next_and_claimed_run_folders(tmp_path):
    root = tmp_path / "root"
    assert run_dirs(root) == [] and next_run_dir(root) == root / "version_0"
    (root / "version_2").mkdir(parents=True)
    (root / "version_10").mkdir()
    (root / "version_x").mkdir()
    (root / "version_3").write_text("a file, not a run")
    assert [p.name for p in run_dirs(root)] == ["version_2", "version_10"]
    assert run_number(root / "version_10") == 10
    with pytest.raises(ValueError, match="not a run folder"):
        run_number(root / "version_x")
    assert claim_run_dir(root) == root / "version_11"
    assert claim_run_dir(root) == root / "version_12"
    assert (root / "version_12").is_dir() and not list((root / "version_12").iterdir())


def test_newest_file_skips_missing(tmp_path):
    old, new = tmp_path / "old.ckpt", tmp_path / "new.ckpt"
    old.write_text("o")
    new.write_text("n")
    os.utime(old, (1_000, 1_000))
    assert newest_file([old, tmp_path / "gone.ckpt", new]) == new
    assert newest_file([tmp_path / "gone.ckpt"]) is None


@pytest.mark.parametrize(
    ("environ", "zero"),
    [
        ({}, True),
        ({"RANK": "0", "LOCAL_RANK": "0"}, True),
        ({"RANK": "3"}, False),
        ({"LOCAL_RANK": "1"}, False),  # a process of Lightning's subprocess launcher
        ({"SLURM_PROCID": "0", "NODE_RANK": "1"}, False),
    ],
)
def test_only_rank_zero_claims_the_run_folder(environ, zero):
    assert is_global_zero_process(environ) is zero
