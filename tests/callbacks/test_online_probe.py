"""OnlineProbe: probes on generated embeddings, and a real fit through the CLI."""

import csv
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from geomae.callbacks.online_probe import probe_scores
from geomae.callbacks.probe_tiles import majority_labels
from geomae.main import main

DATA = Path(__file__).parents[1] / "data"


def _landcover():
    spec = importlib.util.spec_from_file_location(
        "landcover_fixture_probe", DATA / "landcover" / "data.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _blobs(n: int, num_classes: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.eye(num_classes, 12) * 8.0
    x = np.concatenate([c + rng.normal(size=(n, 12)) for c in centres])
    return x, np.repeat(np.arange(num_classes), n)


def test_separable_features_score_perfectly() -> None:
    x, y = _blobs(30, 4, seed=0)
    q, qy = _blobs(20, 4, seed=1)
    scores = probe_scores(x, y, q, qy, num_classes=4, k=10, C=1.0, max_iter=500)
    assert scores["knn_acc"] >= 0.99 and scores["linear_acc"] >= 0.99
    assert scores["linear_bacc"] >= 0.99
    assert scores["feature_std"] > 0.1


def test_constant_features_score_chance() -> None:
    y = np.repeat(np.arange(4), 25)
    qy = np.repeat(np.arange(4), 10)  # balanced: chance is 1/4
    scores = probe_scores(
        np.ones((100, 6)), y, np.ones((40, 6)), qy, num_classes=4, k=20, C=1.0, max_iter=500
    )
    assert scores["knn_acc"] == pytest.approx(0.25)
    assert scores["linear_acc"] == pytest.approx(0.25)
    assert scores["linear_bacc"] == pytest.approx(0.25)
    assert scores["feature_std"] == pytest.approx(0.0, abs=1e-9)  # collapse is visible


def test_majority_labels_skip_sparsely_labelled_tiles() -> None:
    masks = np.full((3, 4, 4), 255)
    masks[0, :3] = 1  # 12 of 16 labelled, class 1
    masks[0, 3, :2] = 2
    masks[1, 0, 0] = 0  # 1 of 16 labelled
    masks[2] = 2
    labels, kept = majority_labels(masks, num_classes=3, ignore_index=255, min_labelled=0.5)
    assert kept.tolist() == [0, 2] and labels.tolist() == [1, 2]
    labels, kept = majority_labels(masks, num_classes=3, ignore_index=255, min_labelled=0.0)
    assert kept.tolist() == [0, 1, 2] and labels.tolist() == [1, 0, 2]


def _config(paths: dict[str, Path], out: Path, **probe) -> Path:
    lc = _landcover()
    probe_data = {
        "class_path": "geomae.datamodules.LandCoverSegmentationDataModule",
        "init_args": {
            "paths": str(paths["scene"]),
            "label_paths": str(paths["vector"]),
            "classes": list(lc.CLASSES),
            "patch_size": 16,
            "batch_size": 8,
            "num_workers": 0,
            "split_fractions": [0.5, 0.25, 0.25],
        },
    }
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "max_epochs": 2,
            "log_every_n_steps": 1,
            "default_root_dir": str(out),
            "enable_progress_bar": False,
            "enable_model_summary": False,
            "num_sanity_val_steps": 0,
            "logger": [
                {
                    "class_path": "lightning.pytorch.loggers.CSVLogger",
                    "init_args": {"save_dir": str(out), "name": "csv", "version": ""},
                }
            ],
            "callbacks": [
                {
                    "class_path": "geomae.callbacks.OnlineProbe",
                    "init_args": {"data": probe_data, "stride": 8, "min_labelled": 0.5, **probe},
                }
            ],
        },
        "model": {
            "class_path": "geomae.trainers.MAETask",
            "init_args": {
                "groups": "satmae",
                "patch_size": 8,
                "embed_dim": 32,
                "depth": 1,
                "num_heads": 2,
                "decoder_embed_dim": 16,
                "decoder_depth": 1,
                "decoder_num_heads": 2,
                "masking": "independent",
            },
        },
        "data": {
            "class_path": "geomae.datamodules.Sentinel2PretrainDataModule",
            "init_args": {
                "paths": str(paths["scene"]),
                "patch_size": 16,
                "batch_size": 4,
                "length": 8,
                "num_workers": 0,
                "nodata": 0,
            },
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    path = out / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.fixture(scope="module")
def lc_paths(tmp_path_factory) -> dict[str, Path]:
    return _landcover().write_landcover(tmp_path_factory.mktemp("landcover"))


def test_fit_logs_probe_psnr_and_references(lc_paths, tmp_path, caplog) -> None:
    out = tmp_path / "run"
    with caplog.at_level("INFO", logger="geomae.callbacks.online_probe"):
        assert main(["fit", "--config", str(_config(lc_paths, out))]) == 0
    with (out / "csv" / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    probed = [r for r in rows if r.get("probe/knn_acc")]
    assert len(probed) == 2  # every validation (every_n_epochs=1)
    for key in (
        "probe/linear_acc",
        "probe/random_init/linear_acc",
        "probe/stats_baseline/linear_acc",
        "probe/majority_acc",
        "probe/feature_std",
    ):
        assert 0.0 <= float(probed[-1][key]) <= 1.0, key
    val = [r for r in rows if r.get("val/psnr")]
    assert val and all(
        np.isfinite(float(r["val/psnr"])) and np.isfinite(float(r["val/psnr_baseline"]))
        for r in val
    )
    # every band of the fixture is one constant value (the classes are label stripes
    # only): no feature tells the classes apart, so the probe sits at the constant
    # predictor's accuracy
    last = probed[-1]
    assert float(last["probe/linear_acc"]) == pytest.approx(
        float(last["probe/majority_acc"]), abs=0.15
    )

    history = json.loads((out / "csv" / "probe.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1]
    assert history[-1]["minutes"] > history[0]["minutes"] > 0
    assert "val/psnr" in history[-1] and "val/psnr_baseline" in history[-1]
    assert "probe linear_acc" in caplog.text and "masked-patch PSNR" in caplog.text


def test_every_n_epochs_and_last_epoch(lc_paths, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = _config(lc_paths, out, every_n_epochs=5, references=False)
    assert main(["fit", "--config", str(cfg), "--trainer.max_epochs", "3"]) == 0
    history = json.loads((out / "csv" / "probe.json").read_text())
    assert [h["epoch"] for h in history] == [2]  # not due before, but the last epoch is
    assert not any(k.startswith("random_init/") for k in history[0])


def test_probe_bands_must_match_the_encoder(lc_paths, tmp_path, capsys) -> None:
    cfg = yaml.safe_load(_config(lc_paths, tmp_path / "run").read_text())
    cfg["trainer"]["callbacks"][0]["init_args"]["data"]["init_args"]["bands"] = "rgb"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "probe DataModule yields bands ['B02', 'B03', 'B04']" in err


def test_same_split_for_fit_and_score_is_refused(lc_paths, tmp_path, capsys) -> None:
    cfg = _config(lc_paths, tmp_path / "run", eval_split="train")
    assert main(["fit", "--config", str(cfg)]) == 2
    assert "same split" in capsys.readouterr().err


def test_step_budget_ending_inside_an_epoch_probes_the_final_weights(lc_paths, tmp_path) -> None:
    out = tmp_path / "run"
    cfg = _config(lc_paths, out, references=False)
    # 8 tiles / batch 4 = 2 steps per epoch: step 3 ends training inside epoch 1, after
    # epoch 0's validation
    assert (
        main(
            ["fit", "--config", str(cfg), "--trainer.max_epochs", "-1", "--trainer.max_steps", "3"]
        )
        == 0
    )
    history = json.loads((out / "csv" / "probe.json").read_text())
    assert history[-1]["step"] == 3
    with (out / "csv" / "metrics.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r.get("probe/linear_acc")]
    assert rows and rows[-1]["step"] == "3"
