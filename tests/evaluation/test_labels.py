"""Label fractions: stratified per class, seeded, nested; and what they do in a benchmark."""

import json

import numpy as np
import pytest
import xarray as xr

from geomae.errors import DataError
from geomae.evaluation.labels import stratified_subset, tile_strata
from geomae.evaluation.report import netcdf_engine
from geomae.main import main


def test_every_class_keeps_its_share_and_at_least_one_tile():
    strata = np.repeat([0, 1, 2], [100, 20, 3])  # imbalanced classes
    rows = stratified_subset(strata, 0.1, seed=0)
    counts = np.bincount(strata[rows], minlength=3)
    assert counts.tolist() == [10, 2, 1]  # round(0.1 n), at least one per class
    assert (np.diff(rows) > 0).all()  # sorted, no repeats
    assert stratified_subset(strata, 1.0, seed=3).tolist() == list(range(len(strata)))


def test_subsets_are_seeded_and_nested():
    strata = np.repeat(np.arange(5), 40)
    a, b = stratified_subset(strata, 0.1, seed=0), stratified_subset(strata, 0.1, seed=0)
    assert a.tolist() == b.tolist()
    assert a.tolist() != stratified_subset(strata, 0.1, seed=1).tolist()
    small, large = stratified_subset(strata, 0.05, seed=2), stratified_subset(strata, 0.5, seed=2)
    assert set(small) <= set(large)


def test_strata_of_multilabel_and_segmentation_tiles():
    multi_hot = np.array([[1, 1, 0], [1, 0, 0], [1, 0, 1], [0, 0, 0]])
    # label frequencies 3, 1, 1: each tile's rarest positive label; no label -> K
    assert tile_strata(multi_hot, kind="multilabel", num_classes=3).tolist() == [1, 0, 2, 3]
    masks = np.full((3, 4, 4), 255)
    masks[0, :3] = 2  # dominant class 2
    masks[0, 3] = 1
    masks[1, :, :1] = 0  # class 0 on a few pixels, the rest unlabelled
    strata = tile_strata(masks, kind="segmentation", num_classes=3, ignore_index=255)
    assert strata.tolist() == [2, 0, -1]  # a tile without labelled pixels is never drawn
    assert stratified_subset(strata, 1.0, seed=0).tolist() == [0, 1]
    with pytest.raises(DataError):
        stratified_subset(np.full(4, -1), 0.5, seed=0)


def test_label_fraction_axis_in_every_output(tmp_path, eurosat_root, backbone_all, bench):
    out = tmp_path / "out"
    protocols = ["linear", "finetune", "finetune_random_init"]
    cfg = bench.eurosat_config(
        eurosat_root, out, backbone=backbone_all, band_sets={"rgb": "rgb"},
        protocols=protocols, seeds=[0, 1], label_fractions=[0.1, 1.0],
        finetune={"max_steps": 2, "max_epochs": None, "min_steps": 1, "val_checks": 1},
    )  # fmt: skip
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0

    rows = bench.read_csv(out / "results.csv")
    assert {(r["protocol"], r["label_fraction"]) for r in rows} == {
        (p, f) for p in protocols for f in ("0.1", "1")
    }
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 2 * 2
    small = [r for r in records if r["label_fraction"] == 0.1]
    # 20 training tiles, 2 per class: 0.1 keeps one tile of each of the 10 classes
    assert all(r["info"]["train_tiles"] == 10 for r in small)
    full = [r for r in records if r["label_fraction"] == 1.0]
    assert all("train_tiles" not in r["info"] for r in full)
    assert {r["info"]["pretrained"] for r in records if r["protocol"] != "linear"} == {True, False}

    with xr.open_dataset(out / "results.nc", engine=netcdf_engine()) as ds:
        ds.load()
    assert ds["OA"].dims == ("band_set", "label_fraction", "protocol", "seed")
    assert list(ds["label_fraction"].values) == [0.1, 1.0]
    assert not np.isnan(ds["OA"].values).any()
    md = (out / "results.md").read_text()
    assert "| band set | bands | labels | linear OA" in md
    assert "| rgb | B02 B03 B04 | 0.1 |" in md and "| rgb | B02 B03 B04 | 1 |" in md
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert not (out / "finetune-checkpoints").exists() or not any(
        (out / "finetune-checkpoints").rglob("*.ckpt")
    )

    # the probe of a label fraction < 1 is another cell than the full-label one
    fingerprints = {
        (r["protocol"], r["label_fraction"], r["seed"]): r["fingerprint"] for r in records
    }
    assert fingerprints[("linear", 0.1, 0)] != fingerprints[("linear", 1.0, 0)]
