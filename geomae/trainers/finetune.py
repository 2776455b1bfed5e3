"""FinetuneTask: what classification and segmentation fine-tuning share.

A subclass adds the head, loss and metrics (:meth:`FinetuneTask.configure_head`,
``configure_losses``, ``configure_metrics``) and the steps. This base class

- builds the backbone in :meth:`setup` from the DataModule (bands, tile size) and the
  ``backbone`` / ``pretrained`` / ``arch`` options, and pushes the backbone's
  normalization statistics into the DataModule before any batch is loaded;
- freezes the backbone in ``linear`` mode (no gradients, always in eval mode);
- in ``finetune`` mode (the default) runs LP-FT: before the first optimizer step the
  head is fitted on the frozen backbone's features (:mod:`geomae.trainers.lpft`), then
  the whole model trains; ``finetune_from_scratch_head`` skips the LP stage and starts
  from a freshly initialized head (the behaviour before LP-FT, for comparison);
- writes :class:`~geomae.metadata.GeoMetadata` into every checkpoint and rebuilds the
  model from it in :meth:`on_load_checkpoint`, so ``load_from_checkpoint`` needs no
  DataModule and no weights file;
- configures AdamW, layer-wise learning-rate decay and a head lr multiplier
  (``head_lr_scale``) in the fine-tuning modes, warmup (at most
  ``max_warmup_fraction`` of the budget) and cosine decay.

Learning rate: ``lr`` is the peak learning rate, used as given (no batch scaling: a
small-data fine-tune at batch 8 would otherwise run 32x below the written value);
``base_lr`` instead applies the MAE rule ``lr = base_lr * effective_batch / 256``, and the
log line says so (a warning when it changes the lr by more than 2x). Give one or
neither (then the mode's default ``lr``: 1e-3 linear, 1e-4 fine-tuning).

Budget: fine-tuning expects at least ``min_steps`` optimizer steps (default 100); a
shorter budget (e.g. 10 epochs of 3 batches) is warned about with the step count, since
Lightning's ``max_epochs`` / ``max_steps`` decide it. Prefer ``trainer.max_steps``.
"""

from __future__ import annotations

import abc
import logging
from contextlib import AbstractContextManager, nullcontext
from typing import Any, ClassVar, Literal, cast

import torch
from lightning.pytorch import LightningModule
from torch import nn

from geomae.backbone import (
    build_backbone,
    datamodule_tile_size,
    push_stats,
)
from geomae.bands import parse_bands
from geomae.datamodules.contract import LabelledData, require_data
from geomae.errors import BandError, ConfigError
from geomae.metadata import GeoMetadata
from geomae.models.vit import ChannelViT
from geomae.normalization import Normalization
from geomae.optim import (
    adamw_warmup_cosine,
    no_weight_decay_names,
    param_groups,
    plan_steps,
    timm_layer_ids,
)
from geomae.stats import BandStats
from geomae.trainers.lpft import broadcast_module
from geomae.version import __version__

log = logging.getLogger(__name__)

__all__ = ["DEFAULT_MIN_STEPS", "FinetuneMode", "FinetuneTask", "check_mode", "check_schedule"]

FinetuneMode = Literal["linear", "finetune", "finetune_from_scratch_head"]

#: Per-mode defaults of the optimizer settings left as None (AdamW peak lr, as given).
MODE_DEFAULTS: dict[str, dict[str, float]] = {
    "linear": {"lr": 1e-3, "weight_decay": 0.0},
    "finetune": {"lr": 1e-4, "weight_decay": 0.05},
    "finetune_from_scratch_head": {"lr": 1e-4, "weight_decay": 0.05},
}
#: Fewer fine-tuning optimizer steps than this default of ``min_steps`` get a warning.
DEFAULT_MIN_STEPS = 100


class FinetuneTask(LightningModule, abc.ABC):
    """Base of :class:`ClassificationTask` and :class:`SegmentationTask` (abstract).

    Subclasses call ``super().__init__()`` and then ``self.save_hyperparameters()``;
    their hyperparameters must include ``backbone``, ``pretrained``, ``arch``,
    ``mode``, ``img_size``, ``drop_path_rate``, ``lr``, ``base_lr``, ``layer_decay``,
    ``head_lr_scale``, ``weight_decay``, ``betas``, ``min_lr_ratio``,
    ``warmup_epochs``, ``warmup_steps``, ``max_warmup_fraction`` and ``min_steps``.
    Subclasses implement :meth:`resolve_task`, :meth:`configure_head`,
    :meth:`configure_losses`, :meth:`configure_metrics` and :meth:`fit_head_first`
    (the LP stage of LP-FT); one that lacks any of them cannot be instantiated
    (``TypeError``).
    """

    #: the DataModule ``task`` values this task accepts.
    data_tasks: tuple[str, ...] = ()
    #: the :mod:`~geomae.datamodules.contract` protocol the DataModule must satisfy
    #: (a :class:`~geomae.datamodules.contract.LabelledData` or narrower).
    data_protocol: ClassVar[type] = LabelledData

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
        self._lp_stage = False  # True while the LP stage fits the head on frozen features
        #: what the LP stage did (probe size, losses...), for logs and tests.
        self.lp_info: dict[str, Any] = {}

    # ---- hooks for subclasses ----------------------------------------------------------
    @abc.abstractmethod
    def resolve_task(self, datamodule: LabelledData) -> None:
        """Fill the task's data-dependent hyperparameters (classes...) from the DataModule.

        Args:
            datamodule: the DataModule, already checked against :attr:`data_protocol`.
        """

    @abc.abstractmethod
    def configure_head(self) -> None:
        """Build :attr:`head` for :attr:`backbone`."""

    @abc.abstractmethod
    def configure_losses(self) -> None:
        """Build the loss."""

    @abc.abstractmethod
    def configure_metrics(self) -> None:
        """Build the metrics."""

    @abc.abstractmethod
    def fit_head_first(self) -> dict[str, Any]:
        """The LP stage: fit :attr:`head` on the frozen backbone (see :mod:`.lpft`).

        Called with the backbone frozen and in eval mode; returns what it did.
        """

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

    def setup_from_datamodule(self, datamodule: object) -> None:
        """Build (or check) the model for ``datamodule`` and align its normalization.

        Args:
            datamodule: a DataModule satisfying :attr:`data_protocol` (bands, stats,
                offset, processing level, ``set_stats``, ``task``, ``num_classes``,
                ``class_names``...): every geomae fine-tuning DataModule.

        Raises:
            BandError: the DataModule's bands are not in the backbone (or, for a model
                restored from a checkpoint, differ from its bands).
            ConfigError: the DataModule lacks an attribute of :attr:`data_protocol`
                (the message names them), or does not fit the task or the backbone.
        """
        data = self.check_datamodule(datamodule)
        bands = parse_bands(list(data.bands), keep_order=True)
        if self.built:
            assert self.backbone is not None
            if bands != self.backbone.bands:
                raise BandError(
                    f"the model was built for bands {self.backbone.bands}; "
                    f"{type(data).__name__} yields {bands}"
                )
            if self._data_stats is not None:
                data.set_stats(self._data_stats, source=self._source)
            self._remember_data(data)
            return
        hp = self.hp
        self.resolve_task(data)
        built = build_backbone(
            backbone=hp.backbone,
            pretrained=hp.pretrained,
            arch=hp.arch,
            bands=bands,
            img_size=hp.img_size,
            tile_size=None if hp.img_size is not None else datamodule_tile_size(data),
            drop_path_rate=hp.drop_path_rate,
            global_pool=self._global_pool(),
        )
        push_stats(data, built)
        self._level = built.level if built.level is not None else data.processing_level
        self._normalization = built.normalization or Normalization()
        self._install(built.model, source=built.source)
        self._remember_data(data)

    def check_datamodule(self, datamodule: object) -> LabelledData:
        """``datamodule`` as the :attr:`data_protocol` it must satisfy.

        The kind of data is checked first (a classification DataModule given to a
        segmentation task says so), then every attribute of :attr:`data_protocol`.

        Raises:
            ConfigError: the DataModule lacks an attribute (the message names the class
                and the attributes) or holds another kind of data (``task``).
        """
        user = type(self).__name__
        require_data(datamodule, LabelledData, user=user)
        data = cast(LabelledData, datamodule)
        if self.data_tasks and data.task not in self.data_tasks:
            raise ConfigError(
                f"{user} handles {list(self.data_tasks)} data, but "
                f"{type(data).__name__} is a {data.task!r} DataModule"
            )
        if self.data_protocol is not LabelledData:
            require_data(datamodule, self.data_protocol, user=user)
        return data

    def _remember_data(self, data: LabelledData) -> None:
        """Keep the statistics and offset the DataModule normalizes with."""
        assert self.backbone is not None
        self._data_stats = BandStats.coerce(data.stats).select(self.backbone.bands)
        self._offset = float(data.offset)

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

    @property
    def frozen(self) -> bool:
        """True when the backbone gets no gradients: ``linear`` mode or the LP stage."""
        return self.hp.mode == "linear" or self._lp_stage

    def train(self, mode: bool = True) -> FinetuneTask:
        """Set train/eval mode; a frozen backbone always stays in eval mode."""
        super().train(mode)
        if self.backbone is not None and self.frozen:
            self.backbone.eval()
        return self

    def features(self, image: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, 1+G*L, D) backbone tokens, without autograd if frozen."""
        assert self.backbone is not None
        with self.backbone_grad():
            return self.backbone.forward_features(image)

    def backbone_grad(self) -> AbstractContextManager[Any]:
        """``torch.no_grad()`` while the backbone is frozen, else a no-op context."""
        return torch.no_grad() if self.frozen else nullcontext()

    # ---- LP-FT ---------------------------------------------------------------------------
    def on_fit_start(self) -> None:
        """LP-FT's LP stage (``finetune`` mode): fit the head on frozen features first.

        Skipped when the fit resumes from a checkpoint (the head is restored) and in the
        other modes.
        """
        if self.hp.mode != "finetune":
            return
        trainer = self.trainer
        if trainer.ckpt_path is not None:
            log.info("resuming from %s: the LP stage of LP-FT is skipped", trainer.ckpt_path)
            return
        assert self.backbone is not None and self.head is not None
        was_training = self.training
        self._lp_stage = True
        try:
            self.train()  # the head trains; the frozen backbone stays in eval mode
            self.lp_info = self.fit_head_first()
        finally:
            self._lp_stage = False
            self.train(was_training)
        broadcast_module(self.head, trainer)
        log.info(
            "%s LP-FT: head fitted on frozen features (%s); fine-tuning the whole model",
            type(self).__name__,
            ", ".join(f"{k} {v}" for k, v in self.lp_info.items() if not isinstance(v, list)),
        )

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
    def _lr_args(self) -> dict[str, float]:
        """``lr`` (as given) or ``base_lr`` (scaled) for :func:`plan_steps`."""
        hp = self.hp
        if hp.lr is not None and hp.base_lr is not None:
            raise ConfigError(
                f"{type(self).__name__}: give lr (the learning rate, as given) or base_lr "
                f"(scaled by effective batch / 256), not both (lr={hp.lr}, base_lr={hp.base_lr})"
            )
        if hp.base_lr is not None:
            return {"base_lr": float(hp.base_lr)}
        lr = MODE_DEFAULTS[hp.mode]["lr"] if hp.lr is None else float(hp.lr)
        return {"lr": lr}

    def configure_optimizers(self) -> dict[str, Any]:  # type: ignore[override]
        """AdamW, layer-wise lr decay and head lr multiplier (fine-tuning), warmup + cosine."""
        assert self.backbone is not None
        hp = self.hp
        defaults = MODE_DEFAULTS[hp.mode]
        decay = defaults["weight_decay"] if hp.weight_decay is None else float(hp.weight_decay)
        fraction = hp.max_warmup_fraction
        plan = plan_steps(
            self.trainer,
            **self._lr_args(),
            warmup_epochs=hp.warmup_epochs,
            warmup_steps=hp.warmup_steps,
            max_warmup_fraction=None if fraction is None else float(fraction),
        )
        depth = self.backbone.depth
        tuning = hp.mode != "linear"
        layered = tuning and hp.layer_decay < 1.0
        head_scale = float(hp.head_lr_scale) if tuning else 1.0
        # timm's grouping of the backbone (stem 0, block i: i + 1, final norm depth + 1);
        # the task head, outside the backbone, shares the top layer with the final norm
        layers = timm_layer_ids(self.backbone, prefix="backbone.")
        groups = param_groups(
            self.named_parameters(),
            weight_decay=decay,
            layer_id=(lambda name: layers.get(name, depth + 1)) if layered else None,
            layer_decay=hp.layer_decay if layered else 1.0,
            num_layers=depth,
            no_decay_names=no_weight_decay_names(self.backbone, prefix="backbone."),
            is_head=lambda name: name.startswith("head."),
            head_lr_scale=head_scale,
        )
        log.info(
            "%s (%s): %s, weight decay %g, layer decay %g, head lr x%g; %d warmup of %d steps",
            type(self).__name__,
            hp.mode,
            plan.lr_rule,
            decay,
            hp.layer_decay if layered else 1.0,
            head_scale,
            plan.warmup_steps,
            plan.total_steps,
        )
        if plan.base_lr is not None:
            ratio = plan.lr / plan.base_lr
            (log.warning if not 0.5 <= ratio <= 2.0 else log.info)(
                "%s: base_lr %.3g was scaled by effective batch %d / 256 to lr %.3g (x%.3g); "
                "set lr instead of base_lr to use a learning rate as written",
                type(self).__name__,
                plan.base_lr,
                plan.effective_batch,
                plan.lr,
                ratio,
            )
        if tuning and plan.total_steps < int(hp.min_steps):
            log.warning(
                "%s (%s): the budget is %d optimizer steps, below the minimum of %d "
                "(min_steps): raise trainer.max_steps (or max_epochs), or lower min_steps "
                "if this is intended",
                type(self).__name__,
                hp.mode,
                plan.total_steps,
                int(hp.min_steps),
            )
        return adamw_warmup_cosine(groups, plan=plan, betas=hp.betas, min_lr_ratio=hp.min_lr_ratio)


def check_mode(mode: str) -> None:
    """Raise a ConfigError unless ``mode`` is one of :data:`MODE_DEFAULTS`."""
    if mode not in MODE_DEFAULTS:
        raise ConfigError(f"mode must be one of {list(MODE_DEFAULTS)}, got {mode!r}")


def check_schedule(
    *, head_lr_scale: float, max_warmup_fraction: float | None, min_steps: int
) -> None:
    """Raise a ConfigError for a non-positive head multiplier, warmup share or step minimum."""
    if head_lr_scale <= 0:
        raise ConfigError(f"head_lr_scale must be positive, got {head_lr_scale}")
    if max_warmup_fraction is not None and not 0.0 <= max_warmup_fraction < 1.0:
        raise ConfigError(f"max_warmup_fraction must be in [0, 1), got {max_warmup_fraction}")
    if min_steps < 0:
        raise ConfigError(f"min_steps must be >= 0, got {min_steps}")
