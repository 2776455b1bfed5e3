"""Fine-tuning cells select on val: the best-val checkpoint, not the last weights, is scored."""

import pytest
import torch
from lightning.pytorch import Callback

from geomae.convert import read_weights_metadata
from geomae.evaluation.config import DataSpec, FinetuneSettings
from geomae.evaluation.data import NormalizedBatches, make_datamodule, split_loader
from geomae.evaluation.protocols import run_finetune


class SpoilTheLastWeights(Callback):
    """After the last step (and its validation) make the head predict class 9 everywhere."""

    @torch.no_grad()
    def on_train_end(self, trainer, pl_module) -> None:
        pl_module.head.weight.zero_()
        pl_module.head.bias.zero_()
        pl_module.head.bias[9] = 5.0


def test_the_best_val_checkpoint_is_the_one_scored(tmp_path, eurosat_root, backbone_all):
    meta, _ = read_weights_metadata(backbone_all)
    spec = DataSpec(
        "geomae.datamodules.EuroSATDataModule",
        {"root": str(eurosat_root), "batch_size": 4, "augment": "none"},
    )
    dm = make_datamodule(spec, bands=["B02", "B03", "B04"], stats=meta.stats, stats_source="test")
    # score on the val tiles themselves: the scored OA must then be the best val OA
    scored = NormalizedBatches(dm, split_loader(dm, "val", max_samples=None))
    settings = FinetuneSettings(
        max_epochs=None,
        max_steps=6,
        min_steps=1,
        val_checks=3,
        task_args={"lr": 1e-3, "warmup_steps": 0},
        trainer={"callbacks": [SpoilTheLastWeights()]},
    )
    result = run_finetune(
        dm,
        scored,
        backbone=backbone_all,
        arch=None,
        img_size=None,
        settings=settings,
        seed=0,
        device=torch.device("cpu"),
        workdir=tmp_path,
        val_loader=split_loader(dm, "val", max_samples=None),
    )
    info = result.info
    # step 0 is the LP-FT start (the probe as the head); it wins only when strictly best
    assert [step for step, _ in info["val_curve"]] == [0, 2, 4, 6]
    best = max(value for _, value in info["val_curve"])  # rounded to 6 digits
    assert info["best_val"] == pytest.approx(best, abs=1e-6)
    tuned = info["val_curve"][1:]
    tuned_best = max(v for _, v in tuned)
    expected = (
        0 if info["start_val"] > tuned_best + 1e-6 else next(s for s, v in tuned if v == tuned_best)
    )
    assert info["best_step"] == expected
    assert result.metrics["OA"] == pytest.approx(info["best_val"], abs=1e-7)
    # the spoiled last weights (constant class 9 on 10 val tiles, one per class) would
    # score macro F1 = (2 * 0.1 / 1.1) / 10
    assert abs(result.metrics["F1_macro"] - 0.2 / 1.1 / 10) > 1e-6
    assert not list((tmp_path / "finetune-checkpoints").rglob("*.ckpt"))  # cleaned up
    assert [s for s, _ in info["train_loss"]] == [2, 4, 6]
