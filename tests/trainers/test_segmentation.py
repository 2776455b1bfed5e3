"""SegmentationTask through the real CLI on the generated land-cover scene (and the real one)."""

from pathlib import Path

import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from geomae.bands import L2A_BANDS
from geomae.datamodules import EuroSATDataModule, LandCoverSegmentationDataModule
from geomae.errors import ConfigError
from geomae.main import main
from geomae.metadata import GeoMetadata
from geomae.stats import BandStat, BandStats
from geomae.trainers import SegmentationTask
from geomae.trainers.segmentation import iou_from_confusion, uper_indices

# rasterio's window arithmetic warns on every read of the generated scene
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")

SAMPLE = Path(__file__).parents[2] / "datasets" / "sentinel2_sample"
TINY_SEG = {
    "size": "tiny",
    "groups": "satmae",
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "patch_size": 8,
}


@pytest.fixture(scope="module")
def landcover_stats(tmp_path_factory, landcover_data) -> Path:
    path = tmp_path_factory.mktemp("lc_stats") / "stats.yaml"
    BandStats({b: BandStat(float(landcover_data.value_of(b)), 100.0) for b in L2A_BANDS}).save(path)
    return path


def _data(landcover_paths, landcover_data, stats: Path) -> dict:
    return {
        "paths": str(landcover_paths["scene"]),
        "label_paths": str(landcover_paths["vector"]),
        "classes": list(landcover_data.CLASSES),
        "stats": str(stats),
        "patch_size": 16,
        "batch_size": 3,
        "length": 6,
    }


def _datamodule(landcover_paths, landcover_data, stats: Path) -> LandCoverSegmentationDataModule:
    return LandCoverSegmentationDataModule(**_data(landcover_paths, landcover_data, stats))


def test_fit_then_test_logs_iou_per_class(
    landcover_paths, landcover_data, landcover_stats, tmp_path, ft
):
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "segment_sample_osm.yaml",
        out,
        data=_data(landcover_paths, landcover_data, landcover_stats),
        model={"arch": TINY_SEG, "decoder_channels": 16},
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    metrics = ft.read_metrics(out)
    assert len(metrics["train/loss"]) == 2
    for key in ("train/loss", "val/loss", "val/OA", "val/mIoU"):
        ft.assert_finite(metrics[key])
    per_class = {k: v for k, v in metrics.items() if k.startswith("val/IoU_")}
    assert per_class and set(per_class) <= {f"val/IoU_{c}" for c in landcover_data.CLASSES}
    assert all(0.0 <= v[0] <= 1.0 for v in per_class.values())
    assert 0.0 <= metrics["val/mIoU"][0] <= 1.0

    ckpt_path = out / "checkpoints" / "last.ckpt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=True)
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.bands == list(L2A_BANDS) and meta.img_size == 16 and meta.patch_size == 8
    assert meta.offset == 0.0 and meta.stats.bands["B04"].mean == landcover_data.value_of("B04")
    assert meta.extra["class_names"] == list(landcover_data.CLASSES)
    assert meta.extra["ignore_index"] == 255 and meta.extra["feature_indices"] == [0, 0, 0, 1]
    assert ckpt["hyper_parameters"]["num_classes"] == 3

    assert main(["test", "--config", str(cfg), "--ckpt_path", str(ckpt_path)]) == 0
    metrics = ft.read_metrics(out)
    for key in ("test/loss", "test/OA", "test/mIoU"):
        ft.assert_finite(metrics[key])
    assert any(k.startswith("test/IoU_") for k in metrics)

    task = SegmentationTask.load_from_checkpoint(ckpt_path, weights_only=True).eval()
    probs = task.predict_step({"image": torch.zeros(2, 12, 16, 16)}, 0)
    assert probs.shape == (2, 3, 16, 16)
    assert torch.allclose(probs.sum(1), torch.ones(2, 16, 16), atol=1e-5)


def test_resizes_tiles_to_img_size_and_logits_back(
    landcover_paths, landcover_data, landcover_stats
):
    dm = _datamodule(landcover_paths, landcover_data, landcover_stats)
    task = SegmentationTask(arch={**TINY_SEG, "patch_size": 16}, img_size=32, decoder_channels=8)
    task.setup_from_datamodule(dm)
    assert task.backbone.img_size == (32, 32)
    assert task(torch.randn(2, 12, 16, 16)).shape == (2, 3, 16, 16)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log")
def test_batch_without_labelled_pixels_gives_zero_loss(
    landcover_paths, landcover_data, landcover_stats
):
    dm = _datamodule(landcover_paths, landcover_data, landcover_stats)
    task = SegmentationTask(arch=TINY_SEG, mode="finetune", decoder_channels=8)
    task.setup_from_datamodule(dm)
    batch = {"image": torch.randn(2, 12, 16, 16), "mask": torch.full((2, 16, 16), 255)}
    loss = task.training_step(batch, 0)
    assert torch.isfinite(loss) and loss.item() == 0.0
    loss.backward()
    grads = [p.grad for p in task.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)

    # one labelled pixel: the loss is that pixel's cross-entropy, not diluted by the rest
    batch["mask"][0, 3, 4] = 1
    logits = task(batch["image"])
    expected = torch.nn.functional.cross_entropy(logits[0, :, 3, 4][None], torch.tensor([1]))
    assert torch.allclose(task.loss(logits, batch["mask"]), expected, atol=1e-6)


def test_iou_from_confusion_matches_torchmetrics():
    g = torch.Generator().manual_seed(0)
    preds = torch.randint(0, 5, (4, 16, 16), generator=g)
    target = torch.randint(0, 4, (4, 16, 16), generator=g)  # class 4 never in the labels
    target[:, :3] = 255
    confusion = torch.zeros(5, 5, dtype=torch.long)
    keep = target != 255
    confusion.index_put_(
        (target[keep], preds[keep]), torch.ones(int(keep.sum()), dtype=torch.long), accumulate=True
    )
    iou, present = iou_from_confusion(confusion)
    per_class = MulticlassJaccardIndex(num_classes=5, ignore_index=255, average="none")(
        preds, target
    )
    macro = MulticlassJaccardIndex(num_classes=5, ignore_index=255, average="macro")(preds, target)
    assert torch.allclose(iou, per_class)
    assert present.all()  # class 4 is predicted
    assert torch.allclose(iou[present].mean(), macro)
    iou, present = iou_from_confusion(torch.diag(torch.tensor([3, 0, 2])))
    assert present.tolist() == [True, False, True] and iou.tolist() == [1.0, 0.0, 1.0]


def test_uper_indices():
    assert uper_indices(12) == [2, 5, 8, 11]
    assert uper_indices(24) == [5, 11, 17, 23]
    assert uper_indices(4) == [0, 1, 2, 3]
    assert uper_indices(2) == [0, 0, 0, 1]


def test_rejects_a_classification_datamodule(eurosat_root):
    task = SegmentationTask(arch=TINY_SEG)
    with pytest.raises(ConfigError, match=r"handles \['segmentation'\] data.*'multiclass'"):
        task.setup_from_datamodule(EuroSATDataModule(root=eurosat_root))
    with pytest.raises(ConfigError, match="4 blocks"):
        SegmentationTask(arch=TINY_SEG, feature_indices=[0, 1])


@pytest.mark.slow
def test_sample_scene_config_runs_end_to_end(tmp_path, ft):
    if not (SAMPLE / "IMG_DATA").is_dir():
        pytest.skip("bundled sample scene not present")
    out = tmp_path / "run"
    cfg = ft.tiny_config(
        "segment_sample_osm.yaml",
        out,
        data={
            "paths": str(SAMPLE / "IMG_DATA"),
            "label_paths": str(SAMPLE / "osm_landuse.gpkg"),
            "stats": str(SAMPLE / "stats.yaml"),
            "length": 16,
        },
        model={"lp_steps": 2},  # LP-FT's head-only steps read the real scene too
        trainer={"limit_val_batches": 2},
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    metrics = ft.read_metrics(out)
    for key in ("train/loss", "val/loss", "val/mIoU"):
        ft.assert_finite(metrics[key])
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["geomae"]["extra"]["class_names"] == [
        "farm",
        "forest",
        "grass",
        "meadow",
        "residential",
        "scrub",
        "water",
        "wetland",
    ]


@pytest.mark.parametrize("mode", ["linear", "finetune"])
def test_pretrained_backbone_frozen_only_in_linear_mode(
    pretrained, landcover_paths, landcover_data, tmp_path, ft, mode
):
    out = tmp_path / "run"
    data = _data(landcover_paths, landcover_data, Path("unused"))
    data["stats"] = None  # the backbone's statistics normalize the data
    cfg = ft.tiny_config(
        "segment_sample_osm.yaml",
        out,
        data=data,
        model={
            "backbone": str(pretrained["weights"]),
            "arch": None,
            "mode": mode,
            "decoder_channels": 16,
        },
    )
    assert main(["fit", "--config", str(cfg)]) == 0
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    state = {
        k.removeprefix("backbone."): v
        for k, v in ckpt["state_dict"].items()
        if k.startswith("backbone.")
    }
    same = {k: torch.equal(state[k], v) for k, v in pretrained["encoder"].items()}
    if mode == "linear":
        assert all(same.values())
    else:
        assert not same["blocks.1.mlp.fc2.weight"] and not same["patch_embed.projs.0.weight"]
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.stats.bands == pretrained["stats"].bands and meta.img_size == 16
    ft.assert_finite(ft.read_metrics(out)["val/mIoU"])
