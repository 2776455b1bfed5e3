import math

import pytest
import torch
from torch import nn

from geomae.optim import effective_batch_size, make_adamw, param_groups, scaled_lr, warmup_cosine


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
