"""ClassificationTask: linear probing and fine-tuning on scene classification.

Multiclass (EuroSAT) or multilabel (BigEarthNet) classification from a converted
geomae backbone (see :mod:`geomae.backbone`).

``linear`` mode follows the MAE paper's linear probe: the backbone is frozen and in
eval mode, the pooled features go through a BatchNorm without affine parameters and a
linear layer (:class:`~geomae.models.LinearProbeHead`), no weight decay. The paper uses
LARS at base lr 0.1 over batches of 16384; geomae uses AdamW (one optimizer recipe for
every task) with a default base lr of 1e-2 per 256 images, which suits the normalized
features. ``finetune`` mode is LP-FT: the linear head is first set to the
logistic-regression probe fitted on the frozen pooled features of up to
``lp_max_samples`` training tiles (:mod:`geomae.trainers.lpft`), then everything trains
with layer-wise lr decay (0.75), drop path 0.1, weight decay 0.05, lr 1e-4 (as given),
warmup and cosine decay. ``finetune_from_scratch_head`` starts the same training from
a near-zero head (MAE's fine-tuning init) instead.

Logged: ``train/loss``; ``val/loss``, ``test/loss`` and, for multiclass, ``OA`` (overall
accuracy, micro) and ``F1_macro``, for multilabel ``mAP_micro`` and ``mAP_macro``
(average precision), under ``val/`` and ``test/``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassF1Score,
    MultilabelAveragePrecision,
)

from geomae.backbone import resize_to
from geomae.datamodules.contract import LabelledData
from geomae.errors import ConfigError, DataError
from geomae.models.heads import LinearProbeHead
from geomae.trainers.finetune import (
    DEFAULT_MIN_STEPS,
    FinetuneMode,
    FinetuneTask,
    check_mode,
    check_schedule,
)
from geomae.trainers.lpft import fit_linear_head, pooled_features

log = logging.getLogger(__name__)

__all__ = ["ClassificationTask"]

ClassificationKind = Literal["multiclass", "multilabel"]


class ClassificationTask(FinetuneTask):
    """Scene classification on top of a :class:`~geomae.models.ChannelViT` backbone.

    Batches: ``image`` ``(B, C, H, W)`` normalized, ``label`` ``(B,)`` int64 class
    indices (multiclass) or ``(B, K)`` multi-hot (multilabel).
    """

    data_tasks = ("multiclass", "multilabel")

    def __init__(
        self,
        *,
        backbone: str | Path | None = None,
        pretrained: bool = True,
        arch: dict[str, Any] | None = None,
        mode: FinetuneMode = "finetune",
        task: ClassificationKind | None = None,
        num_classes: int | None = None,
        global_pool: Literal["token", "avg"] = "avg",
        img_size: int | None = None,
        drop_path_rate: float = 0.1,
        label_smoothing: float = 0.0,
        lr: float | None = None,
        base_lr: float | None = None,
        layer_decay: float = 0.75,
        head_lr_scale: float = 1.0,
        weight_decay: float | None = None,
        betas: tuple[float, float] = (0.9, 0.999),
        min_lr_ratio: float = 0.0,
        warmup_epochs: float = 1.0,
        warmup_steps: int | None = None,
        max_warmup_fraction: float | None = 0.2,
        min_steps: int = DEFAULT_MIN_STEPS,
        lp_C: float = 1.0,
        lp_max_iter: int = 1000,
        lp_max_samples: int = 20000,
    ) -> None:
        """Store the hyperparameters; the model is built in :meth:`setup`.

        Args:
            backbone: converted ``.safetensors`` weights or an MAE ``.ckpt``; None
                builds a random-init backbone from ``arch``.
            pretrained: load the backbone's weights; False keeps its architecture and
                normalization with random weights (the ``random_init`` baseline).
            arch: architecture of a random-init backbone without a file (``size``,
                ``groups``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``,
                ``mlp_ratio``); bands come from the DataModule.
            mode: ``linear`` (frozen backbone, linear probe), ``finetune`` (LP-FT: the
                head starts as the probe on frozen features, then everything trains)
                or ``finetune_from_scratch_head`` (everything trains from a fresh head).
            task: ``multiclass`` or ``multilabel`` (default: the DataModule's).
            num_classes: number of classes (default: the DataModule's).
            global_pool: pooling of the tokens: ``avg`` (patch tokens) or ``token`` (cls).
            img_size: backbone input size; batches of another size are resized to it
                (bilinear). Default: the DataModule's tile size. BigEarthNet's 120 px
                tiles need it (e.g. 128) with a patch-16 backbone.
            drop_path_rate: stochastic depth of the backbone (finetune).
            label_smoothing: cross-entropy label smoothing (multiclass only).
            lr: peak learning rate, used as given (default 1e-3 linear, 1e-4 fine-tuning).
            base_lr: instead of ``lr``, a learning rate per 256 images: the actual lr is
                ``base_lr * effective_batch / 256`` (logged, a warning beyond 2x).
            layer_decay: layer-wise lr decay of the backbone in the fine-tuning modes.
            head_lr_scale: lr multiplier of the head (fine-tuning modes), on top of the
                layer decay.
            weight_decay: AdamW weight decay of weight matrices (default 0 linear,
                0.05 finetune).
            betas: AdamW betas.
            min_lr_ratio: final lr of the cosine as a fraction of the peak.
            warmup_epochs: linear warmup in epochs (fractions allowed).
            warmup_steps: linear warmup in optimizer steps (overrides epochs).
            max_warmup_fraction: the warmup is clamped to this share of the budget
                (warned); None: only to the whole budget.
            min_steps: fine-tuning budgets below this many optimizer steps are warned
                about.
            lp_C: inverse L2 strength of the LP stage's logistic regression (finetune).
            lp_max_iter: lbfgs iterations of the LP stage.
            lp_max_samples: at most this many training tiles feed the LP stage.

        Raises:
            ConfigError: an unknown mode or task, a negative label smoothing or an
                invalid schedule setting.
        """
        super().__init__()
        if backbone is not None:
            backbone = str(backbone)
        self.save_hyperparameters()
        check_mode(mode)
        check_schedule(
            head_lr_scale=head_lr_scale,
            max_warmup_fraction=max_warmup_fraction,
            min_steps=min_steps,
        )
        if lp_C <= 0 or lp_max_iter < 1 or lp_max_samples < 1:
            raise ConfigError(
                f"lp_C must be positive and lp_max_iter, lp_max_samples >= 1 (got {lp_C}, "
                f"{lp_max_iter}, {lp_max_samples})"
            )
        if task is not None and task not in self.data_tasks:
            raise ConfigError(f"task must be one of {list(self.data_tasks)}, got {task!r}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {label_smoothing}")
        self.criterion: nn.Module | None = None

    # ---- configuration -----------------------------------------------------------------
    def resolve_task(self, datamodule: LabelledData) -> None:
        """Take ``task``, ``num_classes`` and the class names from the DataModule."""
        hp = self.hp
        data_task = datamodule.task
        if hp.task is not None and data_task is not None and hp.task != data_task:
            raise ConfigError(
                f"task={hp.task!r} but {type(datamodule).__name__} is a {data_task!r} "
                "DataModule; leave task unset to follow the DataModule"
            )
        if hp.task is None:
            hp.task = data_task
            if hp.task not in self.data_tasks:
                raise ConfigError(
                    f"set the task to one of {list(self.data_tasks)}: "
                    f"{type(datamodule).__name__} does not say which (task={hp.task!r})"
                )
        if hp.num_classes is None:
            hp.num_classes = datamodule.num_classes
            if hp.num_classes is None:
                raise ConfigError(f"set num_classes: {type(datamodule).__name__} has none")
        hp.num_classes = int(hp.num_classes)
        names = list(datamodule.class_names or [])
        self.class_names = names if len(names) == hp.num_classes else []
        if hp.label_smoothing and hp.task == "multilabel":
            raise ConfigError("label_smoothing applies to multiclass tasks only")

    def _global_pool(self) -> Literal["token", "avg"]:
        return self.hp.global_pool

    def configure_head(self) -> None:
        """Linear probe head (BatchNorm + linear) or a plain linear classifier."""
        assert self.backbone is not None
        dim, k = self.backbone.embed_dim, int(self.hp.num_classes)
        if k < 1:
            raise ConfigError(f"num_classes must be positive, got {k}")
        if self.hp.mode == "linear":
            self.head = LinearProbeHead(in_features=dim, num_classes=k)
        else:
            head = nn.Linear(dim, k)
            nn.init.trunc_normal_(head.weight, std=2e-5)  # as MAE fine-tuning
            nn.init.zeros_(head.bias)
            self.head = head

    def fit_head_first(self) -> dict[str, Any]:
        """LP stage: the logistic-regression probe on frozen pooled features, as the head."""
        assert self.backbone is not None and isinstance(self.head, nn.Linear)
        hp = self.hp

        def pooled(image: torch.Tensor) -> torch.Tensor:
            return self._pooled(image)  # (B, D), frozen: no autograd

        x, y = pooled_features(self.trainer, pooled, max_samples=int(hp.lp_max_samples))
        if hp.task != "multilabel":
            y = y.astype(np.int64)
        if len(x) < int(hp.num_classes):
            log.warning(
                "%s LP stage: the probe head is fitted on %d training samples for %d "
                "classes; a probe of so few samples can be extreme (large logits, a high "
                "starting loss). Use more training data, a smaller lp_C, or mode "
                "finetune_from_scratch_head",
                type(self).__name__,
                len(x),
                int(hp.num_classes),
            )
        fit_linear_head(
            self.head,
            x,
            y,
            kind=str(hp.task),
            C=float(hp.lp_C),
            max_iter=int(hp.lp_max_iter),
            what=f"{type(self).__name__} LP stage",
        )
        return {"probe_samples": len(x), "C": float(hp.lp_C)}

    def configure_losses(self) -> None:
        """Cross-entropy (multiclass) or binary cross-entropy on logits (multilabel)."""
        if self.hp.task == "multilabel":
            self.criterion = nn.BCEWithLogitsLoss()
        else:
            self.criterion = nn.CrossEntropyLoss(label_smoothing=self.hp.label_smoothing)

    def configure_metrics(self) -> None:
        """OA + macro F1 (multiclass) or micro + macro mAP (multilabel), val and test."""
        k = int(self.hp.num_classes)
        if self.hp.task == "multilabel":
            metrics = MetricCollection(
                {
                    "mAP_micro": MultilabelAveragePrecision(num_labels=k, average="micro"),
                    "mAP_macro": MultilabelAveragePrecision(num_labels=k, average="macro"),
                }
            )
        else:
            metrics = MetricCollection(
                {
                    "OA": MulticlassAccuracy(num_classes=k, average="micro"),
                    "F1_macro": MulticlassF1Score(num_classes=k, average="macro"),
                }
            )
        self.val_metrics = metrics.clone(prefix="val/")
        self.test_metrics = metrics.clone(prefix="test/")

    def extra_metadata(self) -> dict[str, Any]:
        """Classification kind and number of classes."""
        return {"classification": self.hp.task, "num_classes": int(self.hp.num_classes)}

    # ---- forward and steps ---------------------------------------------------------------
    def _pooled(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized image -> (B, D) pooled backbone features."""
        assert self.backbone is not None
        x = resize_to(image, self.img_hw)  # (B, C, h, w)
        tokens = self.features(x)  # (B, 1+G*L, D)
        return self.backbone.forward_head(tokens, pre_logits=True)  # (B, D)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized image -> (B, K) logits."""
        assert self.head is not None
        return self.head(self._pooled(image))  # (B, K)

    def _target(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        label = batch["label"]
        k = int(self.hp.num_classes)
        if self.hp.task == "multilabel":
            if label.ndim != 2 or label.shape[1] != k:
                raise DataError(
                    f"multilabel batches need (B, {k}) multi-hot labels, got shape "
                    f"{tuple(label.shape)}"
                )
            return label.float()  # (B, K)
        if label.ndim != 1:
            raise DataError(
                f"multiclass batches need (B,) class indices, got shape {tuple(label.shape)}"
            )
        return label.long()  # (B,)

    def _step(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        assert self.criterion is not None
        logits = self(batch["image"])  # (B, K)
        target = self._target(batch)
        return self.criterion(logits, target), logits

    def _metric_inputs(
        self, logits: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.hp.task == "multilabel":
            return logits.sigmoid(), target.long()  # (B, K), (B, K)
        return logits.softmax(dim=1), target  # (B, K), (B,)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss on one batch, logged as ``train/loss``."""
        loss, _ = self._step(batch)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss and metrics, logged under ``val/``."""
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss and metrics, logged under ``test/``."""
        return self._eval_step(batch, "test")

    def _eval_step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        loss, logits = self._step(batch)
        n = len(batch["image"])
        self.log(f"{split}/loss", loss, prog_bar=split == "val", sync_dist=True, batch_size=n)
        metrics = getattr(self, f"{split}_metrics")
        metrics.update(*self._metric_inputs(logits.detach(), self._target(batch)))
        self.log_dict(metrics, batch_size=n)
        return loss

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """(B, K) class probabilities (softmax) or label probabilities (sigmoid)."""
        logits = self(batch["image"])
        return logits.sigmoid() if self.hp.task == "multilabel" else logits.softmax(dim=1)
