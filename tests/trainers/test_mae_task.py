"""MAETask through the real CLI (`geomae.main.main`) on generated Sentinel-2 fixtures."""

import csv
import importlib.util
from pathlib import Path

import pytest
import torch
import yaml

from geomae.bands import L2A_BANDS, wavelengths
from geomae.main import main
from geomae.metadata import GeoMetadata
from geomae.stats import BandStat, BandStats
from geomae.trainers import MAETask

DATA_PY = Path(__file__).parents[1] / "data" / "sentinel2" / "data.py"
QUICKSTART = Path(__file__).parents[2] / "configs" / "quickstart.yaml"


def _s2data():
    spec = importlib.util.spec_from_file_location("s2_fixture_data_mae", DATA_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp("scene")
    _s2data().write_band_files(root / "IMG_DATA", size=96, layout="l1c")
    stats = BandStats(
        {b: BandStat(1200.0 + 150 * i, 300.0, 900.0, 2500.0) for i, b in enumerate(L2A_BANDS)}
    )
    stats.save(root / "stats.yaml")
    return root


def _config(scene: Path, out: Path, **model_overrides) -> Path:
    """The quickstart config with tiny sizes and paths pointing at the fixture."""
    cfg = yaml.safe_load(QUICKSTART.read_text())
    cfg["trainer"].update(
        max_epochs=2, log_every_n_steps=1, default_root_dir=str(out), enable_progress_bar=False
    )
    cfg["trainer"]["logger"] = [
        {
            "class_path": "lightning.pytorch.loggers.CSVLogger",
            "init_args": {"save_dir": str(out), "name": "csv", "version": ""},
        },
        {
            "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
            "init_args": {"save_dir": str(out), "name": "tb", "version": ""},
        },
    ]
    cfg["trainer"]["callbacks"] = [
        c for c in cfg["trainer"]["callbacks"] if not c["class_path"].endswith("RichProgressBar")
    ]
    for c in cfg["trainer"]["callbacks"]:
        if c["class_path"].endswith("ModelCheckpoint"):
            c["init_args"]["dirpath"] = str(out / "checkpoints")
    cfg["model"]["init_args"].update(
        embed_dim=32,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
    )
    cfg["model"]["init_args"].update(model_overrides)
    cfg["data"]["init_args"].update(
        paths=str(scene / "IMG_DATA"),
        stats=str(scene / "stats.yaml"),
        patch_size=32,
        batch_size=4,
        length=8,
        num_workers=0,
    )
    path = out / "config.yaml"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _metrics(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_fit_writes_checkpoint_metrics_figures(scene, tmp_path):
    out = tmp_path / "run"
    assert main(["fit", "--config", str(_config(scene, out))]) == 0

    rows = _metrics(out / "csv" / "metrics.csv")
    train = [float(r["train/loss"]) for r in rows if r.get("train/loss")]
    val = [float(r["val/loss"]) for r in rows if r.get("val/loss")]
    assert len(train) == 4 and len(val) == 2  # 2 epochs x 2 steps, 1 val per epoch
    assert all(torch.isfinite(torch.tensor(train + val)))
    assert any(
        r.get("lr-AdamW") or r.get("lr") or any(k.startswith("lr") and r[k] for k in r)
        for r in rows
    )

    pngs = sorted((out / "csv" / "reconstructions").glob("epoch*.png"))
    assert [p.name for p in pngs] == ["epoch000.png", "epoch001.png"]
    assert pngs[0].stat().st_size > 5000
    assert list((out / "tb").glob("events.out.tfevents.*"))

    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.bands == list(L2A_BANDS)
    assert ckpt["geomae"]["wavelengths_nm"] == wavelengths(L2A_BANDS)
    assert meta.groups == [
        ["B02", "B03", "B04", "B08"],
        ["B05", "B06", "B07", "B8A"],
        ["B11", "B12"],
        ["B01", "B09"],
    ]
    assert meta.stats.bands["B03"] == BandStat(1500.0, 300.0, 900.0, 2500.0)
    assert (meta.patch_size, meta.img_size, meta.offset) == (8, 32, 0.0)
    assert meta.arch["embed_dim"] == 32 and meta.arch["depth"] == 1
    assert ckpt["hyper_parameters"]["bands"] == list(L2A_BANDS)

    # the checkpoint alone rebuilds the same model (no DataModule needed)
    task = MAETask.load_from_checkpoint(out / "checkpoints" / "last.ckpt", weights_only=True)
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    for k, v in task.model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_lr_scaled_by_effective_batch_and_warmup_by_steps(scene, tmp_path, caplog):
    out = tmp_path / "run"
    cfg = _config(scene, out, warmup_steps=2, base_lr=2.56e-2)
    args = [
        "fit",
        "--config",
        str(cfg),
        "--trainer.max_epochs",
        "-1",
        "--trainer.max_steps",
        "4",
        "--trainer.accumulate_grad_batches",
        "2",
    ]
    with caplog.at_level("INFO", logger="geomae.trainers.mae"):
        assert main(args) == 0
    # effective batch = 4 (batch) x 1 (world) x 2 (accumulation) = 8 -> lr = 2.56e-2 * 8 / 256
    assert "lr 0.0008 = base_lr 0.0256 x effective batch 8 / 256" in caplog.text
    assert "2 warmup of 4 steps" in caplog.text
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["global_step"] == 4
    sched = ckpt["lr_schedulers"][0]
    assert sched["last_epoch"] == 4


def test_warmup_in_epochs_with_max_steps(scene, tmp_path, caplog):
    cfg = _config(scene, tmp_path / "run", warmup_epochs=1.5)
    args = ["fit", "--config", str(cfg), "--trainer.max_epochs", "-1", "--trainer.max_steps", "5"]
    with caplog.at_level("INFO", logger="geomae.trainers.mae"):
        assert main(args) == 0
    # 8 tiles / batch 4 = 2 batches per epoch -> 1.5 epochs = 3 warmup steps of 5
    assert "3 warmup of 5 steps" in caplog.text


def test_task_rejects_bands_that_differ_from_the_datamodule(scene, tmp_path, capsys):
    cfg = _config(scene, tmp_path / "run", bands=["B02", "B03"])
    assert main(["fit", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "differ from the DataModule's" in err and "geomae: error:" in err


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (["--data.init_args.paths", "/nonexistent/scenes"], "/nonexistent/scenes"),
        (["--data.init_args.bands", "B02,B13"], "unknown Sentinel-2 band 'B13'"),
        (["--model.init_args.patch_size", "7"], "divisible by the patch size 7"),
    ],
)
def test_bad_input_fails_before_training(scene, tmp_path, capsys, override, message):
    cfg = _config(scene, tmp_path / "run")
    assert main(["fit", "--config", str(cfg), *override]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_stats_file_lacking_a_band(scene, tmp_path, capsys):
    partial = tmp_path / "partial.yaml"
    BandStats({b: BandStat(1000.0, 100.0) for b in L2A_BANDS if b != "B11"}).save(partial)
    cfg = _config(scene, tmp_path / "run")
    assert main(["fit", "--config", str(cfg), "--data.init_args.stats", str(partial)]) == 2
    err = capsys.readouterr().err
    assert "B11" in err and "partial.yaml" in err


def test_version_and_usage(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("geomae ")
    assert main(["frobnicate"]) == 2
    assert "unknown command 'frobnicate'" in capsys.readouterr().err


def test_checkpoint_records_the_datamodules_processing_level(scene, tmp_path):
    out = tmp_path / "run"
    cfg = _config(scene, out)
    args = [
        "fit",
        "--config",
        str(cfg),
        "--trainer.max_epochs",
        "1",
        "--data.init_args.processing_level",
        "L1C",
    ]
    assert main(args) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert GeoMetadata.from_dict(ckpt["geomae"]).processing_level == "L1C"
