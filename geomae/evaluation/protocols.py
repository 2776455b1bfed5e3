"""The benchmark protocols: what one cell does with a band set and a seed.

- ``linear``: the pretrained backbone, frozen; a logistic-regression probe
  (:mod:`geomae.linear_probe`) on its embeddings (classification: pooled embedding of
  each tile; segmentation: a per-pixel classifier on the patch-token map bilinearly
  upsampled to the tile, scored on every labelled pixel). Without a weights file the
  backbone is the random init of ``random_init``.
- ``random_init``: the same architecture with random weights (drawn with the cell's
  seed), same probe: what pretraining adds.
- ``stats_baseline``: no deep model: per-band mean and std of each normalized tile
  (classification) or the normalized pixel values (segmentation), same probe.
- ``finetune``: :class:`~geomae.trainers.ClassificationTask` /
  :class:`~geomae.trainers.SegmentationTask` (LP-FT by default) trained for the
  configured budget in optimizer steps (``seed_everything(seed)``), validated
  ``val_checks`` times; the checkpoint with the best primary val metric is restored
  and scored by ``Trainer.test`` on the same tiles as the probes. The scored split is
  never used for selection.
- ``finetune_random_init``: the same training, budget and selection from a randomly
  initialized encoder of the same architecture (what pretraining adds to fine-tuning).

What a seed changes in the probe protocols: the training sample (a random
``train_fraction`` of the training tiles; for segmentation at most ``max_train_pixels``
labelled pixels, valid pixels only for ``stats_baseline``) and, for ``random_init``, the
random weights. The solver itself is deterministic. With several values of ``C`` each
seed picks the best on the val split (primary metric) and reports that model's scores.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch import Callback
from sklearn.pipeline import Pipeline

from geomae.errors import ConfigError, DataError
from geomae.evaluation.config import FinetuneSettings, LinearSettings
from geomae.evaluation.data import NormalizedBatches, TaskKind
from geomae.evaluation.features import SplitFeatures
from geomae.evaluation.metrics import (
    METRICS,
    PRIMARY,
    classification_scores,
    confusion_matrix,
    segmentation_scores,
)
from geomae.linear_probe import affine_map, fit_probe, predict_scores
from geomae.trainers import ClassificationTask, SegmentationTask

log = logging.getLogger(__name__)

__all__ = [
    "CellResult",
    "probe_classification",
    "probe_segmentation",
    "run_finetune",
    "trainer_device",
]

#: Tiles per chunk when scoring feature maps.
_CHUNK = 16
#: Epoch bound when the fine-tuning budget is given in steps only.
_UNBOUNDED_EPOCHS = 1_000_000


@dataclass
class CellResult:
    """Metrics of one cell and details worth keeping.

    Attributes:
        metrics: metric name -> value.
        info: e.g. the chosen ``C`` and the size of the training sample.
    """

    metrics: dict[str, float]
    info: dict[str, Any] = field(default_factory=dict)


# ---- classification ---------------------------------------------------------------------
def probe_classification(
    train: SplitFeatures,
    val: SplitFeatures | None,
    test: SplitFeatures,
    *,
    kind: TaskKind,
    num_classes: int,
    settings: LinearSettings,
    seed: int,
    what: str,
) -> CellResult:
    """Fit the probe on a seeded sample of the training embeddings and score ``test``.

    Args:
        train: ``(N, F)`` features and labels of the training tiles.
        val: val features (needed when ``settings.C`` lists several values).
        test: features of the scored split.
        kind: ``multiclass`` or ``multilabel``.
        num_classes: K.
        settings: probe settings.
        seed: seed of the training sample.
        what: the cell, for messages.
    """
    rng = np.random.default_rng(seed)
    n = len(train)
    size = max(1, round(settings.train_fraction * n))
    rows = np.sort(rng.choice(n, size=size, replace=False))
    x, y = train.features[rows], train.labels[rows]

    def fit(c: float) -> Pipeline:
        return fit_probe(x, y, kind=kind, C=c, max_iter=settings.max_iter, what=what)

    def score(model: Pipeline, split: SplitFeatures) -> dict[str, float]:
        scores = predict_scores(model, split.features, num_classes=num_classes)
        return classification_scores(scores, split.labels, kind=kind, num_classes=num_classes)

    model, c, val_scores = _select_c(fit, score, val, settings.C, PRIMARY[kind], what)
    info: dict[str, Any] = {"C": c, "train_samples": int(size)}
    if val_scores:
        info["val_scores"] = val_scores
    return CellResult(metrics=score(model, test), info=info)


def _select_c(
    fit: Any,
    score: Any,
    val: SplitFeatures | None,
    values: Sequence[float],
    primary: str,
    what: str,
) -> tuple[Pipeline, float, dict[str, float]]:
    """Fit with each C; keep the best on val (the only one when a single C is given)."""
    if len(values) == 1:
        return fit(values[0]), float(values[0]), {}
    if val is None:
        raise ConfigError(
            f"{what}: linear.C lists {list(values)} but there is no separate val split to "
            "choose on; give one C"
        )
    best: tuple[float, Pipeline, float] | None = None
    by_c: dict[str, float] = {}
    for c in values:
        model = fit(c)
        value = score(model, val)[primary]
        by_c[f"{c:g}"] = value
        if best is None or value > best[0]:
            best = (value, model, float(c))
    assert best is not None
    log.info("%s: C=%g chosen on val (%s %s)", what, best[2], primary, by_c)
    return best[1], best[2], by_c


# ---- segmentation -----------------------------------------------------------------------
def probe_segmentation(
    train: SplitFeatures,
    val: SplitFeatures | None,
    test: SplitFeatures,
    *,
    num_classes: int,
    ignore_index: int,
    settings: LinearSettings,
    seed: int,
    valid_only: bool,
    what: str,
) -> CellResult:
    """Per-pixel probe on feature maps, scored with mIoU / OA on every labelled pixel.

    Feature maps ``(N, F, h, w)`` smaller than the masks ``(N, H, W)`` are bilinearly
    upsampled (``align_corners=False``) to the mask size.

    Args:
        train: training feature maps, masks and pixel validity.
        val: val maps (needed when ``settings.C`` lists several values).
        test: maps of the scored split.
        num_classes: K.
        ignore_index: mask value of unlabelled pixels.
        settings: probe settings (``train_fraction``, ``max_train_pixels``, ``C``, ...).
        seed: seed of the training pixel sample.
        valid_only: sample only pixels where the image is valid (pixel-value features).
        what: the cell, for messages.
    """
    labels = train.labels.astype(np.int64)  # (N, H, W)
    eligible = (labels != ignore_index) & (labels >= 0) & (labels < num_classes)
    if valid_only and train.valid is not None:
        eligible &= train.valid
    flat = np.flatnonzero(eligible)
    if flat.size == 0:
        raise DataError(f"{what}: the training tiles hold no labelled pixel")
    rng = np.random.default_rng(seed)
    size = min(settings.max_train_pixels, max(1, round(settings.train_fraction * flat.size)))
    chosen = np.sort(rng.choice(flat, size=size, replace=False))
    x = _gather_pixels(train.features, chosen, labels.shape[1:])  # (n, F)
    y = labels.reshape(-1)[chosen]  # (n,)

    def fit(c: float) -> Pipeline:
        return fit_probe(x, y, kind="segmentation", C=c, max_iter=settings.max_iter, what=what)

    def score(model: Pipeline, split: SplitFeatures) -> dict[str, float]:
        confusion = _confusion_of_maps(
            model, split, num_classes=num_classes, ignore_index=ignore_index
        )
        return segmentation_scores(confusion)

    model, c, val_scores = _select_c(fit, score, val, settings.C, PRIMARY["segmentation"], what)
    info: dict[str, Any] = {"C": c, "train_pixels": int(size)}
    if val_scores:
        info["val_scores"] = val_scores
    return CellResult(metrics=score(model, test), info=info)


def _upsample(maps: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    """``(n, F, h, w)`` -> ``(n, F, H, W)`` float32, bilinear (identity if same size)."""
    x = torch.from_numpy(np.ascontiguousarray(maps)).float()  # (n, F, h, w)
    if tuple(x.shape[-2:]) == tuple(size):
        return x
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)  # (n, F, H, W)


def _gather_pixels(maps: np.ndarray, flat: np.ndarray, size: tuple[int, ...]) -> np.ndarray:
    """Features ``(n, F)`` of pixels given as flat indices into ``(N, H, W)``."""
    height, width = int(size[0]), int(size[1])
    tile, rest = np.divmod(flat, height * width)
    row, col = np.divmod(rest, width)
    out = np.empty((len(flat), maps.shape[1]), dtype=np.float32)
    for t in np.unique(tile):
        pick = np.flatnonzero(tile == t)
        up = _upsample(maps[t : t + 1], (height, width))[0]  # (F, H, W)
        out[pick] = up[:, row[pick], col[pick]].T.numpy()  # (k, F)
    return out


def _confusion_of_maps(
    model: Pipeline, split: SplitFeatures, *, num_classes: int, ignore_index: int
) -> np.ndarray:
    """``(K, K)`` confusion of the probe's per-pixel predictions over a split."""
    weight, bias, classes = affine_map(model)
    w = torch.from_numpy(weight).float()  # (K', F)
    b = torch.from_numpy(bias).float()  # (K',)
    lookup = torch.from_numpy(classes)  # (K',)
    size = tuple(split.labels.shape[1:])
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    for start in range(0, len(split), _CHUNK):
        maps = torch.from_numpy(
            np.ascontiguousarray(split.features[start : start + _CHUNK])
        ).float()  # (n, F, h, w)
        scores = torch.einsum("kf,nfhw->nkhw", w, maps) + b[None, :, None, None]  # (n, K', h, w)
        if tuple(scores.shape[-2:]) != size:
            scores = F.interpolate(scores, size=size, mode="bilinear", align_corners=False)
        pred = lookup[scores.argmax(dim=1)].numpy()  # (n, H, W)
        confusion += confusion_matrix(
            pred,
            split.labels[start : start + _CHUNK],
            num_classes=num_classes,
            ignore_index=ignore_index,
        )
    return confusion


# ---- finetune ---------------------------------------------------------------------------
def trainer_device(device: torch.device) -> dict[str, Any]:
    """Lightning ``accelerator`` / ``devices`` for a torch device."""
    if device.type == "cuda":
        return {"accelerator": "gpu", "devices": [device.index or 0]}
    return {"accelerator": device.type, "devices": 1}


class _Curves(Callback):
    """Train loss (mean since the last check) and the monitored val metric at every check."""

    def __init__(self, monitor: str) -> None:
        self.monitor = monitor
        self.val: list[list[float]] = []
        self.train: list[list[float]] = []
        self._loss_sum = 0.0
        self._loss_count = 0

    def on_train_batch_end(
        self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._loss_sum += float(loss.detach())
            self._loss_count += 1

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking:
            return
        step = int(trainer.global_step)
        value = trainer.callback_metrics.get(self.monitor)
        if value is not None:
            self.val.append([step, round(float(value), 6)])
        if self._loss_count:
            self.train.append([step, round(self._loss_sum / self._loss_count, 6)])
            self._loss_sum, self._loss_count = 0.0, 0


class _StartScore(Callback):
    """The val score of the LP-FT start (fitted head, no fine-tuning step yet) and its weights.

    Lightning runs ``on_fit_start`` (the LP stage) before its sanity check; with
    ``num_sanity_val_steps=-1`` the sanity check is a whole val pass of the start, so
    model selection can fall back to the probe when no fine-tuned checkpoint beats it.
    """

    def __init__(self, monitor: str, path: Path) -> None:
        self.monitor = monitor
        self.path = path
        self.score: float | None = None

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        self.score = float(value)
        trainer.save_checkpoint(str(self.path), weights_only=True)


def run_finetune(
    dm: Any,
    eval_batches: NormalizedBatches,
    *,
    backbone: Path | None,
    arch: dict[str, Any] | None,
    img_size: int | None,
    settings: FinetuneSettings,
    seed: int,
    device: torch.device,
    workdir: Path,
    val_loader: Any,
    train_loader: Any | None = None,
    pretrained: bool = True,
    tag: str = "cell",
) -> CellResult:
    """Train a task on ``dm`` for the budget, restore the best-val checkpoint, test it.

    Args:
        dm: a fresh DataModule of the band set (normalized with the backbone's stats).
        eval_batches: the normalized batches of the scored split (the tiles the probe
            protocols score).
        backbone: converted weights, or None for a random init from ``arch``.
        arch: random-init architecture (with ``backbone`` None).
        img_size: backbone input size (None: the tile size).
        settings: budget, selection, mode and further task / Trainer arguments
            (``trainer["callbacks"]``, a list, is added to the run's callbacks).
        seed: ``seed_everything`` seed (head init, data order, augmentation, random
            weights).
        device: where to train.
        workdir: where the selection checkpoints live while the cell runs (removed).
        val_loader: raw batches of the model-selection split (never the scored one).
        train_loader: raw training batches (a label fraction or a held-out val);
            None: the DataModule's own training loader.
        pretrained: False re-initializes the backbone's weights (``finetune_random_init``).
        tag: a file-name-safe name of the cell (its checkpoint folder).
    """
    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.callbacks import ModelCheckpoint

    seed_everything(seed, workers=True, verbose=False)
    kind: TaskKind = dm.task
    task_cls = SegmentationTask if kind == "segmentation" else ClassificationTask
    task_args = {"min_steps": settings.min_steps, **settings.task_args}
    task = task_cls(
        backbone=None if backbone is None else str(backbone),
        pretrained=pretrained,
        arch=arch if backbone is None else None,
        mode=settings.mode,
        img_size=img_size,
        **task_args,
    )
    # Lightning asks the DataModule for its loaders: this cell's training tiles and its
    # model-selection split replace the DataModule's own (a fresh DataModule per cell).
    if train_loader is not None:
        dm.train_dataloader = lambda: train_loader
    else:
        dm.setup("fit")
        train_loader = dm.train_dataloader()
    dm.val_dataloader = lambda: val_loader
    batches = len(train_loader)
    budget = settings.budget(batches)
    asked = settings.max_steps if settings.max_steps > 0 else (settings.max_epochs or 1) * batches
    if budget > asked:
        log.info(
            "%s: the budget of %d optimizer steps is below finetune.min_steps: %d steps "
            "(%.1f epochs of %d batches)",
            tag,
            asked,
            budget,
            budget / max(1, batches),
            batches,
        )
    interval = max(1, budget // settings.val_checks)
    monitor = f"val/{PRIMARY[kind]}"
    folder = Path(workdir) / "finetune-checkpoints" / tag
    shutil.rmtree(folder, ignore_errors=True)
    checkpoint = ModelCheckpoint(
        dirpath=folder,
        filename="best-{step:06d}",
        auto_insert_metric_name=False,
        monitor=monitor,
        mode="max",
        save_top_k=1,
        save_last=False,
        save_on_train_epoch_end=False,
        enable_version_counter=False,
    )
    curves = _Curves(monitor)
    extra = dict(settings.trainer)
    callbacks = [checkpoint, curves, *list(extra.pop("callbacks", None) or [])]
    # LP-FT: the start (the fitted probe as the head) competes in the selection too.
    start = _StartScore(monitor, folder / "start.ckpt") if settings.mode == "finetune" else None
    if start is not None:
        callbacks.append(start)
    trainer_args: dict[str, Any] = {
        "num_sanity_val_steps": -1 if start is not None else 0,
        "enable_model_summary": False,
        **extra,
    }
    # A finite epoch bound (instead of Lightning's -1) makes Lightning size the train
    # loader before configure_optimizers, which the tasks' warmup in epochs needs.
    trainer = Trainer(
        **trainer_device(device),
        max_epochs=_UNBOUNDED_EPOCHS,
        max_steps=budget,
        val_check_interval=interval,
        check_val_every_n_epoch=None,
        logger=False,
        enable_checkpointing=True,
        enable_progress_bar=False,
        default_root_dir=str(workdir),
        callbacks=callbacks,
        **trainer_args,
    )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        trainer.fit(task, datamodule=dm)
        best = checkpoint.best_model_path or None
        best_score = None if best is None else float(checkpoint.best_model_score or float("nan"))
        best_step = None if best is None else int(Path(best).stem.removeprefix("best-"))
        if start is not None and start.score is not None:
            curves.val.insert(0, [0, round(start.score, 6)])
            if best_score is None or not start.score <= best_score:  # NaN best: the start
                best, best_score, best_step = str(start.path), start.score, 0
        if best is None:
            log.warning("%s: no validation score was logged; scoring the last weights", tag)
        results = trainer.test(task, dataloaders=eval_batches, ckpt_path=best, verbose=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    logged = results[0] if results else {}
    missing = [m for m in METRICS[kind] if f"test/{m}" not in logged]
    if missing:
        raise DataError(
            f"{task_cls.__name__} logged no test metric(s) {missing} (logged {sorted(logged)})"
        )
    steps = int(trainer.global_step)
    info: dict[str, Any] = {
        "steps": steps,
        "mode": settings.mode,
        "pretrained": pretrained,
        "train_batches": batches,
        "monitor": monitor,
        "val_curve": curves.val,
        "train_loss": curves.train,
    }
    if start is not None and start.score is not None:
        info["start_val"] = start.score
    if best is not None:
        info["best_step"] = best_step
        info["best_val"] = best_score
        log.info(
            "%s: best %s %.4f at step %d of %d, restored for the test",
            tag,
            monitor,
            info["best_val"],
            info["best_step"],
            steps,
        )
    else:
        info["best_step"] = None
    if task.lp_info:
        info["lp"] = {k: v for k, v in task.lp_info.items() if not isinstance(v, list)}
    return CellResult(metrics={m: float(logged[f"test/{m}"]) for m in METRICS[kind]}, info=info)
