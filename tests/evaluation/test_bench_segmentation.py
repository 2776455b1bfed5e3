"""`geomae bench-bands` on the land-cover segmentation fixture."""

import itertools
import json

import numpy as np
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
    assert info["monitor"] == "val/mIoU" and [s for s, _ in info["val_curve"]] == [1, 2]
    assert info["best_step"] in (1, 2) and info["lp"]["head_steps"] == 1
    assert all(0.0 <= v <= 1.0 for v in records["finetune"]["metrics"].values())
