"""The parsed benchmark configuration feeds result fingerprints: it must not drift.

``data/bench_config_identity.json`` holds what the hand-written parser (before the
jsonargparse rewrite, issue #13) made of every shipped ``configs/bench_bands_*.yaml``
and of the configurations in :data:`CASES` (scalar shorthands, nulls, several
backbones): the ``identity()`` of each section and every other value that enters a
cell fingerprint, a feature-cache key or the recorded ``config.yaml``. A change here
would orphan every finished cell of a resumed benchmark. Regenerate only on purpose::

    python tests/evaluation/test_config_identity.py > tests/evaluation/data/bench_config_identity.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from geomae.evaluation.config import BenchConfig, load_config, parse_config

ROOT = Path(__file__).parents[2]
FIXTURE = Path(__file__).parent / "data" / "bench_config_identity.json"
SHIPPED = sorted(p.name for p in (ROOT / "configs").glob("bench_bands_*.yaml"))

_EUROSAT = {"class_path": "geomae.datamodules.EuroSATDataModule", "init_args": {"root": "x"}}
_BASE: dict[str, Any] = {
    "backbone": "w.safetensors",
    "data": _EUROSAT,
    "band_sets": {"rgb": "rgb", "10m": "10m", "custom": ["b8", "B4", "b11"]},
    "protocols": ["linear", "stats_baseline"],
    "seeds": [0, 1, 2],
    "output": "out",
}
#: Configurations beyond the shipped ones, each exercising a shorthand of the YAML.
CASES: dict[str, dict[str, Any]] = {
    "minimal": _BASE,
    "scalars": {
        **_BASE,
        "data": {**_EUROSAT, "init_args": {"root": "x", "num_workers": 2, "pin_memory": True}},
        "protocols": "linear",
        "seeds": 3,
        "label_fractions": 1,
        "max_samples": 5,
        "img_size": 32,
        "device": "cuda:1",
        "linear": {"C": 1, "train_fraction": 1, "max_iter": None, "max_train_pixels": None},
        "finetune": {
            "max_steps": 10,
            "val_checks": None,
            "val_fraction": 0.5,
            "task_args": None,
            "trainer": None,
        },
    },
    "random_init": {
        **_BASE,
        "backbone": None,
        "arch": {"size": "tiny", "patch_size": 8},
        "data": {**_EUROSAT, "init_args": {"root": "x", "stats": "s.yaml"}},
        "max_samples": {"train": 10},
        "label_fractions": [0.05, 0.5, 1.0],
        "protocols": ["random_init", "finetune_random_init"],
        "finetune": {
            "max_epochs": 3,
            "min_steps": 7,
            "mode": "finetune_from_scratch_head",
            "task_args": {"lr": 1e-3},
            "trainer": {"precision": "bf16-mixed", "callbacks": ["x"]},
        },
    },
    "nulls": {
        **_BASE,
        "data": {"class_path": _EUROSAT["class_path"], "init_args": None},
        "backbones": None,
        "arch": None,
        "img_size": None,
        "max_samples": None,
        "label_fractions": None,
        "linear": None,
        "finetune": None,
    },
    "backbones": {
        **{k: v for k, v in _BASE.items() if k != "backbone"},
        "backbones": {"ssl4eo": "runs/ssl4eo.safetensors", "ours": "runs/w.safetensors"},
    },
}


def identity_inputs(cfg: BenchConfig) -> dict[str, Any]:
    """Every value of ``cfg`` that a fingerprint, a cache key or ``config.yaml`` reads."""
    out: dict[str, Any] = {
        "backbone": None if cfg.backbone is None else str(cfg.backbone),
        "backbones": {k: str(v) for k, v in cfg.backbones.items()},
        "arch": cfg.arch,
        "data": cfg.data.identity(),
        "data_class_path": cfg.data.class_path,
        "data_init_args": cfg.data.init_args,
        "img_size": cfg.img_size,
        "band_sets": {k: list(v) for k, v in cfg.band_sets.items()},
        "band_set_order": list(cfg.band_sets),
        "protocols": list(cfg.protocols),
        "seeds": list(cfg.seeds),
        "label_fractions": list(cfg.label_fractions),
        "max_samples": cfg.max_samples,
        "device": cfg.device,
        "output": str(cfg.output),
        "linear": cfg.linear.identity(),
        "finetune": cfg.finetune.identity(),
        "raw": cfg.raw,
    }
    if cfg.backbones:
        out["for_backbone"] = {
            name: identity_inputs(cfg.for_backbone(name)) for name in cfg.backbones
        }
    return out


def _text(value: Any) -> str:
    # as records.fingerprint / features.feature_key serialize (1 and 1.0 differ)
    return json.dumps(value, sort_keys=True, default=str)


def _current() -> dict[str, Any]:
    out = {name: identity_inputs(load_config(ROOT / "configs" / name)) for name in SHIPPED}
    out.update({name: identity_inputs(parse_config(raw)) for name, raw in CASES.items()})
    return out


def test_the_fixture_covers_every_shipped_config():
    recorded = json.loads(FIXTURE.read_text())
    assert SHIPPED and set(SHIPPED) | set(CASES) == set(recorded)


@pytest.mark.parametrize("name", [*SHIPPED, *CASES])
def test_identity_inputs_are_unchanged(name):
    recorded = json.loads(FIXTURE.read_text())[name]
    if name in CASES:
        cfg = parse_config(CASES[name])
    else:
        cfg = load_config(ROOT / "configs" / name)
    assert _text(identity_inputs(cfg)) == _text(recorded)


if __name__ == "__main__":
    sys.stdout.write(json.dumps(_current(), indent=1, sort_keys=True) + "\n")
