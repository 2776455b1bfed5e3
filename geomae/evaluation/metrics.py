"""Scores of the benchmark, computed the way the fine-tuning tasks log them.

- multiclass: ``OA`` (overall accuracy) and ``F1_macro``;
- multilabel: ``mAP_micro`` and ``mAP_macro`` (average precision of the label scores);
- segmentation: ``mIoU`` (mean IoU over the classes present in labels or predictions)
  and ``OA`` (pixel accuracy), from a confusion matrix over labelled pixels.

Classification scores use :mod:`torchmetrics.functional` with the settings of
:class:`~geomae.trainers.ClassificationTask`; segmentation uses
:func:`~geomae.trainers.segmentation.iou_from_confusion` as
:class:`~geomae.trainers.SegmentationTask` does, so every protocol's numbers compare.
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_f1_score,
    multilabel_average_precision,
)

from geomae.evaluation.data import TaskKind
from geomae.trainers.segmentation import iou_from_confusion

__all__ = [
    "METRICS",
    "PRIMARY",
    "classification_scores",
    "confusion_matrix",
    "segmentation_scores",
]

#: Metric names per task kind, in report order.
METRICS: dict[str, tuple[str, ...]] = {
    "multiclass": ("OA", "F1_macro"),
    "multilabel": ("mAP_micro", "mAP_macro"),
    "segmentation": ("mIoU", "OA"),
}
#: The metric that selects the regularization strength on val.
PRIMARY: dict[str, str] = {"multiclass": "OA", "multilabel": "mAP_macro", "segmentation": "mIoU"}


def classification_scores(
    scores: np.ndarray, target: np.ndarray, *, kind: TaskKind, num_classes: int
) -> dict[str, float]:
    """Metrics of class scores.

    Args:
        scores: ``(N, K)`` probabilities (any monotone score works for the argmax and AP).
        target: ``(N,)`` class indices (multiclass) or ``(N, K)`` multi-hot (multilabel).
        kind: ``multiclass`` or ``multilabel``.
        num_classes: K.

    Returns:
        ``{"OA", "F1_macro"}`` or ``{"mAP_micro", "mAP_macro"}``.
    """
    preds = torch.as_tensor(np.asarray(scores, dtype=np.float32))  # (N, K)
    if kind == "multilabel":
        labels = torch.as_tensor(np.asarray(target)).long()  # (N, K)
        return {
            f"mAP_{avg}": float(
                multilabel_average_precision(preds, labels, num_labels=num_classes, average=avg)
            )
            for avg in ("micro", "macro")
        }
    labels = torch.as_tensor(np.asarray(target)).long()  # (N,)
    return {
        "OA": float(multiclass_accuracy(preds, labels, num_classes=num_classes, average="micro")),
        "F1_macro": float(
            multiclass_f1_score(preds, labels, num_classes=num_classes, average="macro")
        ),
    }


def confusion_matrix(
    pred: np.ndarray, target: np.ndarray, *, num_classes: int, ignore_index: int
) -> np.ndarray:
    """``(K, K)`` counts (rows: true class, columns: predicted) over labelled pixels.

    Args:
        pred: predicted classes, any shape.
        target: true classes, same shape; ``ignore_index`` marks unlabelled pixels.
        num_classes: K.
        ignore_index: label of unlabelled pixels.
    """
    pred, target = np.asarray(pred).ravel(), np.asarray(target).ravel()
    keep = (target != ignore_index) & (target >= 0) & (target < num_classes)
    index = target[keep].astype(np.int64) * num_classes + pred[keep].astype(np.int64)
    return np.bincount(index, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def segmentation_scores(confusion: np.ndarray) -> dict[str, float]:
    """``{"mIoU", "OA"}`` of a confusion matrix (NaN when it counts no pixel)."""
    total = confusion.sum()
    if total == 0:
        return {"mIoU": float("nan"), "OA": float("nan")}
    iou, present = iou_from_confusion(torch.as_tensor(confusion))
    return {
        "mIoU": float(iou[present].mean()),
        "OA": float(np.trace(confusion) / total),
    }
