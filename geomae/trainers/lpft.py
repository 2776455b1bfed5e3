"""LP-FT: fit the head on frozen features first, then fine-tune the whole model.

A randomly initialized head sends large, noisy gradients into a pretrained backbone in
the first steps of fine-tuning and distorts the features it was chosen for (Kumar et
al., 2022, "Fine-Tuning can Distort Pretrained Features and Underperform
Out-of-Distribution"). In ``finetune`` mode geomae therefore starts fine-tuning from a
fitted head (the "LP" stage, run once in ``on_fit_start``, before any optimizer step):

- classification (a linear head): the benchmark's logistic-regression probe
  (:func:`geomae.linear_probe.fit_probe`: standardized features, lbfgs, L2 ``1/C``) on
  the frozen backbone's pooled features of up to ``lp_max_samples`` training tiles,
  folded into the head's weight and bias (:func:`geomae.linear_probe.linear_weights`),
  so the model's first predictions are the probe's;
- segmentation with ``decoder: linear`` (:class:`~geomae.models.LinearSegmentationHead`):
  the same probe on up to ``lp_max_pixels`` labelled pixels of the frozen backbone's
  upsampled last-block map (:func:`pixel_features`, spread evenly over one pass of the
  training loader), folded into the 1x1 convolution: the first predictions are the
  per-pixel probe's of ``geomae bench-bands``;
- segmentation with ``decoder: upernet`` (not linear): ``lp_steps`` head-only AdamW
  steps on the frozen backbone (eval mode, no gradients), at ``lp_lr``.

The training batches come from the DataModule's ``train_dataloader`` through the
trainer's batch-transfer hooks, i.e. normalized and augmented as fine-tuning sees them.
With several processes every process fits its head and rank 0's is broadcast.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch import nn

from geomae.errors import DataError
from geomae.linear_probe import fit_probe, linear_weights

log = logging.getLogger(__name__)

__all__ = [
    "broadcast_module",
    "fit_linear_head",
    "fit_linear_map",
    "pixel_features",
    "pooled_features",
    "train_batches",
    "train_head",
]


def train_batches(trainer: Any, *, cycle: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Training batches on the model's device, after the DataModule's batch hooks.

    Args:
        trainer: the running Lightning trainer (with a DataModule).
        cycle: start over when the loader is exhausted (for a step budget).

    Raises:
        DataError: the training loader yields no batch.
    """
    datamodule = trainer.datamodule
    while True:
        empty = True
        for batch in datamodule.train_dataloader():
            empty = False
            yield trainer.strategy.batch_to_device(batch)
        if empty:
            raise DataError(f"{type(datamodule).__name__}: the training loader is empty")
        if not cycle:
            return


@torch.no_grad()
def pooled_features(
    trainer: Any,
    features: Any,
    *,
    max_samples: int,
    label_key: str = "label",
) -> tuple[np.ndarray, np.ndarray]:
    """``(N, D)`` features and ``(N,)`` / ``(N, K)`` labels of up to ``max_samples`` tiles.

    Args:
        trainer: the running trainer.
        features: ``(B, C, H, W) image -> (B, D)`` of the frozen backbone.
        max_samples: stop after this many tiles.
        label_key: the batch key of the labels.
    """
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    count = 0
    for batch in train_batches(trainer):
        xs.append(features(batch["image"]).float().cpu().numpy())  # (B, D)
        ys.append(batch[label_key].cpu().numpy())  # (B,) or (B, K)
        count += len(xs[-1])
        if count >= max_samples:
            break
    return np.concatenate(xs)[:max_samples], np.concatenate(ys)[:max_samples]


@torch.no_grad()
def pixel_features(
    trainer: Any,
    maps: Any,
    *,
    max_pixels: int,
    ignore_index: int,
    num_classes: int,
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, D)`` features and ``(n,)`` classes of labelled pixels, from one training pass.

    Each batch contributes up to ``ceil(max_pixels / batches)`` of its labelled pixels,
    drawn with torch's global generator (seeded by ``seed_everything``); a feature map
    smaller than the mask is upsampled bilinearly (``align_corners=False``), as the
    benchmark's per-pixel probe does.

    Args:
        trainer: the running trainer.
        maps: ``(B, C, H, W) image -> (B, D, h, w)`` of the frozen backbone.
        max_pixels: at most this many pixels in all.
        ignore_index: mask value of unlabelled pixels.
        num_classes: K; mask values outside ``0..K-1`` are skipped too.

    Raises:
        DataError: no labelled pixel in the pass.
    """
    try:
        batches = max(1, len(trainer.datamodule.train_dataloader()))
    except TypeError:  # an iterable loader without a length
        batches = 1
    per_batch = max(1, -(-max_pixels // batches))
    xs: list[np.ndarray] = []
    ys: list[np.ndarray] = []
    count = 0
    for batch in train_batches(trainer):
        mask = batch["mask"]
        mask = mask[:, 0] if mask.ndim == 4 else mask  # (B, H, W)
        labelled = (mask != ignore_index) & (mask >= 0) & (mask < num_classes)
        flat = torch.nonzero(labelled.flatten()).flatten()  # (m,)
        if flat.numel() == 0:
            continue
        take = min(per_batch, max_pixels - count, flat.numel())
        flat = flat[torch.randperm(flat.numel(), device=flat.device)[:take]]
        fmap = maps(batch["image"]).float()  # (B, D, h, w)
        height, width = int(mask.shape[-2]), int(mask.shape[-1])
        if tuple(fmap.shape[-2:]) != (height, width):
            fmap = torch.nn.functional.interpolate(
                fmap, size=(height, width), mode="bilinear", align_corners=False
            )  # (B, D, H, W)
        tile, rest = flat // (height * width), flat % (height * width)
        xs.append(fmap[tile, :, rest // width, rest % width].cpu().numpy())  # (take, D)
        ys.append(mask.flatten()[flat].cpu().numpy().astype(np.int64))  # (take,)
        count += take
        if count >= max_pixels:
            break
    if not xs:
        raise DataError(f"{type(trainer.datamodule).__name__}: no labelled training pixel")
    return np.concatenate(xs), np.concatenate(ys)


def fit_linear_map(
    x: np.ndarray,
    y: np.ndarray,
    *,
    kind: str,
    num_classes: int,
    C: float,
    max_iter: int,
    what: str,
) -> tuple[torch.Tensor, torch.Tensor, Any]:
    """Fit the logistic-regression probe on ``(x, y)``; return it as ``W f + b``.

    Args:
        x: ``(N, F)`` frozen features.
        y: ``(N,)`` class indices or ``(N, K)`` multi-hot labels.
        kind: ``multiclass``, ``multilabel`` or ``segmentation``.
        num_classes: K.
        C: inverse L2 strength.
        max_iter: lbfgs iterations.
        what: the run, for messages.

    Returns:
        ``(weight (K, F), bias (K,), probe)``: float64 tensors on raw features and the
        fitted scikit-learn pipeline.
    """
    probe = fit_probe(x, y, kind=kind, C=C, max_iter=max_iter, what=what)  # type: ignore[arg-type]
    weight, bias = linear_weights(probe, num_classes=num_classes)  # (K, F), (K,)
    return torch.from_numpy(weight), torch.from_numpy(bias), probe


def fit_linear_head(
    head: nn.Linear,
    x: np.ndarray,
    y: np.ndarray,
    *,
    kind: str,
    C: float,
    max_iter: int,
    what: str,
) -> Any:
    """Fit the logistic-regression probe on ``(x, y)`` and copy it into ``head``.

    Args:
        head: ``nn.Linear(F, K)``, overwritten in place.
        x: ``(N, F)`` frozen features.
        y: ``(N,)`` class indices or ``(N, K)`` multi-hot labels.
        kind: ``multiclass`` or ``multilabel``.
        C: inverse L2 strength.
        max_iter: lbfgs iterations.
        what: the run, for messages.

    Returns:
        The fitted scikit-learn pipeline (the probe).
    """
    weight, bias, probe = fit_linear_map(
        x, y, kind=kind, num_classes=head.out_features, C=C, max_iter=max_iter, what=what
    )
    with torch.no_grad():
        head.weight.copy_(weight.to(head.weight))
        head.bias.copy_(bias.to(head.bias))
    return probe


def broadcast_module(module: nn.Module, trainer: Any) -> None:
    """Give every process rank 0's parameters and buffers of ``module`` (no-op alone)."""
    if trainer.world_size <= 1 or not torch.distributed.is_initialized():
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        torch.distributed.broadcast(tensor.data, src=0)


def train_head(
    trainer: Any,
    head: nn.Module,
    loss_of: Any,
    *,
    steps: int,
    lr: float,
) -> list[float]:
    """``steps`` AdamW steps on ``head`` alone (the backbone must be frozen by the caller).

    Args:
        trainer: the running trainer (batches cycle over its training loader).
        head: the module whose parameters are trained.
        loss_of: ``batch -> scalar loss`` with gradients reaching only ``head``.
        steps: optimizer steps.
        lr: AdamW learning rate (no weight decay).

    Returns:
        The loss of every step.
    """
    params = [p for p in head.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    head.train()
    losses: list[float] = []
    if steps <= 0:
        return losses
    for batch in train_batches(trainer, cycle=True):
        loss = loss_of(batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        if len(losses) >= steps:
            break
    return losses
