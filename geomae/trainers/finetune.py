"""FinetuneTask: what classification and segmentation fine-tuning share.

A subclass adds the head, loss and metrics (:meth:`FinetuneTask.configure_head`,
``configure_losses``, ``configure_metrics``) and the steps. This base class

- builds the backbone in :meth:`setup` from the DataModule (bands, tile size) and the
  ``backbone`` / ``pretrained`` / ``arch`` options, and pushes the backbone's
  normalization statistics into the DataModule before any batch is loaded;
- freezes the backbone in ``linear`` mode (no gradients, always in eval mode);
- writes :class:`~geomae.metadata.GeoMetadata` into every checkpoint and rebuilds the
  model from it in :meth:`on_load_checkpoint`, so ``load_from_checkpoint`` needs no
  DataModule and no weights file;
- configures AdamW with the learning rate scaled by the effective batch, layer-wise
  learning-rate decay (``finetune``), warmup and cosine decay.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any, Literal

import torch
from lightning.pytorch import LightningModule
from torch import nn

from geomae import __version__
from geomae.bands import parse_bands
from geomae.errors import BandError, ConfigError
from geomae.metadata import GeoMetadata
from geomae.models.vit import ChannelViT
from geomae.normalization import Normalization
from geomae.optim import adamw_warmup_cosine, param_groups, plan_steps
from geomae.stats import BandStats
from geomae.trainers.backbone import (
    build_backbone,
    datamodule_tile_size,
    push_stats,
    vit_layer_id,
)

log = logging.getLogger(__name__)

__all__ = ["FinetuneMode", "FinetuneTask"]

FinetuneMode = Literal["linear", "finetune"]

#: Per-mode defaults of the optimizer settings left as None (AdamW, per 256 images).
MODE_DEFAULTS: dict[str, dict[str, float]] = {
    "linear": {"base_lr": 1e-2, "weight_decay": 0.0},
    "finetune": {"base_lr": 5e-4, "weight_decay": 0.05},
}


class FinetuneTask(LightningModule):
    """Base of :class:`ClassificationTask` and :class:`SegmentationTask`.

    Subclasses call ``super().__init__()`` and then ``self.save_hyperparameters()``;
    their hyperparameters must include ``backbone``, ``pretrained``, ``arch``,
    ``mode``, ``img_size``, ``drop_path_rate``, ``base_lr``, ``layer_decay``,
    ``weight_decay``, ``betas``, ``min_lr_ratio``, ``warmup_epochs`` and
    ``warmup_steps``.
    """

    #: the DataModule ``task`` values this task accepts.
    data_tasks: tuple[str, ...] = ()

    def __init__(self) -> None:
        """Start without a model; it is built in :meth:`setup`."""
        super().__init__()
        self.backbone: ChannelViT | None = None
        self.head: nn.Module | None = None
        self.class_names: list[str] = []
        self._data_stats: BandStats | None = None
        self._offset: float = 0.0
        self._source: str = ""
        self._level: str | None = None
        self._normalization: Normalization = Normalization()

    # ---- hooks for subclasses ----------------------------------------------------------
    def resolve_task(self, datamodule: Any) -> None:
        """Fill the task's data-dependent hyperparameters (classes...) from the DataModule."""
        raise NotImplementedError

    def configure_head(self) -> None:
        """Build :attr:`head` for :attr:`backbone`."""
        raise NotImplementedError

    def configure_losses(self) -> None:
        """Build the loss."""
        raise NotImplementedError

    def configure_metrics(self) -> None:
        """Build the metrics."""
        raise NotImplementedError

    @property
    def hp(self) -> Any:
        """The hyperparameters, with attribute access."""
        return self.hparams

    # ---- model -----------------------------------------------------------------------
    @property
    def built(self) -> bool:
        """True once the backbone and head exist."""
        return self.backbone is not None and self.head is not None

    def setup(self, stage: str) -> None:
        """Build the model from the trainer's DataModule (before any batch is loaded)."""
        trainer: Any = self._trainer
        datamodule = trainer.datamodule if trainer is not None else None
        if datamodule is None:
            if self.built:
                return
            raise ConfigError(
                f"{type(self).__name__} needs a geomae DataModule (bands, classes, tile "
                "size) passed to the Trainer"
            )
        self.setup_from_datamodule(datamodule)

    def setup_from_datamodule(self, datamodule: Any) -> None:
        """Build (or check) the model for ``datamodule`` and align its normalization.

        Args:
            datamodule: a geomae DataModule with ``bands``, ``task``, ``num_classes``,
                ``class_names`` and ``set_stats``.

        Raises:
            BandError: the DataModule's bands are not in the backbone (or, for a model
                restored from a checkpoint, differ from its bands).
            ConfigError: the DataModule does not fit the task or the backbone.
        """
        bands = getattr(datamodule, "bands", None)
        if bands is None:
            raise ConfigError(
                f"{type(datamodule).__name__} has no `bands`: {type(self).__name__} needs "
                "a geomae DataModule"
            )
        bands = parse_bands(list(bands), keep_order=True)
        data_task = getattr(datamodule, "task", None)
        if self.data_tasks and data_task is not None and data_task not in self.data_tasks:
            raise ConfigError(
                f"{type(self).__name__} handles {list(self.data_tasks)} data, but "
                f"{type(datamodule).__name__} is a {data_task!r} DataModule"
            )
        if self.built:
            assert self.backbone is not None
            if bands != self.backbone.bands:
                raise BandError(
                    f"the model was built for bands {self.backbone.bands}; "
                    f"{type(datamodule).__name__} yields {bands}"
                )
            if self._data_stats is not None and hasattr(datamodule, "set_stats"):
                datamodule.set_stats(self._data_stats, source=self._source)
            self._remember_data(datamodule)
            return
        hp = self.hp
        self.resolve_task(datamodule)
        built = build_backbone(
            backbone=hp.backbone,
            pretrained=hp.pretrained,
            arch=hp.arch,
            bands=bands,
            img_size=hp.img_size,
            tile_size=None if hp.img_size is not None else datamodule_tile_size(datamodule),
            drop_path_rate=hp.drop_path_rate,
            global_pool=self._global_pool(),
        )
        push_stats(datamodule, built)
        data_level = getattr(datamodule, "processing_level", None)
        self._level = built.level if built.level is not None else data_level
        self._normalization = built.normalization or Normalization()
        self._install(built.model, source=built.source)
        self._remember_data(datamodule)

    def _remember_data(self, datamodule: Any) -> None:
        """Keep the statistics and offset the DataModule normalizes with."""
        stats = getattr(datamodule, "stats", None)
        if stats is None:
            stats = BandStats.coerce(datamodule.describe()["stats"])
        assert self.backbone is not None
        self._data_stats = BandStats.coerce(stats).select(self.backbone.bands)
        self._offset = float(getattr(datamodule, "offset", 0.0))

    def _global_pool(self) -> Literal["token", "avg"]:
        return "token"

    def _install(self, backbone: ChannelViT, *, source: str) -> None:
        """Attach ``backbone``, build the head, losses and metrics, freeze if linear."""
        self.backbone = backbone
        self._source = source
        self.configure_head()
        self.configure_losses()
        self.configure_metrics()
        if self.hp.mode == "linear":
            self.backbone.requires_grad_(False)
            self.backbone.eval()

    def train(self, mode: bool = True) -> FinetuneTask:
        """Set train/eval mode; a frozen (``linear``) backbone always stays in eval mode."""
        super().train(mode)
        if self.backbone is not None and self.hp.mode == "linear":
            self.backbone.eval()
        return self

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1+G*L, D) backbone tokens, without autograd if frozen."""
        assert self.backbone is not None
        if self.hp.mode == "linear":
            with torch.no_grad():
                return self.backbone.forward_features(image)
        return self.backbone.forward_features(image)

    @property
    def img_hw(self) -> tuple[int, int]:
        """(H, W) the backbone's input is resized to."""
        assert self.backbone is not None
        return self.backbone.img_size

    # ---- metadata and checkpoints ----------------------------------------------------
    @property
    def metadata(self) -> GeoMetadata:
        """Bands, normalization and architecture of the fine-tuned model."""
        if self.backbone is None or self._data_stats is None:
            raise ConfigError("the model is not built yet (setup with a DataModule first)")
        backbone = self.backbone
        # user statistics that override a scale normalization are a z-score
        norm = self._normalization
        if norm.matches(self._data_stats):
            norm = Normalization()
        return GeoMetadata(
            bands=list(backbone.bands),
            groups=[list(g) for g in backbone.groups],
            stats=self._data_stats,
            patch_size=backbone.patch_size,
            img_size=backbone.img_size[0],
            arch=backbone.arch_kwargs(),
            offset=self._offset,
            extra={
                "geomae_version": __version__,
                "task": type(self).__name__,
                "mode": self.hp.mode,
                "backbone_source": self._source,
                "class_names": list(self.class_names),
                **self.extra_metadata(),
            },
            normalization=norm,
            processing_level=self._level,
        )

    def extra_metadata(self) -> dict[str, Any]:
        """Task-specific entries of the metadata's ``extra``."""
        return {}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Store the metadata next to the weights."""
        checkpoint["geomae"] = self.metadata.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the architecture from the checkpoint's metadata if not built yet."""
        if self.built:
            return
        if "geomae" not in checkpoint:
            raise ConfigError(
                f"this checkpoint has no 'geomae' metadata; it was not written by "
                f"{type(self).__name__}"
            )
        meta = GeoMetadata.from_dict(checkpoint["geomae"], source="checkpoint")
        arch = {k: v for k, v in meta.arch.items() if k not in ("num_classes", "global_pool")}
        backbone = ChannelViT(**arch)
        backbone.reset_classifier(0, meta.arch.get("global_pool", "token"))
        self.class_names = list(meta.extra.get("class_names", []))
        self._data_stats = meta.stats
        self._offset = float(meta.offset)
        self._level = meta.processing_level
        self._normalization = meta.normalization
        self._install(backbone, source=str(meta.extra.get("backbone_source", "checkpoint")))

    # ---- optimization ------------------------------------------------------------------
    def configure_optimizers(self) -> dict[str, Any]:  # type: ignore[override]
        """AdamW with scaled lr, layer-wise lr decay (finetune), warmup then cosine."""
        assert self.backbone is not None
        hp = self.hp
        defaults = MODE_DEFAULTS[hp.mode]
        base_lr = defaults["base_lr"] if hp.base_lr is None else float(hp.base_lr)
        decay = defaults["weight_decay"] if hp.weight_decay is None else float(hp.weight_decay)
        plan = plan_steps(
            self.trainer,
            base_lr=base_lr,
            warmup_epochs=hp.warmup_epochs,
            warmup_steps=hp.warmup_steps,
        )
        depth = self.backbone.depth
        layered = hp.mode == "finetune" and hp.layer_decay < 1.0
        groups = param_groups(
            self.named_parameters(),
            weight_decay=decay,
            layer_id=partial(vit_layer_id, depth=depth) if layered else None,
            layer_decay=hp.layer_decay if layered else 1.0,
            num_layers=depth,
        )
        log.info(
            "%s (%s): lr %.3g = base_lr %.3g x effective batch %d / 256, weight decay %g, "
            "layer decay %g; %d warmup of %d steps",
            type(self).__name__,
            hp.mode,
            plan.lr,
            plan.base_lr,
            plan.effective_batch,
            decay,
            hp.layer_decay if layered else 1.0,
            plan.warmup_steps,
            plan.total_steps,
        )
        return adamw_warmup_cosine(groups, plan=plan, betas=hp.betas, min_lr_ratio=hp.min_lr_ratio)


def check_mode(mode: str) -> None:
    """Raise a ConfigError unless ``mode`` is ``linear`` or ``finetune``."""
    if mode not in MODE_DEFAULTS:
        raise ConfigError(f"mode must be one of {list(MODE_DEFAULTS)}, got {mode!r}")
