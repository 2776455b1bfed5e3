"""`geomae bench-bands` on the BigEarthNet v2 fixture: multi-label mAP cells."""

import importlib.util
import itertools
from pathlib import Path

from geomae.main import main

FIXTURE = Path(__file__).parents[1] / "data" / "bigearthnet_v2" / "data.py"


def _fixture_module():
    spec = importlib.util.spec_from_file_location("bigearthnet_v2_fixture_bench", FIXTURE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_multilabel_benchmark_reports_map(tmp_path, backbone_all, bench):
    data = _fixture_module()
    root = tmp_path / "benv2"
    data.write_benv2(root, form="lmdb", reference_maps=False)
    out = tmp_path / "out"
    cfg = bench.eurosat_config(
        root,
        out,
        backbone=backbone_all,
        data={
            "class_path": "geomae.datamodules.BigEarthNetV2DataModule",
            "init_args": {
                "root": str(root),
                "batch_size": 4,
                "include_snowy": True,
                "include_cloudy": True,
            },
        },
        band_sets={"rgb": "rgb", "all": "all"},
        seeds=[0],
    )
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0
    rows = bench.read_csv(out / "results.csv")
    expected = set(
        itertools.product(
            ["rgb", "all"], ["linear", "stats_baseline"], [0], ["mAP_micro", "mAP_macro"]
        )
    )
    assert bench.cells_of(rows) == expected
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    assert "mAP_macro" in (out / "results.md").read_text()
