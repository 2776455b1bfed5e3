"""`geomae bench-bands` end to end on the EuroSAT fixture: table, files, errors."""

import itertools
import json

import numpy as np
import xarray as xr
import yaml

from geomae.evaluation.report import netcdf_engine
from geomae.main import main


def test_eurosat_benchmark_writes_every_cell(tmp_path, eurosat_root, backbone_all, bench, capsys):
    out = tmp_path / "out"
    protocols = ["linear", "stats_baseline", "random_init", "finetune"]
    cfg = bench.eurosat_config(
        eurosat_root,
        out,
        backbone=backbone_all,
        protocols=protocols,
        finetune={"max_steps": 1, "max_epochs": None, "min_steps": 1},
    )
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0

    rows = bench.read_csv(out / "results.csv")
    assert {r["label_fraction"] for r in rows} == {"1"}
    expected = set(
        itertools.product(["rgb", "rgbn", "custom"], protocols, [0, 1], ["OA", "F1_macro"])
    )
    assert bench.cells_of(rows) == expected and len(rows) == len(expected)
    assert all(0.0 <= float(r["value"]) <= 1.0 and float(r["seconds"]) >= 0 for r in rows)
    assert {r["bands"] for r in rows if r["band_set"] == "custom"} == {"B04,B08,B11"}

    with xr.open_dataset(out / "results.nc", engine=netcdf_engine()) as ds:
        ds.load()
    assert ds["OA"].dims == ("band_set", "label_fraction", "protocol", "seed")
    assert ds["OA"].shape == (3, 1, 4, 2) and not np.isnan(ds["OA"].values).any()
    assert list(ds["label_fraction"].values) == [1.0]
    assert list(ds["protocol"].values) == protocols
    assert ds.attrs["bands_rgbn"] == "B02,B03,B04,B08"
    assert ds.attrs["backbone"] == str(backbone_all)

    md = (out / "results.md").read_text()
    assert "| band set | bands | linear OA | linear F1_macro | stats_baseline OA" in md
    assert md in capsys.readouterr().out
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    assert yaml.safe_load((out / "config.yaml").read_text()) == cfg
    versions = json.loads((out / "versions.json").read_text())
    assert {"python", "torch", "torchgeo", "timm", "lightning", "sklearn", "geomae"} <= set(
        versions
    )
    records = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert len(records) == 3 * 4 * 2
    assert {r["eval_split"] for r in records} == {"test"}
    assert all(r["info"]["steps"] == 1 for r in records if r["protocol"] == "finetune")
    assert all(r["info"]["train_samples"] == 16 for r in records if r["protocol"] != "finetune")


def test_linear_features_come_from_the_backbone_with_its_stats(
    tmp_path, eurosat_root, eurosat_data, backbone_all, bench
):
    """The cached rgb embeddings equal the converted encoder's on backbone-normalized tiles."""
    import torch

    from geomae.convert import load_backbone
    from geomae.datamodules import EuroSATDataModule

    out = tmp_path / "out"
    cfg = bench.eurosat_config(
        eurosat_root, out, backbone=backbone_all, band_sets={"rgb": "rgb"}, seeds=[0],
        protocols=["linear", "random_init"],
    )  # fmt: skip
    path = bench.write_config(tmp_path / "b.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 0
    [cached] = sorted((out / "features").glob("train-pretrained-*.npz"))
    [random] = sorted((out / "features").glob("train-random-s0-*.npz"))
    features, labels = np.load(cached)["features"], np.load(cached)["labels"]

    model = load_backbone(backbone_all, bands=["B02", "B03", "B04"], img_size=64, global_pool="avg")
    model.eval()
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb")
    dm.setup("fit")
    train = [dm.train_dataset[i] for i in range(len(dm.train_dataset))]
    image = torch.stack([s["image"] for s in train]).float()  # (N, 3, 64, 64)
    mean = torch.tensor([eurosat_data.value_of(b) for b in ("B02", "B03", "B04")])
    normalized = (image - mean[None, :, None, None]) / 20.0  # the backbone's stats (std 20)
    with torch.no_grad():
        expected = model.forward_head(model.forward_features(normalized), pre_logits=True)
    np.testing.assert_allclose(features, expected.numpy(), rtol=1e-4, atol=1e-4)
    assert labels.tolist() == [int(s["label"]) for s in train]
    assert not np.allclose(np.load(random)["features"], features)  # random init differs


def test_band_set_missing_from_backbone_fails_before_any_cell(
    tmp_path, eurosat_root, backbone_rgbn, bench, capsys
):
    out = tmp_path / "out"
    cfg = bench.eurosat_config(
        eurosat_root, out, backbone=backbone_rgbn,
        band_sets={"rgb": "rgb", "all": "all", "custom": ["B04", "B08", "B11"]},
    )  # fmt: skip
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 2
    line = capsys.readouterr().err.splitlines()[0]
    assert line.startswith("geomae: error: ")
    assert "band set 'all' needs B01, B05, B06, B07, B8A, B09, B11, B12" in line
    assert "band set 'custom' needs B11" in line
    assert "'rgb'" not in line.split("lacks bands")[1]
    assert not out.exists()  # nothing written, no cell ran


def test_missing_backbone_file_is_one_line(tmp_path, eurosat_root, bench, capsys):
    cfg = bench.eurosat_config(
        eurosat_root, tmp_path / "out", backbone=tmp_path / "nope.safetensors"
    )
    path = bench.write_config(tmp_path / "b.yaml", **cfg)
    assert main(["bench-bands", "--config", str(path)]) == 2
    assert "nope.safetensors do not exist" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cli_overrides_output_and_seeds(tmp_path, eurosat_root, backbone_all, bench):
    cfg = bench.eurosat_config(
        eurosat_root, tmp_path / "unused", backbone=backbone_all, band_sets={"rgb": "rgb"},
        protocols=["stats_baseline"],
    )  # fmt: skip
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    out = tmp_path / "chosen"
    args = ["bench-bands", "--config", str(path), "--output", str(out), "--seeds", "3", "4"]
    assert main(args) == 0
    assert not (tmp_path / "unused").exists()
    assert {int(r["seed"]) for r in bench.read_csv(out / "results.csv")} == {3, 4}
    assert yaml.safe_load((out / "config.yaml").read_text())["seeds"] == [3, 4]


def test_mae_checkpoint_backbone_gives_the_converted_features(
    tmp_path, eurosat_root, backbone_all, bench
):
    runs = {}
    for name, weights in (("ckpt", backbone_all.parent / "mae.ckpt"), ("st", backbone_all)):
        out = tmp_path / name
        cfg = bench.eurosat_config(
            eurosat_root, out, backbone=weights, band_sets={"rgb": "rgb"}, seeds=[0],
            protocols=["linear"],
        )  # fmt: skip
        assert (
            main(["bench-bands", "--config", str(bench.write_config(out / "b.yaml", **cfg))]) == 0
        )
        [file] = sorted((out / "features").glob("test-pretrained-*.npz"))
        runs[name] = np.load(file)["features"]
    np.testing.assert_allclose(runs["ckpt"], runs["st"], rtol=1e-5, atol=1e-5)
