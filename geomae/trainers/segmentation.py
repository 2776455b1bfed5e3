"""SegmentationTask: land-cover segmentation with a UPerNet or a linear head over the ViT.

``decoder: upernet`` (the default): four intermediate blocks of the
:class:`~geomae.models.ChannelViT` backbone (evenly spaced: ``d/4-1, d/2-1, 3d/4-1, d-1``
for depth ``d``; with several band groups each map is the mean over groups at every
patch position) feed a
:class:`~geomae.models.UPerNetHead`; the logits are upsampled to the tile size.
``decoder: linear``: a :class:`~geomae.models.LinearSegmentationHead`, a 1x1 convolution
over the last block's normed map, upsampled to the tile: the per-pixel linear probe of
``geomae bench-bands`` as a module.

``linear`` mode freezes the backbone and trains only the head; ``finetune`` is LP-FT
(:mod:`geomae.trainers.lpft`): the head is fitted on the frozen backbone first (the
linear decoder is solved as the benchmark's logistic-regression probe on up to
``lp_max_pixels`` labelled pixels; the UPerNet decoder, which is not linear, gets
``lp_steps`` head-only steps), then both train (layer-wise lr decay on the backbone,
``head_lr_scale`` on the head); ``finetune_from_scratch_head`` trains both from a
freshly initialized head.

The loss is cross-entropy over labelled pixels (``ignore_index`` excluded); a batch
without any labelled pixel gives a loss of 0, not NaN. Logged: ``train/loss``,
``{val,test}/loss``, ``{val,test}/OA`` (pixel accuracy), ``{val,test}/mIoU`` (mean IoU
over the classes present in the labels or predictions of the epoch, as torchmetrics'
macro Jaccard index) and ``{val,test}/IoU_<class>`` for each of those classes.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any, ClassVar, Literal, cast

import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassConfusionMatrix

from geomae.backbone import resize_to
from geomae.datamodules.contract import LabelledData, SegmentationData
from geomae.errors import ConfigError, DataError
from geomae.models.heads import LinearSegmentationHead, UPerNetHead
from geomae.trainers.finetune import (
    DEFAULT_MIN_STEPS,
    FinetuneMode,
    FinetuneTask,
    check_mode,
    check_schedule,
)
from geomae.trainers.lpft import fit_linear_map, pixel_features, train_head

log = logging.getLogger(__name__)

__all__ = ["SegmentationTask", "iou_from_confusion", "uper_indices"]

Decoder = Literal["upernet", "linear"]
DECODERS: tuple[str, ...] = ("upernet", "linear")


def uper_indices(depth: int) -> list[int]:
    """Four evenly spaced block indices ``(d/4-1, d/2-1, 3d/4-1, d-1)``, clamped at 0."""
    return [max(0, i) for i in (depth // 4 - 1, depth // 2 - 1, 3 * depth // 4 - 1, depth - 1)]


def iou_from_confusion(confusion: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-class IoU and which classes occur, from a ``(K, K)`` confusion matrix.

    Args:
        confusion: counts, rows = true class, columns = predicted class.

    Returns:
        ``(iou (K,), present (K,) bool)``; a class is present when it occurs in the
        labels or the predictions (its IoU is 0 where it is absent).
    """
    confusion = confusion.double()
    tp = confusion.diagonal()  # (K,)
    union = confusion.sum(0) + confusion.sum(1) - tp  # (K,)
    present = union > 0
    iou = torch.where(present, tp / union.clamp(min=1), torch.zeros_like(tp))
    return iou.float(), present


def _metric_name(name: str) -> str:
    return re.sub(r"[^0-9A-Za-z_-]+", "_", name).strip("_") or "class"


class SegmentationTask(FinetuneTask):
    """Semantic segmentation on top of a :class:`~geomae.models.ChannelViT` backbone.

    Batches: ``image`` ``(B, C, H, W)`` normalized, ``mask`` ``(B, H, W)`` int64 class
    indices with ``ignore_index`` for unlabeled pixels.
    """

    data_tasks = ("segmentation",)
    data_protocol: ClassVar[type] = SegmentationData

    def __init__(
        self,
        *,
        backbone: str | Path | None = None,
        pretrained: bool = True,
        arch: dict[str, Any] | None = None,
        mode: FinetuneMode = "finetune",
        num_classes: int | None = None,
        ignore_index: int | None = None,
        decoder: Decoder = "upernet",
        feature_indices: list[int] | None = None,
        decoder_channels: int = 128,
        decoder_dropout: float = 0.1,
        img_size: int | None = None,
        drop_path_rate: float = 0.1,
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
        lp_steps: int = 100,
        lp_lr: float = 1e-3,
        lp_C: float = 1.0,
        lp_max_iter: int = 500,
        lp_max_pixels: int = 20000,
    ) -> None:
        """Store the hyperparameters; the model is built in :meth:`setup`.

        Args:
            backbone: converted ``.safetensors`` weights or an MAE ``.ckpt``; None
                builds a random-init backbone from ``arch``.
            pretrained: load the backbone's weights; False keeps its architecture and
                normalization with random weights.
            arch: architecture of a random-init backbone without a file (``size``,
                ``groups``, ``patch_size``, ``embed_dim``, ``depth``, ``num_heads``,
                ``mlp_ratio``); bands come from the DataModule.
            mode: ``linear`` (frozen backbone, head only), ``finetune`` (LP-FT: head-only
                steps first, then both) or ``finetune_from_scratch_head``.
            num_classes: number of classes (default: the DataModule's).
            ignore_index: mask value of unlabeled pixels (default: the DataModule's,
                else 255).
            decoder: ``upernet`` (four blocks) or ``linear`` (a 1x1 convolution over the
                last block's normed map, the benchmark's per-pixel probe).
            feature_indices: the four blocks the UPerNet head reads (default
                :func:`uper_indices`).
            decoder_channels: UPerNet width.
            decoder_dropout: dropout before the UPerNet classifier.
            img_size: backbone input size; tiles of another size are resized to it and
                the logits back to the tile size. Default: the DataModule's patch size.
            drop_path_rate: stochastic depth of the backbone (finetune).
            lr: peak learning rate, used as given (default 1e-3 linear, 1e-4 fine-tuning).
            base_lr: instead of ``lr``, a learning rate per 256 tiles, scaled by
                ``effective_batch / 256`` (logged, a warning beyond 2x).
            layer_decay: layer-wise lr decay of the backbone in the fine-tuning modes.
            head_lr_scale: lr multiplier of the head (fine-tuning modes).
            weight_decay: AdamW weight decay (default 0 linear, 0.05 finetune).
            betas: AdamW betas.
            min_lr_ratio: final lr of the cosine as a fraction of the peak.
            warmup_epochs: linear warmup in epochs (fractions allowed).
            warmup_steps: linear warmup in optimizer steps (overrides epochs).
            max_warmup_fraction: the warmup is clamped to this share of the budget
                (warned); None: only to the whole budget.
            min_steps: fine-tuning budgets below this many optimizer steps are warned
                about.
            lp_steps: head-only AdamW steps of the UPerNet LP stage (``finetune``; 0
                skips it).
            lp_lr: learning rate of those steps.
            lp_C: inverse L2 strength of the linear decoder's LP probe.
            lp_max_iter: lbfgs iterations of that probe.
            lp_max_pixels: at most this many labelled training pixels feed that probe.

        Raises:
            ConfigError: an unknown mode or decoder, not four feature indices or an
                invalid schedule or LP setting.
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
        if decoder not in DECODERS:
            raise ConfigError(f"decoder must be one of {list(DECODERS)}, got {decoder!r}")
        if lp_steps < 0 or lp_lr <= 0:
            raise ConfigError(f"lp_steps must be >= 0 and lp_lr > 0, got {lp_steps}, {lp_lr}")
        if lp_C <= 0 or lp_max_iter < 1 or lp_max_pixels < 1:
            raise ConfigError(
                f"lp_C must be positive and lp_max_iter, lp_max_pixels >= 1 (got {lp_C}, "
                f"{lp_max_iter}, {lp_max_pixels})"
            )
        if feature_indices is not None and len(feature_indices) != 4:
            raise ConfigError(
                f"feature_indices must name 4 blocks for the UPerNet head, got {feature_indices}"
            )

    # ---- configuration -------------------------------------------------------------------
    def resolve_task(self, datamodule: LabelledData) -> None:
        """Take ``num_classes``, ``ignore_index`` and the class names from the DataModule.

        Args:
            datamodule: a :class:`~geomae.datamodules.contract.SegmentationData`
                (:attr:`data_protocol`, checked by :meth:`setup_from_datamodule`).
        """
        data = cast(SegmentationData, datamodule)
        hp = self.hp
        if hp.num_classes is None:
            hp.num_classes = data.num_classes
            if hp.num_classes is None:
                raise ConfigError(f"set num_classes: {type(datamodule).__name__} has none")
        hp.num_classes = int(hp.num_classes)
        if hp.ignore_index is None:
            hp.ignore_index = int(data.ignore_index)
        if 0 <= hp.ignore_index < hp.num_classes:
            raise ConfigError(
                f"ignore_index {hp.ignore_index} is a class index (num_classes "
                f"{hp.num_classes}); unlabeled pixels need a value outside 0..{hp.num_classes - 1}"
            )
        names = list(data.class_names or [])
        self.class_names = names if len(names) == hp.num_classes else []

    @property
    def linear_decoder(self) -> bool:
        """The head is the per-pixel linear probe (``decoder: linear``)."""
        return self.hp.decoder == "linear"

    @property
    def feature_indices(self) -> list[int]:
        """The blocks the head reads: four for UPerNet, the last for the linear head."""
        assert self.backbone is not None
        if self.linear_decoder:
            return [self.backbone.depth - 1]
        given = self.hp.feature_indices
        return list(given) if given is not None else uper_indices(self.backbone.depth)

    def configure_head(self) -> None:
        """UPerNet over four same-stride ViT maps, or the linear head over the last."""
        assert self.backbone is not None
        k = int(self.hp.num_classes)
        if k < 2:
            raise ConfigError(f"segmentation needs at least 2 classes, got {k}")
        if self.linear_decoder:
            self.head = LinearSegmentationHead(in_channels=self.backbone.embed_dim, num_classes=k)
            return
        for i in self.feature_indices:
            if not -self.backbone.depth <= i < self.backbone.depth:
                raise ConfigError(
                    f"feature index {i} is out of range for a backbone of depth "
                    f"{self.backbone.depth}"
                )
        self.head = UPerNetHead(
            in_channels=self.backbone.embed_dim,
            num_classes=k,
            channels=self.hp.decoder_channels,
            dropout=self.hp.decoder_dropout,
        )

    def fit_head_first(self) -> dict[str, Any]:
        """LP stage: the per-pixel probe as the linear head, or UPerNet head-only steps."""
        assert self.head is not None
        if isinstance(self.head, LinearSegmentationHead):
            hp = self.hp
            x, y = pixel_features(
                self.trainer,
                self._maps,
                max_pixels=int(hp.lp_max_pixels),
                ignore_index=int(hp.ignore_index),
                num_classes=int(hp.num_classes),
            )
            weight, bias, _ = fit_linear_map(
                x,
                y,
                kind="segmentation",
                num_classes=int(hp.num_classes),
                C=float(hp.lp_C),
                max_iter=int(hp.lp_max_iter),
                what=f"{type(self).__name__} LP stage",
            )
            self.head.load_linear(weight.float(), bias.float())
            return {"probe_pixels": len(x), "C": float(hp.lp_C)}

        def loss_of(batch: dict[str, torch.Tensor]) -> torch.Tensor:
            return self.loss(self(batch["image"]), self._mask(batch))

        losses = train_head(
            self.trainer, self.head, loss_of, steps=int(self.hp.lp_steps), lr=float(self.hp.lp_lr)
        )
        info: dict[str, Any] = {"head_steps": len(losses), "losses": losses}
        if losses:
            info["first_loss"] = round(losses[0], 4)
            info["last_loss"] = round(losses[-1], 4)
        return info

    def configure_losses(self) -> None:
        """Cross-entropy over labelled pixels (see :meth:`loss`)."""

    def configure_metrics(self) -> None:
        """Pixel confusion matrices (val, test), from which OA and IoU are derived."""
        k, ignore = int(self.hp.num_classes), int(self.hp.ignore_index)
        self.val_confusion = MulticlassConfusionMatrix(num_classes=k, ignore_index=ignore)
        self.test_confusion = MulticlassConfusionMatrix(num_classes=k, ignore_index=ignore)

    def extra_metadata(self) -> dict[str, Any]:
        """Number of classes, ignore index and the head's feature blocks."""
        return {
            "num_classes": int(self.hp.num_classes),
            "ignore_index": int(self.hp.ignore_index),
            "feature_indices": self.feature_indices,
        }

    # ---- forward, loss, steps ----------------------------------------------------------
    def _maps(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized image -> (B, D, h, w) last-block map, final norm applied."""
        assert self.backbone is not None
        x = resize_to(image, self.img_hw)  # (B, C, h, w)
        with self.backbone_grad():
            maps = self.backbone.forward_intermediates(
                x, indices=1, norm=True, intermediates_only=True
            )
        return maps[0]  # (B, D, h, w)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) normalized image -> (B, K, H, W) logits."""
        assert self.backbone is not None and self.head is not None
        out_size = (int(image.shape[-2]), int(image.shape[-1]))
        if isinstance(self.head, LinearSegmentationHead):
            return self.head(self._maps(image), output_size=out_size)  # (B, K, H, W)
        x = resize_to(image, self.img_hw)  # (B, C, h, w)
        wanted = self.feature_indices
        unique = sorted({i % self.backbone.depth for i in wanted})
        with self.backbone_grad():
            maps = self.backbone.forward_intermediates(x, indices=unique, intermediates_only=True)
        by_block = dict(zip(unique, maps, strict=True))  # block -> (B, D, gh, gw)
        features = [by_block[i % self.backbone.depth] for i in wanted]
        return self.head(features, output_size=out_size)  # (B, K, H, W)

    def loss(self, logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over labelled pixels; 0 (with a graph) if there are none.

        Args:
            logits: (B, K, H, W).
            mask: (B, H, W) class indices, ``ignore_index`` where unlabeled.
        """
        ignore = int(self.hp.ignore_index)
        total = F.cross_entropy(logits, mask, ignore_index=ignore, reduction="sum")
        labelled = (mask != ignore).sum()
        return total / labelled.clamp(min=1)

    def _mask(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = batch["mask"]
        if mask.ndim == 4 and mask.shape[1] == 1:
            mask = mask[:, 0]
        if mask.ndim != 3 or mask.shape[-2:] != batch["image"].shape[-2:]:
            raise DataError(
                f"segmentation masks must be (B, H, W) like the image "
                f"{tuple(batch['image'].shape)}, got {tuple(batch['mask'].shape)}"
            )
        return mask.long()  # (B, H, W)

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss on one batch, logged as ``train/loss``."""
        loss = self.loss(self(batch["image"]), self._mask(batch))
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["image"]))
        return loss

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss and confusion counts of one batch."""
        return self._eval_step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """Loss and confusion counts of one batch."""
        return self._eval_step(batch, "test")

    def _eval_step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        mask = self._mask(batch)
        logits = self(batch["image"])
        loss = self.loss(logits, mask)
        n = len(batch["image"])
        self.log(f"{split}/loss", loss, prog_bar=split == "val", sync_dist=True, batch_size=n)
        getattr(self, f"{split}_confusion").update(logits.argmax(dim=1), mask)
        return loss

    def on_validation_epoch_end(self) -> None:
        """Log ``val/OA``, ``val/mIoU`` and ``val/IoU_<class>``."""
        self._log_iou("val")

    def on_test_epoch_end(self) -> None:
        """Log ``test/OA``, ``test/mIoU`` and ``test/IoU_<class>``."""
        self._log_iou("test")

    def _log_iou(self, split: str) -> None:
        metric: MulticlassConfusionMatrix = getattr(self, f"{split}_confusion")
        confusion = metric.compute()  # (K, K), summed over processes
        metric.reset()
        total = confusion.sum()
        if total == 0:
            log.warning("%s: no labelled pixel in this epoch; no IoU logged", split)
            return
        iou, present = iou_from_confusion(confusion)
        self.log(f"{split}/OA", confusion.diagonal().sum().float() / total.float())
        self.log(f"{split}/mIoU", iou[present].mean())
        names = self.class_names or [str(i) for i in range(len(iou))]
        for i in torch.nonzero(present).flatten().tolist():
            self.log(f"{split}/IoU_{_metric_name(names[i])}", iou[i])

    def predict_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        """(B, K, H, W) class probabilities."""
        return self(batch["image"]).softmax(dim=1)
