"""Optimizer parameter groups, learning-rate scaling and warmup-cosine schedules.

Shared by every geomae task so that pretraining and fine-tuning follow one recipe:
AdamW, weight decay on weight matrices only (never on norms, biases, embeddings, tokens
or what a model's ``no_weight_decay()`` names), a linear warmup then a cosine decay.

Two learning-rate rules (:func:`plan_steps`):

- ``base_lr``: the MAE linear scaling rule ``lr = base_lr * effective_batch / 256``
  (pretraining; still accepted by the fine-tuning tasks, and then logged loudly);
- ``lr``: the peak learning rate as given, whatever the batch (the fine-tuning default:
  a small-data fine-tune at batch 8 would otherwise run 32x below the written value).

Fine-tuning adds layer-wise lr decay (``layer_decay ** (depth below the head)``) and a
head multiplier (``head_lr_scale``) on the task head's parameters, and can clamp a
warmup that would eat too much of a short budget (``max_warmup_fraction``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, cast

import torch
from timm.models import group_parameters
from torch import nn

from geomae.errors import ConfigError

log = logging.getLogger(__name__)

__all__ = [
    "NO_DECAY_KEYWORDS",
    "no_weight_decay_names",
    "StepPlan",
    "adamw_warmup_cosine",
    "datamodule_batch_size",
    "plan_steps",
    "effective_batch_size",
    "make_adamw",
    "param_groups",
    "scaled_lr",
    "timm_layer_ids",
    "warmup_cosine",
]

#: Parameter-name fragments that never get weight decay (plus every 1-D parameter).
NO_DECAY_KEYWORDS: tuple[str, ...] = (
    "pos_embed",
    "cls_token",
    "mask_token",
    "group_embed",
    "spectral",
)


def _no_decay(name: str, param: nn.Parameter, names: Collection[str] = ()) -> bool:
    """True for norms, biases, position/group embeddings, tokens and listed names."""
    if param.ndim <= 1 or any(k in name for k in NO_DECAY_KEYWORDS):
        return True
    return any(name == n or name.startswith(n + ".") for n in names)


def no_weight_decay_names(module: nn.Module, *, prefix: str = "") -> set[str]:
    """The parameter names ``module.no_weight_decay()`` excludes from decay, prefixed.

    Args:
        module: a model with an optional timm-style ``no_weight_decay()`` hook returning
            parameter (or submodule) names relative to the model.
        prefix: the model's name prefix in the caller's ``named_parameters()``
            (e.g. ``backbone.``).

    Returns:
        ``{prefix + name}``; empty when the model has no such hook.
    """
    hook = getattr(module, "no_weight_decay", None)
    if not callable(hook):
        return set()
    return {prefix + str(n) for n in hook()}


def timm_layer_ids(model: nn.Module, *, prefix: str = "") -> dict[str, int]:
    """Depth of each parameter of a timm-style model, from its ``group_matcher()``.

    timm's own grouping (:func:`timm.models.group_parameters`, what its layer-decay
    optimizer factory uses): for :class:`~geomae.models.vit.ChannelViT` the stem is 0,
    block ``i`` is ``i + 1`` and the final norm ``depth + 1``.

    Args:
        model: a model with timm's ``group_matcher()`` hook.
        prefix: the model's name prefix in the caller's ``named_parameters()``
            (e.g. ``backbone.``).

    Returns:
        ``{prefix + parameter name: depth}``.
    """
    matcher = cast(Any, model).group_matcher(coarse=False)
    layers = group_parameters(model, matcher, reverse=True)
    return {prefix + name: int(depth) for name, depth in layers.items()}


def param_groups(
    named_params: Iterable[tuple[str, nn.Parameter]],
    *,
    weight_decay: float,
    layer_id: Callable[[str], int] | None = None,
    layer_decay: float = 1.0,
    num_layers: int = 0,
    no_decay_names: Collection[str] = (),
    is_head: Callable[[str], bool] | None = None,
    head_lr_scale: float = 1.0,
) -> list[dict]:
    """Split parameters into decay / no-decay groups, optionally with layer-wise lr decay.

    Args:
        named_params: ``model.named_parameters()``; frozen parameters are skipped.
        weight_decay: decay for weight matrices; norms, biases, embeddings, tokens and
            ``no_decay_names`` get 0.
        layer_id: maps a parameter name to its depth (0 = embeddings, ``num_layers + 1``
            = head) for layer-wise learning-rate decay; None disables it.
        layer_decay: lr multiplier per layer below the head (``layer_decay ** depth``).
        num_layers: number of transformer blocks.
        no_decay_names: further parameter names (or name prefixes ending a module
            name) without weight decay, e.g. :func:`no_weight_decay_names`.
        is_head: True for the task head's parameters, whose lr scale is multiplied by
            ``head_lr_scale`` (on top of the layer decay, which gives the head 1).
        head_lr_scale: lr multiplier of the head's parameters.

    Returns:
        Parameter groups with ``params``, ``weight_decay`` and ``lr_scale`` keys.
    """
    if head_lr_scale <= 0:
        raise ConfigError(f"head_lr_scale must be positive, got {head_lr_scale}")
    groups: dict[tuple[int, bool, bool], dict] = {}
    for name, param in named_params:
        if not param.requires_grad:
            continue
        no_decay = _no_decay(name, param, no_decay_names)
        head = is_head is not None and is_head(name)
        depth = layer_id(name) if layer_id is not None else num_layers + 1
        scale = layer_decay ** (num_layers + 1 - depth) if layer_id is not None else 1.0
        if head:
            scale *= head_lr_scale
        key = (depth, no_decay, head)
        if key not in groups:
            groups[key] = {
                "params": [],
                "weight_decay": 0.0 if no_decay else weight_decay,
                "lr_scale": scale,
            }
        groups[key]["params"].append(param)
    return list(groups.values())


def effective_batch_size(batch_size: int, *, world_size: int, accumulate: int) -> int:
    """Images per optimizer step over all processes: batch x world size x accumulation."""
    return int(batch_size) * int(world_size) * int(accumulate)


def scaled_lr(base_lr: float, effective_batch: int) -> float:
    """The MAE rule: ``lr = base_lr * effective_batch / 256``."""
    return base_lr * effective_batch / 256


def make_adamw(
    groups: list[dict], *, lr: float, betas: tuple[float, float]
) -> torch.optim.Optimizer:
    """AdamW, fused on CUDA where available (one kernel for all parameters)."""
    on_cuda = any(p.is_cuda for g in groups for p in g["params"])
    kwargs: dict = {"fused": True} if on_cuda else {"foreach": True}
    for g in groups:
        g["lr"] = lr * g.get("lr_scale", 1.0)
    return torch.optim.AdamW(groups, lr=lr, betas=betas, **kwargs)


def warmup_cosine(
    optimizer: torch.optim.Optimizer,
    *,
    warmup_steps: int,
    total_steps: int,
    min_lr_ratio: float = 0.0,
) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 to each group's lr over ``warmup_steps``, then cosine decay.

    The schedule is stepped once per optimizer step, so it works the same whether the
    run is bounded by ``max_steps`` or ``max_epochs``.

    Args:
        optimizer: the optimizer whose groups' ``lr`` are the peak learning rates.
        warmup_steps: number of warmup steps (clamped to ``[0, total_steps]``).
        total_steps: total optimizer steps of the run (> 0).
        min_lr_ratio: final lr as a fraction of the peak.
    """
    if total_steps <= 0:
        raise ValueError(f"total_steps must be > 0, got {total_steps}")
    warmup_steps = max(0, min(int(warmup_steps), total_steps))

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        progress = min(progress, 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def datamodule_batch_size(trainer: Any) -> int:
    """Per-process batch size as the DataModule sets it (never a hand-set GPU count)."""
    size = getattr(trainer.datamodule, "batch_size", None)
    if not isinstance(size, int) or size <= 0:
        raise ConfigError(
            "cannot read the batch size from the DataModule (needs a positive int "
            "`batch_size` attribute) to scale the learning rate"
        )
    return size


@dataclass(frozen=True)
class StepPlan:
    """Learning rate and schedule length of a run, read from the trainer.

    Attributes:
        lr: the peak learning rate.
        base_lr: the per-256 learning rate it was scaled from (None: ``lr`` as given).
        batch_size: per-process batch size.
        effective_batch: images per optimizer step over all processes.
        warmup_steps: warmup length actually used (after any clamp).
        total_steps: optimizer steps of the run.
        requested_warmup: the warmup asked for, before a clamp.
    """

    lr: float
    base_lr: float | None
    batch_size: int
    effective_batch: int
    warmup_steps: int
    total_steps: int
    requested_warmup: int = -1

    @property
    def lr_rule(self) -> str:
        """How ``lr`` came about, for log lines."""
        if self.base_lr is None:
            return f"lr {self.lr:.3g} as given (not scaled by the batch)"
        return (
            f"lr {self.lr:.3g} = base_lr {self.base_lr:.3g} x effective batch "
            f"{self.effective_batch} / 256"
        )

    @property
    def warmup_clamped(self) -> bool:
        """True when the requested warmup was shortened to fit the budget."""
        return self.requested_warmup > self.warmup_steps


def plan_steps(
    trainer: Any,
    *,
    base_lr: float | None = None,
    lr: float | None = None,
    warmup_epochs: float,
    warmup_steps: int | None,
    max_warmup_fraction: float | None = None,
) -> StepPlan:
    """Size the learning rate and the warmup, from the live trainer.

    The effective batch is the DataModule's batch size x the trainer's world size
    (devices x nodes) x gradient accumulation; the total is Lightning's estimate of
    optimizer steps, so ``max_steps`` and ``max_epochs`` runs both work.

    Args:
        trainer: the Lightning trainer (its DataModule gives the batch size).
        base_lr: per-256 learning rate, scaled by the effective batch.
        lr: peak learning rate used as given (exactly one of ``lr`` / ``base_lr``).
        warmup_epochs: warmup in epochs (used when ``warmup_steps`` is None).
        warmup_steps: warmup in optimizer steps.
        max_warmup_fraction: at most this share of the total steps warms up; a longer
            warmup is clamped, with a warning (None: only clamped to the total).

    Raises:
        ConfigError: if the batch size cannot be read, both or neither of ``lr`` and
            ``base_lr`` are given, or the warmup is given in epochs but the train
            loader has no length.
    """
    if (lr is None) == (base_lr is None):
        raise ConfigError(
            f"give exactly one of lr (used as given) and base_lr (scaled by batch / 256); "
            f"got lr={lr}, base_lr={base_lr}"
        )
    batch = datamodule_batch_size(trainer)
    accumulate = trainer.accumulate_grad_batches
    eff = effective_batch_size(batch, world_size=trainer.world_size, accumulate=accumulate)
    total = int(trainer.estimated_stepping_batches)
    if warmup_steps is not None:
        warmup = int(warmup_steps)
    else:
        if trainer.train_dataloader is None:
            # with max_steps set, Lightning estimates the total without sizing the loader
            trainer.fit_loop.setup_data()
        batches = trainer.num_training_batches
        if not math.isfinite(batches):
            raise ConfigError("the train loader has no length: set warmup_steps")
        warmup = round(warmup_epochs * math.ceil(batches / accumulate))
    requested = warmup
    if max_warmup_fraction is not None:
        cap = int(max_warmup_fraction * total)
        if warmup > cap:
            log.warning(
                "warmup of %d steps is more than %g of the %d-step budget: clamped to %d "
                "steps (max_warmup_fraction %g)",
                warmup,
                max_warmup_fraction,
                total,
                cap,
                max_warmup_fraction,
            )
            warmup = cap
    peak = float(lr) if lr is not None else scaled_lr(float(base_lr), eff)  # type: ignore[arg-type]
    return StepPlan(peak, base_lr, batch, eff, warmup, total, requested)


def adamw_warmup_cosine(
    groups: list[dict], *, plan: StepPlan, betas: Iterable[float], min_lr_ratio: float
) -> dict[str, Any]:
    """Lightning optimizer config: AdamW at ``plan.lr``, stepped warmup + cosine."""
    optimizer = make_adamw(groups, lr=plan.lr, betas=tuple(betas))  # type: ignore[arg-type]
    scheduler = warmup_cosine(
        optimizer,
        warmup_steps=plan.warmup_steps,
        total_steps=plan.total_steps,
        min_lr_ratio=min_lr_ratio,
    )
    return {
        "optimizer": optimizer,
        "lr_scheduler": {"scheduler": scheduler, "interval": "step", "name": "lr"},
    }
