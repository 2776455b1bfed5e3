import logging
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from geomae.errors import ConfigError
from geomae.optim import (
    effective_batch_size,
    make_adamw,
    no_weight_decay_names,
    param_groups,
    plan_steps,
    scaled_lr,
    warmup_cosine,
)


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.fc = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def test_no_decay_on_norms_biases_embeddings_tokens():
    model = Tiny()
    groups = param_groups(model.named_parameters(), weight_decay=0.05)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decayed == {id(model.fc.weight)}
    everything = {id(p) for g in groups for p in g["params"]}
    assert id(model.frozen.weight) not in everything
    assert len(everything) == 6


def test_layer_decay_scales():
    model = Tiny()
    ids = {"pos_embed": 0, "cls_token": 0, "fc.weight": 1, "fc.bias": 1}
    groups = param_groups(
        model.named_parameters(),
        weight_decay=0.05,
        num_layers=1,
        layer_decay=0.5,
        layer_id=lambda n: ids.get(n, 2),
    )
    scales = {round(g["lr_scale"], 4) for g in groups}
    assert scales == {0.25, 0.5, 1.0}
    opt = make_adamw(groups, lr=1e-3, betas=(0.9, 0.95))
    assert sorted({g["lr"] for g in opt.param_groups}) == pytest.approx([2.5e-4, 5e-4, 1e-3])


def test_lr_scaling_rule():
    eff = effective_batch_size(32, world_size=4, accumulate=2)
    assert eff == 256
    assert scaled_lr(1.5e-4, eff) == pytest.approx(1.5e-4)
    assert scaled_lr(1.5e-4, 64) == pytest.approx(3.75e-5)


def test_warmup_then_cosine():
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = warmup_cosine(opt, warmup_steps=4, total_steps=12, min_lr_ratio=0.1)
    lrs = []
    for _ in range(12):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:4] == pytest.approx([0.25, 0.5, 0.75, 1.0])
    assert lrs[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[4:], lrs[5:], strict=False))
    expected_last = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 8))
    assert lrs[-1] == pytest.approx(expected_last)
    with pytest.raises(ValueError):
        warmup_cosine(opt, warmup_steps=1, total_steps=0)


class WithHook(Tiny):
    def __init__(self):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(4, 8))  # 2-D, decayed unless the hook names it

    def no_weight_decay(self):
        return {"gamma", "fc"}


def test_no_weight_decay_hook_and_head_multiplier():
    model = WithHook()
    names = no_weight_decay_names(model, prefix="")
    assert names == {"gamma", "fc"}
    assert no_weight_decay_names(Tiny()) == set()
    groups = param_groups(model.named_parameters(), weight_decay=0.05, no_decay_names=names)
    assert all(g["weight_decay"] == 0.0 for g in groups)  # fc.weight named by prefix "fc"
    groups = param_groups(
        model.named_parameters(),
        weight_decay=0.05,
        is_head=lambda n: n.startswith("fc."),
        head_lr_scale=10.0,
        layer_id=lambda n: 2 if n.startswith("fc.") else 1,
        layer_decay=0.5,
        num_layers=1,
    )
    scale_of = {id(p): g["lr_scale"] for g in groups for p in g["params"]}
    assert scale_of[id(model.fc.weight)] == 10.0 and scale_of[id(model.fc.bias)] == 10.0
    assert scale_of[id(model.gamma)] == 0.5
    with pytest.raises(ConfigError):
        param_groups(model.named_parameters(), weight_decay=0.0, head_lr_scale=0.0)


def _trainer(total: int, batches: int = 10) -> SimpleNamespace:
    return SimpleNamespace(
        datamodule=SimpleNamespace(batch_size=8),
        accumulate_grad_batches=1,
        world_size=1,
        estimated_stepping_batches=total,
        train_dataloader=object(),
        num_training_batches=batches,
    )


def test_plan_steps_lr_rules_and_warmup_clamp(caplog):
    plan = plan_steps(_trainer(100), lr=3e-4, warmup_epochs=1.0, warmup_steps=None)
    assert plan.lr == 3e-4 and plan.base_lr is None and plan.warmup_steps == 10
    assert "as given" in plan.lr_rule and not plan.warmup_clamped
    plan = plan_steps(_trainer(100), base_lr=1e-2, warmup_epochs=0, warmup_steps=4)
    assert plan.lr == pytest.approx(1e-2 * 8 / 256) and "x effective batch 8 / 256" in plan.lr_rule
    with caplog.at_level(logging.WARNING, logger="geomae.optim"):
        plan = plan_steps(
            _trainer(30, batches=3),
            lr=1e-3,
            warmup_epochs=5,
            warmup_steps=None,
            max_warmup_fraction=0.2,
        )
    assert plan.warmup_steps == 6 and plan.requested_warmup == 15 and plan.warmup_clamped
    assert "warmup of 15 steps is more than 0.2 of the 30-step budget: clamped to 6" in caplog.text
    # without a fraction, the warmup stays as asked (pretraining)
    plan = plan_steps(_trainer(30, batches=3), base_lr=1e-3, warmup_epochs=5, warmup_steps=None)
    assert plan.warmup_steps == 15
    for kwargs in ({}, {"lr": 1e-3, "base_lr": 1e-3}):
        with pytest.raises(ConfigError, match="exactly one of lr"):
            plan_steps(_trainer(10), warmup_epochs=0, warmup_steps=0, **kwargs)
