"""Catalogue rows about checkpoints given to `geomae fit --ckpt_path`."""

import argparse

import pytest
import torch
from reliability_utils import load_s2data, make_config, truncate, write_stats

from geomae.main import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-step run: its config and its last.ckpt."""
    root = tmp_path_factory.mktemp("trained")
    load_s2data().write_multiband(root / "tiles" / "a.tif", size=96)
    write_stats(root / "stats.yaml")
    config = make_config(root / "run", root / "tiles", trainer={"max_steps": 2})
    assert main(["fit", "--config", str(config)]) == 0
    return config, root / "run" / "ckpt" / "last.ckpt"


def resume(capsys, config, ckpt, *overrides):
    capsys.readouterr()
    rc = main(["fit", "--config", str(config), "--ckpt_path", str(ckpt), *overrides])
    return rc, capsys.readouterr().err


def error_line(rc, err):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.startswith("geomae: error:")]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_checkpoints_load_with_weights_only(trained):
    _, ckpt = trained
    checkpoint = torch.load(ckpt, weights_only=True)  # no pickle beyond plain containers
    assert checkpoint["global_step"] == 2 and checkpoint["geomae"]["bands"][0] == "B02"


def test_truncated_checkpoint(trained, tmp_path, capsys):
    config, ckpt = trained
    cut = tmp_path / "cut.ckpt"
    cut.write_bytes(ckpt.read_bytes())
    truncate(cut, 0.5)
    line = error_line(*resume(capsys, config, cut))
    assert f"checkpoint {cut} cannot be read" in line and "truncated" in line


def test_not_a_checkpoint(trained, tmp_path, capsys):
    config, _ = trained
    junk = tmp_path / "junk.ckpt"
    junk.write_text("hello")
    line = error_line(*resume(capsys, config, junk))
    assert f"checkpoint {junk} cannot be read" in line


def test_explicit_checkpoint_file_brings_its_own_hyperparameters(trained, capsys):
    # LightningCLI rebuilds the model from an explicit checkpoint file's hyper-parameters,
    # so a conflicting model override is replaced, and the DataModule check names it
    config, ckpt = trained
    rc, err = resume(capsys, config, ckpt, "--data.bands", "rgb")
    line = error_line(rc, err)
    assert "the task's bands ['B02', 'B03', 'B04', 'B08'] differ from the DataModule's" in line


def test_last_checkpoint_of_another_model(trained, capsys):
    config, ckpt = trained
    line = error_line(*resume(capsys, config, "last", "--model.embed_dim", "64"))
    assert f"checkpoint {ckpt} holds a different model: arch:" in line
    assert "'embed_dim': 32" in line and "'embed_dim': 64" in line


def test_last_checkpoint_with_other_bands(trained, capsys):
    config, ckpt = trained
    line = error_line(*resume(capsys, config, "last", "--data.bands", "rgb"))
    assert f"checkpoint {ckpt} holds a different model: bands: checkpoint ['B02', 'B03'" in line


def test_checkpoint_of_another_class(trained, tmp_path, capsys):
    config, ckpt = trained
    other = torch.load(ckpt, weights_only=True)
    other["hyper_parameters"]["_class_path"] = "geomae.trainers.ClassificationTask"
    path = tmp_path / "classifier.ckpt"
    torch.save(other, path)
    line = error_line(*resume(capsys, config, path))
    assert f"checkpoint {path} was written by geomae.trainers.ClassificationTask" in line
    assert "the configuration trains geomae.trainers.MAETask" in line


def test_checkpoint_without_geomae_metadata(trained, tmp_path, capsys):
    config, ckpt = trained
    foreign = torch.load(ckpt, weights_only=True)
    del foreign["geomae"]
    foreign["hparams_name"] = "kwargs"
    path = tmp_path / "foreign.ckpt"
    torch.save(foreign, path)
    line = error_line(*resume(capsys, config, path))
    assert f"checkpoint {path} has no 'geomae' metadata" in line


def test_checkpoint_of_another_task(trained, tmp_path, capsys):
    config, ckpt = trained
    other = torch.load(ckpt, weights_only=True)
    other["geomae"]["extra"]["task"] = "ClassificationTask"
    path = tmp_path / "segmenter.ckpt"
    torch.save(other, path)
    line = error_line(*resume(capsys, config, path))
    assert f"checkpoint {path} was written by ClassificationTask, not by MAETask" in line


def test_lightning_checkpoint_without_state_dict(trained, tmp_path, capsys):
    config, _ = trained
    path = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(2)}, path)
    line = error_line(*resume(capsys, config, path))
    assert f"checkpoint {path} is not a Lightning training checkpoint" in line


def test_checkpoint_with_pickled_objects_is_refused(trained, tmp_path, capsys):
    config, ckpt = trained
    unsafe = torch.load(ckpt, weights_only=True)
    unsafe["extra"] = argparse.Namespace(code="anything a pickle can run")
    path = tmp_path / "unsafe.ckpt"
    torch.save(unsafe, path)
    line = error_line(*resume(capsys, config, path))
    assert f"checkpoint {path} holds Python objects that safe loading" in line
    assert "weights_only=False" in line


def test_missing_checkpoint(trained, tmp_path, capsys):
    config, _ = trained
    line = error_line(*resume(capsys, config, tmp_path / "nope.ckpt"))
    assert "nope.ckpt" in line and "not found" in line
