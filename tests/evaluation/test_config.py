"""Parsing and validation of the benchmark YAML."""

import re

import pytest

from geomae.errors import BandError, ConfigError
from geomae.evaluation import load_config, parse_config

EUROSAT = {"class_path": "geomae.datamodules.EuroSATDataModule", "init_args": {"root": "x"}}


def minimal(**extra):
    cfg = {
        "backbone": "w.safetensors",
        "data": EUROSAT,
        "band_sets": {"rgb": "rgb", "10m": "10m", "custom": ["b8", "B4", "b11"]},
        "protocols": ["linear", "stats_baseline"],
        "seeds": [0, 1, 2],
        "output": "out",
    }
    cfg.update(extra)
    return cfg


def test_minimal_config_resolves_band_sets_and_defaults():
    cfg = parse_config(minimal())
    assert cfg.band_sets == {
        "rgb": ("B02", "B03", "B04"),
        "10m": ("B02", "B03", "B04", "B08"),
        "custom": ("B04", "B08", "B11"),
    }
    assert cfg.protocols == ("linear", "stats_baseline")
    assert cfg.seeds == (0, 1, 2)
    assert str(cfg.backbone) == "w.safetensors" and cfg.arch is None
    assert cfg.max_samples == {"train": None, "val": None, "test": None}
    assert cfg.linear.C == (1.0,) and cfg.linear.pool == "avg"
    assert cfg.finetune.max_epochs == 1 and cfg.finetune.max_steps == -1
    assert cfg.device == "auto"


def test_optional_sections_are_parsed():
    cfg = parse_config(
        minimal(
            max_samples={"train": 100, "test": 50},
            linear={"C": [0.1, 1, 10], "train_fraction": 0.5, "pool": "token"},
            finetune={"max_epochs": None, "max_steps": 5, "task_args": {"base_lr": 0.01}},
            img_size=128,
            device="cpu",
        )
    )
    assert cfg.max_samples == {"train": 100, "val": None, "test": 50}
    assert cfg.linear.C == (0.1, 1.0, 10.0) and cfg.linear.train_fraction == 0.5
    assert cfg.linear.pool == "token"
    assert cfg.finetune.max_epochs is None and cfg.finetune.max_steps == 5
    assert cfg.finetune.task_args == {"base_lr": 0.01}
    assert cfg.img_size == 128 and cfg.device == "cpu"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bogus": 1}, r'key "bogus": unknown key; expected some of \[.*\'seeds\''),
        ({"protocols": ["linear", "knn"]}, r'key "protocols": .*Got value: knn'),
        ({"seeds": []}, r'key "seeds": .*non-empty'),
        ({"seeds": [0, 0]}, r'key "seeds": must be a non-empty list without repeats'),
        ({"band_sets": {}}, r'key "band_sets": must be a non-empty mapping'),
        ({"band_sets": {"a b": "rgb"}}, r'key "band_sets": name \'a b\''),
        ({"arch": {"size": "tiny"}}, r'key "arch": given together with backbone'),
        (
            {"data": {**EUROSAT, "init_args": {"root": "x", "bands": "rgb"}}},
            r'key "data.init_args": .*band sets choose',
        ),
        (
            {"data": {**EUROSAT, "init_args": {"root": "x", "stats": "s.yaml"}}},
            r'key "data.init_args.stats": .*statistics stored in the backbone',
        ),
        (
            {"data": {"class_path": "geomae.datamodules.Nope"}},
            r'"data.class_path": .*no class \'Nope\'',
        ),
        ({"data": {"class_path": "nomodule.X"}}, r'key "data.class_path": cannot import nomodule'),
        ({"max_samples": {"training": 3}}, r'key "max_samples": .*training'),
        ({"max_samples": 0}, r'key "max_samples": .*PositiveInt'),
        ({"linear": {"C": -1}}, r'key "linear.C": .*PositiveFloat: -1'),
        ({"linear": {"train_fraction": 0}}, r'key "linear.train_fraction": .*v>0 and v<=1'),
        ({"linear": {"nope": 1}}, r'key "linear.nope": unknown key'),
        ({"linear": 3}, r'key "linear": expected a mapping'),
        ({"finetune": {"max_epochs": None}}, r'key "finetune": needs a budget'),
        (
            {"finetune": {"task_args": {"backbone": "x"}}},
            r'"finetune.task_args": sets \[\'backbone\'\]',
        ),
        ({"finetune": {"trainer": {"logger": True}}}, r'"finetune.trainer": sets \[\'logger\'\]'),
        ({"device": "tpu"}, r'key "device": .*tpu'),
        ({"raw": {}}, r'key "raw": unknown key'),
    ],
)
def test_invalid_values_are_config_errors(change, message):
    with pytest.raises(ConfigError) as info:
        parse_config(minimal(**change), source="bench.yaml")
    assert re.search(message, str(info.value)), str(info.value)
    assert str(info.value).startswith("bench.yaml: key ")
    assert "\n" not in str(info.value)


def test_missing_required_key_is_named():
    cfg = minimal()
    del cfg["output"]
    with pytest.raises(ConfigError, match='key "output": missing'):
        parse_config(cfg)


def test_shorthands_and_nulls_mean_one_item_lists_and_defaults():
    cfg = parse_config(
        minimal(seeds=4, protocols="linear", label_fractions=1, linear={"C": 1, "max_iter": None})
    )
    assert cfg.seeds == (4,) and cfg.protocols == ("linear",) and cfg.label_fractions == (1.0,)
    assert cfg.linear.C == (1.0,) and type(cfg.linear.C[0]) is float
    assert cfg.linear.max_iter == 1000 and type(cfg.seeds[0]) is int
    assert parse_config(minimal(max_samples=5)).max_samples == {"train": 5, "val": 5, "test": 5}
    assert (
        parse_config(minimal(finetune={"max_epochs": None, "max_steps": 3})).finetune.max_epochs
        is None
    )


def test_free_form_arguments_are_kept_as_written():
    task_args = {"lr": "1e-3", "warmup_steps": 0}  # jsonargparse alone would make lr a float
    cfg = parse_config(
        minimal(finetune={"task_args": task_args}, backbone=None, arch={"x": "1e-3"})
    )
    assert cfg.finetune.task_args == task_args and cfg.arch == {"x": "1e-3"}
    assert cfg.raw["finetune"]["task_args"] == task_args  # the parser edits only a copy


def test_stats_are_allowed_with_a_random_init_backbone():
    cfg = parse_config(
        minimal(
            backbone=None,
            arch={"size": "tiny"},
            data={**EUROSAT, "init_args": {"root": "x", "stats": "s.yaml"}},
        )
    )
    assert cfg.backbone is None and cfg.arch == {"size": "tiny"}
    assert cfg.data.init_args["stats"] == "s.yaml"


def test_unknown_band_names_the_band_set():
    with pytest.raises(BandError, match=r"band set 'custom'.*unknown Sentinel-2 band 'B13'"):
        parse_config(minimal(band_sets={"rgb": "rgb", "custom": ["B04", "B13"]}))


def test_load_config_applies_overrides(tmp_path):
    import yaml

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    cfg = load_config(path, output=tmp_path / "elsewhere", seeds=[5, 6], device="cpu")
    assert cfg.output == tmp_path / "elsewhere"
    assert cfg.seeds == (5, 6) and cfg.device == "cpu"
    assert cfg.raw["seeds"] == [5, 6] and cfg.raw["output"] == str(tmp_path / "elsewhere")
    assert cfg.source == f"benchmark config {path}"


def test_load_config_replaces_the_backbone(tmp_path):
    import yaml

    path = tmp_path / "bench.yaml"
    path.write_text(yaml.safe_dump(minimal()))
    cfg = load_config(path, backbone=tmp_path / "other.safetensors")
    assert cfg.backbone == tmp_path / "other.safetensors"
    assert cfg.raw["backbone"] == str(tmp_path / "other.safetensors")


def test_load_config_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match=f"{bad}: expected a YAML mapping"):
        load_config(bad)


@pytest.mark.parametrize(
    "name",
    [
        "bench_bands_eurosat.yaml",
        "bench_bands_sample.yaml",
        "bench_bands_pretrain_sample.yaml",
    ],
)
def test_shipped_configs_are_valid(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[2] / "configs" / name)
    assert cfg.backbone is not None and cfg.arch is None
    assert set(cfg.band_sets) >= {"rgb", "rgbn", "all"}
    assert {"10m", "10m20m"} & set(cfg.band_sets)
    assert cfg.band_sets["all"] == (
        "B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12"
    )  # fmt: skip
    assert cfg.seeds == (0, 1, 2)
    assert "linear" in cfg.protocols and "stats_baseline" in cfg.protocols


def test_shipped_finetune_config_compares_finetune_with_linear_and_random_init():
    from pathlib import Path

    cfg = load_config(Path(__file__).parents[2] / "configs" / "bench_bands_finetune_sample.yaml")
    assert set(cfg.protocols) == {"linear", "random_init", "finetune", "finetune_random_init"}
    assert cfg.label_fractions == (0.1, 1.0) and set(cfg.band_sets) == {"rgb", "all"}
    ft = cfg.finetune
    assert ft.mode == "finetune" and ft.max_steps >= ft.min_steps == 100
    assert "lr" in ft.task_args and "base_lr" not in ft.task_args
    assert ft.task_args["warmup_steps"] <= 0.2 * ft.max_steps


def test_label_fractions_and_finetune_selection_settings():
    cfg = parse_config(
        minimal(
            label_fractions=[0.01, 0.1, 1.0],
            protocols=["finetune", "finetune_random_init"],
            finetune={"max_steps": 50, "min_steps": 80, "val_checks": 4, "val_fraction": 0.2},
        )
    )
    assert cfg.label_fractions == (0.01, 0.1, 1.0)
    assert cfg.finetune.budget(batches_per_epoch=3) == 80  # raised to the minimum
    assert parse_config(minimal()).label_fractions == (1.0,)
    assert parse_config(minimal(finetune={"max_epochs": 300})).finetune.budget(3) == 900
    for bad in ([], [0.0], [1.5], [0.1, 0.1], "all"):
        with pytest.raises(ConfigError, match="label_fractions"):
            parse_config(minimal(label_fractions=bad))
    for section in (
        {"val_fraction": 1.0},
        {"min_steps": 0},
        {"trainer": {"val_check_interval": 5}},
    ):
        with pytest.raises(ConfigError):
            parse_config(minimal(finetune=section))
