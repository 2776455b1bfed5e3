"""`geomae bench-bands` on the land-cover segmentation fixture."""

import itertools
import json

import numpy as np
import pytest
import xarray as xr

from geomae.evaluation.report import netcdf_engine
from geomae.main import main


def test_segmentation_probes(tmp_path, landcover_paths, backbone_landcover, bench):
    out = tmp_path / "out"
    protocols = ["linear", "random_init", "stats_baseline"]
    cfg = bench.landcover_config(
        landcover_paths, out, backbone=backbone_landcover, protocols=protocols
    )
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0
    rows = bench.read_csv(out / "results.csv")
    expected = set(itertools.product(["rgb", "all"], protocols, [0, 1], ["mIoU", "OA"]))
    assert bench.cells_of(rows) == expected and len(rows) == len(expected)
    assert all(0.0 <= float(r["value"]) <= 1.0 for r in rows)
    with xr.open_dataset(out / "results.nc", engine=netcdf_engine()) as ds:
        ds.load()
    assert set(ds.data_vars) == {"mIoU", "OA", "seconds"}
    assert ds["mIoU"].shape == (2, 1, 3, 2) and not np.isnan(ds["mIoU"].values).any()
    assert ds.attrs["bands_all"].split(",")[0] == "B01" and ds.attrs["task"] == "segmentation"
    # per-pixel training samples stay within max_train_pixels
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert len(records) == 2 * 3 * 2
    assert all(0 < r["info"]["train_pixels"] <= 2000 for r in records)
    # stats features are the normalized pixel values: (N, C, 16, 16), masks (N, 16, 16)
    files = sorted((out / "features").glob("train-stats-*.npz"))
    assert len(files) == 2  # one per band set
    shapes = set()
    for file in files:
        data = np.load(file)
        shapes.add(data["features"].shape[1:])
        assert data["labels"].shape[1:] == (16, 16) and data["valid"].dtype == bool
    assert shapes == {(3, 16, 16), (12, 16, 16)}
    # linear maps: (N, D, 2, 2) patch-token maps of the 16-px tiles (patch 8)
    [maps] = sorted((out / "features").glob("train-pretrained-*.npz"))[:1]
    assert np.load(maps)["features"].shape[1:] == (32, 2, 2)


def test_segmentation_finetune_is_scored_on_the_probe_tiles(
    tmp_path, landcover_paths, backbone_landcover, bench
):
    out = tmp_path / "out"
    cfg = bench.landcover_config(
        landcover_paths, out, backbone=backbone_landcover, band_sets={"all": "all"},
        protocols=["finetune", "stats_baseline"], seeds=[0],
        finetune={
            "max_steps": 2, "max_epochs": None, "min_steps": 1, "val_checks": 2,
            "task_args": {"decoder_channels": 8, "lp_steps": 1},
        },
    )  # fmt: skip
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0
    rows = bench.read_csv(out / "results.csv")
    assert bench.cells_of(rows) == {
        ("all", p, 0, m) for p in ("finetune", "stats_baseline") for m in ("mIoU", "OA")
    }
    records = {
        r["protocol"]: r for r in map(json.loads, (out / "cells.jsonl").read_text().splitlines())
    }
    info = records["finetune"]["info"]
    assert info["steps"] == 2 and info["mode"] == "finetune" and info["pretrained"] is True
    # step 0 is the LP-FT start (the fitted head), scored by a whole-val sanity pass
    assert info["monitor"] == "val/mIoU" and [s for s, _ in info["val_curve"]] == [0, 1, 2]
    assert info["start_val"] == pytest.approx(info["val_curve"][0][1], abs=1e-6)
    assert info["best_val"] == pytest.approx(max(v for _, v in info["val_curve"]), abs=1e-6)
    assert info["best_step"] in (0, 1, 2) and info["lp"]["head_steps"] == 1
    assert all(0.0 <= v <= 1.0 for v in records["finetune"]["metrics"].values())


def test_linear_decoder_start_wins_when_fine_tuning_only_hurts(
    tmp_path, landcover_paths, backbone_landcover, bench
):
    out = tmp_path / "out"
    cfg = bench.landcover_config(
        landcover_paths, out, backbone=backbone_landcover, band_sets={"all": "all"},
        protocols=["finetune"], seeds=[0],
        finetune={
            "max_steps": 2, "max_epochs": None, "min_steps": 1, "val_checks": 2,
            # an absurd lr wrecks the fitted probe in one step: the start must be kept
            "task_args": {"decoder": "linear", "lr": 1.0e4, "warmup_steps": 0},
        },
    )  # fmt: skip
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0
    (record,) = map(json.loads, (out / "cells.jsonl").read_text().splitlines())
    info = record["info"]
    assert info["lp"]["probe_pixels"] > 0
    curve = dict((int(s), v) for s, v in info["val_curve"])
    assert set(curve) == {0, 1, 2} and curve[0] > max(curve[1], curve[2])
    assert info["best_step"] == 0 and info["best_val"] == info["start_val"]
    assert info["start_val"] == pytest.approx(curve[0], abs=1e-6)
