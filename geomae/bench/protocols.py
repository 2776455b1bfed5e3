"""The benchmark protocols: what one cell does with a band set and a seed.

- ``linear``: the pretrained backbone, frozen; a logistic-regression probe
  (:mod:`geomae.bench.probe`) on its embeddings (classification: pooled embedding of
  each tile; segmentation: a per-pixel classifier on the patch-token map bilinearly
  upsampled to the tile, scored on every labelled pixel). Without a weights file the
  backbone is the random init of ``random_init``.
- ``random_init``: the same architecture with random weights (drawn with the cell's
  seed), same probe: what pretraining adds.
- ``stats_baseline``: no deep model: per-band mean and std of each normalized tile
  (classification) or the normalized pixel values (segmentation), same probe.
- ``finetune``: :class:`~geomae.trainers.ClassificationTask` /
  :class:`~geomae.trainers.SegmentationTask` trained for the configured budget
  (``seed_everything(seed)``), scored by ``Trainer.test`` on the same tiles.

What a seed changes in the probe protocols: the training sample (a random
``train_fraction`` of the training tiles; for segmentation at most ``max_train_pixels``
labelled pixels, valid pixels only for ``stats_baseline``) and, for ``random_init``, the
random weights. The solver itself is deterministic. With several values of ``C`` each
seed picks the best on the val split (primary metric) and reports that model's scores.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.pipeline import Pipeline

from geomae.bench.config import FinetuneSettings, LinearSettings
from geomae.bench.data import NormalizedBatches, TaskKind
from geomae.bench.features import SplitFeatures
from geomae.bench.metrics import (
    METRICS,
    PRIMARY,
    classification_scores,
    confusion_matrix,
    segmentation_scores,
)
from geomae.bench.probe import affine_map, fit_probe, predict_scores
from geomae.errors import ConfigError, DataError

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
) -> CellResult:
    """Train a task on ``dm`` for the budget, then score it with ``Trainer.test``.

    Args:
        dm: a fresh DataModule of the band set (normalized with the backbone's stats).
        eval_batches: the normalized batches of the scored split (the tiles the probe
            protocols score).
        backbone: converted weights, or None for a random init from ``arch``.
        arch: random-init architecture (with ``backbone`` None).
        img_size: backbone input size (None: the tile size).
        settings: budget, mode and further task / Trainer arguments.
        seed: ``seed_everything`` seed (head init, data order, augmentation).
        device: where to train.
        workdir: Lightning's ``default_root_dir`` (nothing is logged or checkpointed).
    """
    from lightning.pytorch import Trainer, seed_everything

    from geomae.trainers import ClassificationTask, SegmentationTask

    seed_everything(seed, workers=True, verbose=False)
    kind: TaskKind = dm.task
    task_cls = SegmentationTask if kind == "segmentation" else ClassificationTask
    task = task_cls(
        backbone=None if backbone is None else str(backbone),
        pretrained=True,
        arch=arch if backbone is None else None,
        mode=settings.mode,
        img_size=img_size,
        **settings.task_args,
    )
    trainer_args: dict[str, Any] = {
        "num_sanity_val_steps": 0,
        "limit_val_batches": 0,
        "enable_model_summary": False,
        **settings.trainer,
    }
    # max_steps alone: epochs are unbounded. A finite epoch bound (instead of Lightning's
    # -1) makes Lightning size the train loader before configure_optimizers, which the
    # tasks' warmup in epochs needs.
    max_epochs = settings.max_epochs if settings.max_epochs is not None else _UNBOUNDED_EPOCHS
    trainer = Trainer(
        **trainer_device(device),
        max_epochs=max_epochs,
        max_steps=settings.max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=str(workdir),
        **trainer_args,
    )
    trainer.fit(task, datamodule=dm)
    results = trainer.test(task, dataloaders=eval_batches, verbose=False)
    logged = results[0] if results else {}
    missing = [m for m in METRICS[kind] if f"test/{m}" not in logged]
    if missing:
        raise DataError(
            f"{task_cls.__name__} logged no test metric(s) {missing} (logged {sorted(logged)})"
        )
    steps = int(trainer.global_step)
    return CellResult(
        metrics={m: float(logged[f"test/{m}"]) for m in METRICS[kind]},
        info={"steps": steps, "mode": settings.mode},
    )
