"""LP-FT: the fine-tuning head starts from the probe fitted on frozen features."""

import logging

import numpy as np
import pytest
import torch
from lightning.pytorch import Callback, Trainer

from geomae.datamodules import EuroSATDataModule
from geomae.errors import ConfigError
from geomae.linear_probe import fit_probe, predict_scores
from geomae.trainers import ClassificationTask, SegmentationTask

# rasterio's window arithmetic warns on every read of the generated scene
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


class FirstStep(Callback):
    """Capture, before the first optimizer step, the model's eval-mode outputs on all train tiles."""

    def __init__(self) -> None:
        self.pooled: list[np.ndarray] = []
        self.probs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.head: dict[str, torch.Tensor] = {}
        self.backbone: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def on_train_start(self, trainer, pl_module) -> None:
        pl_module.eval()
        self.head = {k: v.clone() for k, v in pl_module.head.state_dict().items()}
        self.backbone = {k: v.clone() for k, v in pl_module.backbone.state_dict().items()}
        if isinstance(pl_module, ClassificationTask):
            for batch in trainer.datamodule.train_dataloader():
                batch = trainer.strategy.batch_to_device(batch)
                self.pooled.append(pl_module._pooled(batch["image"]).numpy())
                self.probs.append(pl_module(batch["image"]).softmax(dim=1).numpy())
                self.labels.append(batch["label"].numpy())
        pl_module.train()


def _fit(task, dm, *, callback, steps: int = 1) -> None:
    trainer = Trainer(
        accelerator="cpu",
        max_steps=steps,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(task, datamodule=dm)


def _eurosat(root) -> EuroSATDataModule:
    return EuroSATDataModule(root=root, bands="all", batch_size=4, augment="none")


def test_lpft_first_step_predictions_are_the_probes(pretrained, eurosat_root):
    task = ClassificationTask(
        backbone=pretrained["weights"], mode="finetune", drop_path_rate=0.0, lp_C=0.5
    )
    seen = FirstStep()
    _fit(task, _eurosat(eurosat_root), callback=seen)

    x, y = np.concatenate(seen.pooled), np.concatenate(seen.labels)
    assert len(x) == 20 and task.lp_info["probe_samples"] == 20
    probe = fit_probe(x, y, kind="multiclass", C=0.5, max_iter=1000, what="test")
    expected = predict_scores(probe, x, num_classes=10)  # (N, K)
    got = np.concatenate(seen.probs)
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert (got.argmax(1) == expected.argmax(1)).all()
    # the probe is not the trivial near-zero head MAE fine-tuning starts from
    assert seen.head["weight"].abs().max() > 1e-2
    # and the LP stage did not touch the backbone
    for key, value in pretrained["encoder"].items():
        if key in seen.backbone:
            torch.testing.assert_close(seen.backbone[key], value)


def test_lp_stage_on_fewer_samples_than_classes_warns(pretrained, eurosat_root, caplog):
    # 8 probe samples for EuroSAT's 10 classes: a probe that can start fine-tuning at
    # an extreme loss is named; 20 samples (the test above) are enough to stay quiet
    task = ClassificationTask(
        backbone=pretrained["weights"], mode="finetune", drop_path_rate=0.0, lp_max_samples=8
    )
    with caplog.at_level(logging.WARNING, logger="geomae.trainers.classification"):
        _fit(task, _eurosat(eurosat_root), callback=FirstStep())
    assert task.lp_info["probe_samples"] == 8
    assert "fitted on 8 training samples for 10 classes" in caplog.text
    caplog.clear()
    task = ClassificationTask(backbone=pretrained["weights"], mode="finetune", drop_path_rate=0.0)
    with caplog.at_level(logging.WARNING, logger="geomae.trainers.classification"):
        _fit(task, _eurosat(eurosat_root), callback=FirstStep())
    assert task.lp_info["probe_samples"] == 20 and "training samples for" not in caplog.text


def test_from_scratch_head_skips_the_lp_stage(pretrained, eurosat_root):
    task = ClassificationTask(
        backbone=pretrained["weights"], mode="finetune_from_scratch_head", drop_path_rate=0.0
    )
    seen = FirstStep()
    _fit(task, _eurosat(eurosat_root), callback=seen)
    assert task.lp_info == {}
    assert seen.head["weight"].abs().max() < 1e-3  # trunc-normal std 2e-5, as MAE
    assert (seen.head["bias"] == 0).all()


def test_multilabel_lp_stage_fits_one_vs_rest(ben_root):
    from geomae.datamodules import BigEarthNetDataModule

    arch = {"size": "tiny", "groups": "satmae", "embed_dim": 32, "depth": 2, "num_heads": 2}
    task = ClassificationTask(
        backbone=None, arch={**arch, "patch_size": 8}, mode="finetune", img_size=32
    )
    dm = BigEarthNetDataModule(root=ben_root, bands="all", batch_size=2, augment="none")
    _fit(task, dm, callback=FirstStep())
    assert task.lp_info["probe_samples"] > 0
    assert torch.isfinite(task.head.weight).all() and torch.isfinite(task.head.bias).all()


def test_segmentation_lp_stage_trains_the_head_only(pretrained, landcover_dm):
    dm = landcover_dm
    task = SegmentationTask(
        backbone=pretrained["weights"],
        mode="finetune",
        decoder_channels=8,
        lp_steps=3,
        img_size=32,
    )
    seen = FirstStep()
    torch.manual_seed(0)
    _fit(task, dm, callback=seen)
    assert task.lp_info["head_steps"] == 3 and len(task.lp_info["losses"]) == 3
    for key, value in pretrained["encoder"].items():
        if key in seen.backbone:
            torch.testing.assert_close(seen.backbone[key], value)
    # the head moved away from its initialization
    fresh = SegmentationTask(backbone=pretrained["weights"], decoder_channels=8, img_size=32)
    torch.manual_seed(0)
    fresh.setup_from_datamodule(dm)
    moved = [not torch.equal(seen.head[k], v) for k, v in fresh.head.state_dict().items()]
    assert any(moved)


def test_lr_as_given_scaled_base_lr_warmup_clamp_and_min_steps_are_logged(
    pretrained, eurosat_root, caplog
):
    caplog.set_level(logging.INFO, logger="geomae")
    task = ClassificationTask(
        backbone=pretrained["weights"],
        mode="finetune_from_scratch_head",
        lr=3e-4,
        head_lr_scale=10.0,
        warmup_steps=5,
    )
    _fit(task, _eurosat(eurosat_root), callback=Callback(), steps=4)
    text = caplog.text
    assert "lr 0.0003 as given (not scaled by the batch)" in text
    assert "head lr x10" in text
    assert "warmup of 5 steps is more than 0.2 of the 4-step budget: clamped to 0 steps" in text
    assert "the budget is 4 optimizer steps, below the minimum of 100" in text
    optimizer = task.trainer.optimizers[0]
    head_ids = {id(p) for p in task.head.parameters()}
    scales = {
        any(id(p) in head_ids for p in group["params"]): group["lr_scale"]
        for group in optimizer.param_groups
    }
    assert scales[True] == 10.0 and scales[False] <= 1.0  # the head: layer scale 1 x 10

    caplog.clear()
    task = ClassificationTask(backbone=pretrained["weights"], mode="finetune", base_lr=2.56e-2)
    _fit(task, _eurosat(eurosat_root), callback=Callback(), steps=1)
    assert "lr 0.0004 = base_lr 0.0256 x effective batch 4 / 256" in caplog.text
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "scaled by effective batch 4 / 256 to lr 0.0004 (x0.0156)" in r.message for r in warned
    )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"head_lr_scale": 0.0}, "head_lr_scale must be positive"),
        ({"max_warmup_fraction": 1.0}, "max_warmup_fraction must be in [0, 1)"),
        ({"min_steps": -1}, "min_steps must be >= 0"),
        ({"lp_C": 0.0}, "lp_C must be positive"),
    ],
)
def test_bad_lpft_options(kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        ClassificationTask(backbone=None, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"decoder": "fcn"}, "decoder must be one of"),
        ({"lp_max_pixels": 0}, "lp_max_pixels >= 1"),
        ({"lp_C": -1.0}, "lp_C must be positive"),
    ],
)
def test_bad_segmentation_lp_options(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        SegmentationTask(backbone=None, **kwargs)


def test_lr_and_base_lr_together_is_an_error(pretrained, eurosat_root):
    task = ClassificationTask(backbone=pretrained["weights"], lr=1e-3, base_lr=1e-3)
    with pytest.raises(ConfigError, match="not both"):
        _fit(task, _eurosat(eurosat_root), callback=Callback(), steps=1)


def test_segmentation_linear_decoder_starts_as_the_benchmarks_pixel_probe(
    pretrained, landcover_dm, landcover_data, monkeypatch
):
    """The first predictions of LP-FT with ``decoder: linear`` are the bench probe's."""
    import geomae.trainers.segmentation as segmentation
    from geomae.evaluation.features import backbone_extractor

    fitted = {}

    def spy(x, y, **kwargs):
        out = real(x, y, **kwargs)
        fitted.update(probe=out[2], x=x, y=y)
        return out

    real = segmentation.fit_linear_map
    monkeypatch.setattr(segmentation, "fit_linear_map", spy)
    dm = landcover_dm
    task = SegmentationTask(
        backbone=pretrained["weights"],
        mode="finetune",
        decoder="linear",
        lp_max_pixels=300,
        lp_C=0.5,
        img_size=32,
        drop_path_rate=0.0,
    )
    captured = {}

    class Start(Callback):
        @torch.no_grad()
        def on_train_start(self, trainer, pl_module) -> None:
            pl_module.eval()
            batch = trainer.strategy.batch_to_device(
                next(iter(trainer.datamodule.train_dataloader()))
            )
            captured["probs"] = pl_module(batch["image"]).softmax(dim=1)  # (B, K, H, W)
            captured["image"] = batch["image"]
            # the benchmark's path: frozen last-block map (upsampled below, pixel by pixel)
            extractor = backbone_extractor(pl_module.backbone, kind="segmentation")
            captured["maps"] = extractor({"image": batch["image"]})  # (B, D, h, w)
            pl_module.train()

    torch.manual_seed(0)
    _fit(task, dm, callback=Start())
    assert task.lp_info["probe_pixels"] == len(fitted["x"]) and 0 < len(fitted["x"]) <= 300
    assert set(np.unique(fitted["y"])) <= set(range(len(landcover_data.CLASSES)))

    up = torch.nn.functional.interpolate(
        captured["maps"], size=captured["image"].shape[-2:], mode="bilinear", align_corners=False
    )  # (B, D, H, W)
    pixels = up.permute(0, 2, 3, 1).reshape(-1, up.shape[1]).numpy()  # (B*H*W, D)
    expected = predict_scores(fitted["probe"], pixels, num_classes=len(landcover_data.CLASSES))
    got = captured["probs"].permute(0, 2, 3, 1).reshape(expected.shape).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)
    assert task.head.classifier.weight.abs().max() > 1e-2  # not the near-zero init
