"""Every shipped LightningCLI config parses: class paths, argument names and types."""

from pathlib import Path

import pytest
import yaml

from geomae.main import main

CONFIGS = Path(__file__).parents[1] / "configs"
FIT_CONFIGS = sorted(
    p.name for p in CONFIGS.glob("*.yaml") if "trainer" in yaml.safe_load(p.read_text())
)


@pytest.mark.parametrize("name", FIT_CONFIGS)
def test_fit_config_parses(name: str, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(CONFIGS / name), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["model"]["class_path"].startswith("geomae.trainers.")


def test_recipes_probe_on_a_strip_apart_from_the_probe_training_tiles() -> None:
    for name in ("quickstart.yaml", "pretrain_sample.yaml"):
        cfg = yaml.safe_load((CONFIGS / name).read_text())
        probes = [c for c in cfg["trainer"]["callbacks"] if c["class_path"].endswith("OnlineProbe")]
        assert len(probes) == 1, name
        args = probes[0]["init_args"]
        assert args.get("train_split", "train") != args.get("eval_split", "val")
        assert args["data"]["class_path"].endswith("LandCoverSegmentationDataModule")


@pytest.mark.parametrize("name", FIT_CONFIGS)
def test_fit_config_names_no_output_path_but_default_root_dir(name: str) -> None:
    """Logs and checkpoints follow `--trainer.default_root_dir` (geomae.runs)."""
    trainer = yaml.safe_load((CONFIGS / name).read_text())["trainer"]
    loggers = trainer.get("logger") or []
    for logger in loggers if isinstance(loggers, list) else [loggers]:
        if isinstance(logger, dict):
            assert "save_dir" not in (logger.get("init_args") or {}), logger["class_path"]
    for callback in trainer.get("callbacks") or []:
        assert "dirpath" not in (callback.get("init_args") or {}), callback["class_path"]
