"""Image <-> patch-sequence reshapes used by the MAE targets and reconstructions.

A patch vector is laid out pixel-major, channel-last: ``(p_row, p_col, channel)``
flattened, i.e. index ``(r * p + c) * C + k``. Patches are in row-major grid order.
"""

from __future__ import annotations

import torch

from geomae.errors import ConfigError

__all__ = ["patchify", "unpatchify"]


def patchify(x: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Cut an image into flattened patches.

    Args:
        x: (B, C, H, W), H and W divisible by ``patch_size``.
        patch_size: p.

    Returns:
        (B, L, p*p*C), L = (H/p) * (W/p).
    """
    b, c, h, w = x.shape
    p = int(patch_size)
    if h % p or w % p:
        raise ConfigError(f"image size {h}x{w} is not divisible by the patch size {p}")
    gh, gw = h // p, w // p
    x = x.reshape(b, c, gh, p, gw, p)  # (B, C, gh, p, gw, p)
    x = x.permute(0, 2, 4, 3, 5, 1)  # (B, gh, gw, p, p, C)
    return x.reshape(b, gh * gw, p * p * c)  # (B, L, p*p*C)


def unpatchify(x: torch.Tensor, patch_size: int, grid_size: tuple[int, int]) -> torch.Tensor:
    """Inverse of :func:`patchify`.

    Args:
        x: (B, L, p*p*C) patches.
        patch_size: p.
        grid_size: (gh, gw) with gh * gw == L.

    Returns:
        (B, C, gh*p, gw*p).
    """
    b, n, d = x.shape
    p = int(patch_size)
    gh, gw = int(grid_size[0]), int(grid_size[1])
    if n != gh * gw or d % (p * p):
        raise ConfigError(
            f"cannot unpatchify {tuple(x.shape)} with patch size {p} into a {gh}x{gw} grid"
        )
    c = d // (p * p)
    x = x.reshape(b, gh, gw, p, p, c)  # (B, gh, gw, p, p, C)
    x = x.permute(0, 5, 1, 3, 2, 4)  # (B, C, gh, p, gw, p)
    return x.reshape(b, c, gh * p, gw * p)  # (B, C, H, W)
