"""Helpers of the importer tests (a unique module name: every test folder has a conftest)."""

import torch

from geomae.bands import S2_BANDS

#: SSL4EO-S12 channel order: the 13 L1C bands.
L1C_13 = list(S2_BANDS)
#: A timm ViT small enough for CPU tests (the architecture is inferred: no standard
#: head count for width 32, so --num-heads is given).
TINY_TIMM = {"embed_dim": 32, "depth": 2, "num_heads": 2, "patch_size": 8, "img_size": 32}


def perturbed(model, seed):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def features(model, x):
    with torch.no_grad():
        return model.eval().forward_features(x)
