"""MAE-style weight initialization helpers."""

from __future__ import annotations

from torch import nn

__all__ = ["init_linear_and_norm", "init_patch_conv"]


def init_linear_and_norm(module: nn.Module) -> None:
    """Xavier-uniform linear weights, zero biases, unit LayerNorm (use with ``.apply``)."""
    if isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def init_patch_conv(conv: nn.Conv2d) -> None:
    """Initialize a patch-embedding convolution like a linear layer on flattened patches."""
    nn.init.xavier_uniform_(conv.weight.view(conv.weight.shape[0], -1))
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
