"""bench-bands with `backbones:`: an imported timm ViT and a geomae export, one table."""

import csv
import sys
from pathlib import Path

import pytest
import yaml

from geomae.errors import BandError, ConfigError
from geomae.evaluation import load_config, run_benchmark
from geomae.main import main


@pytest.fixture(scope="module")
def geomae_backbone(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).parents[1] / "convert"))
    from convert_helpers import make_mae, save_checkpoint

    from geomae.convert import export_weights

    root = tmp_path_factory.mktemp("geomae_bb")
    ckpt = save_checkpoint(make_mae("satmae", seed=4), root / "mae.ckpt")
    return export_weights(ckpt, root / "ours.safetensors")


def _config(tmp_path, eurosat_root, backbones, **extra):
    cfg = {
        "backbones": {k: str(v) for k, v in backbones.items()},
        "data": {
            "class_path": "geomae.datamodules.EuroSATDataModule",
            "init_args": {"root": str(eurosat_root), "batch_size": 8, "processing_level": None},
        },
        "band_sets": {"rgb": "rgb", "rgbn": "rgbn"},
        "protocols": ["linear"],
        "seeds": [0],
        "output": str(tmp_path / "out"),
        "device": "cpu",
        "img_size": 32,
        "linear": {"max_iter": 100},
        **extra,
    }
    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def compared(tmp_path_factory, eurosat_root, ssl4eo_like, geomae_backbone):
    """(config path, outcome) of a benchmark of both backbones (run once)."""
    tmp_path = tmp_path_factory.mktemp("compare")
    path = _config(tmp_path, eurosat_root, {"ssl4eo": ssl4eo_like, "ours": geomae_backbone})
    return path, run_benchmark(load_config(path))


def test_two_backbones_one_table(compared):
    path, outcome = compared
    out = path.parent / "out"
    assert len(outcome.ran) == 2 * 2 and outcome.skipped == []
    for name in ("ssl4eo", "ours"):  # each backbone: the single-backbone layout
        for file in ("cells.jsonl", "results.csv", "results.md", "config.yaml"):
            assert (out / name / file).is_file(), (name, file)
        sub = yaml.safe_load((out / name / "config.yaml").read_text())
        assert "backbones" not in sub and sub["output"] == str(out / name)
    for file in ("results.csv", "results.md", "results.nc", "results.png", "config.yaml"):
        assert (out / file).is_file(), file
    with (out / "results.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert {(r["backbone"], r["band_set"], r["protocol"]) for r in rows} == {
        (b, s, "linear") for b in ("ssl4eo", "ours") for s in ("rgb", "rgbn")
    }
    md = outcome.markdown
    assert "| band set | bands | backbone | linear OA |" in md
    assert "| rgb | B02 B03 B04 | ssl4eo |" in md and "|  |  | ours |" in md
    import xarray as xr

    with xr.open_dataset(out / "results.nc") as ds:
        assert list(ds["backbone"].values) == ["ssl4eo", "ours"]
        assert ds["OA"].dims == ("backbone", "band_set", "label_fraction", "protocol", "seed")


def test_a_rerun_resumes_every_backbone(compared):
    path, _ = compared
    again = run_benchmark(load_config(path))
    assert again.ran == [] and len(again.skipped) == 4


def test_every_backbone_is_checked_before_anything_is_written(
    tmp_path, eurosat_root, ssl4eo_like, geomae_backbone
):
    path = _config(
        tmp_path,
        eurosat_root,
        {"ours": geomae_backbone, "ssl4eo": ssl4eo_like},
        band_sets={"rgb": "rgb", "b10": ["B10"]},
    )
    with pytest.raises(BandError, match="backbone 'ours'.*'b10' needs B10"):
        run_benchmark(load_config(path))
    assert not (tmp_path / "out").exists()


def test_level_mismatch_is_refused_before_the_run(tmp_path, eurosat_root, l2a_like):
    path = _config(tmp_path, eurosat_root, {"l2a": l2a_like})
    cfg = yaml.safe_load(path.read_text())
    cfg["data"]["init_args"]["processing_level"] = "L1C"
    path.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError, match="pretrained on Sentinel-2 L2A data"):
        run_benchmark(load_config(path))
    assert not (tmp_path / "out").exists()


def test_backbone_and_backbones_together_is_an_error(tmp_path, eurosat_root, ssl4eo_like, capsys):
    path = _config(tmp_path, eurosat_root, {"a": ssl4eo_like}, backbone=str(ssl4eo_like))
    assert main(["bench-bands", "--config", str(path)]) == 2
    assert "backbone and backbones are both given" in capsys.readouterr().err
