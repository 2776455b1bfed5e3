"""Fixed sin-cos embeddings (2-D patch position, 1-D wavelength) and resampling.

All embeddings are computed in float64 and returned as float32. Patch tokens are in
row-major order: token ``i * gw + j`` is the patch in row ``i``, column ``j``. The
first half of a 2-D embedding encodes the row, the second half the column.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from timm.layers import resample_abs_pos_embed

from geomae.errors import ConfigError

__all__ = [
    "resample_pos_embed",
    "sincos_1d",
    "sincos_2d",
    "wavelength_embed",
]


def sincos_1d(positions: torch.Tensor, dim: int, *, temperature: float = 10000.0) -> torch.Tensor:
    """Sin-cos embedding of scalar positions.

    Args:
        positions: (N,) positions (any real values).
        dim: embedding width, even.
        temperature: longest wavelength of the frequency ladder.

    Returns:
        (N, dim) float32: ``[sin(pos * w_k), cos(pos * w_k)]`` for
        ``w_k = temperature ** (-k / (dim / 2))``, k = 0 .. dim/2 - 1.
    """
    if dim <= 0 or dim % 2:
        raise ConfigError(f"a 1-D sin-cos embedding needs an even positive width, got {dim}")
    half = dim // 2
    omega = temperature ** (-torch.arange(half, dtype=torch.float64) / half)  # (dim/2,)
    angles = positions.to(torch.float64).reshape(-1, 1) * omega.reshape(1, -1)  # (N, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).to(torch.float32)  # (N, dim)


def sincos_2d(grid_size: tuple[int, int], dim: int) -> torch.Tensor:
    """Sin-cos position embedding of a (gh, gw) patch grid.

    Args:
        grid_size: (rows, columns) of the patch grid.
        dim: embedding width, divisible by 4.

    Returns:
        (gh * gw, dim) float32, row-major.
    """
    gh, gw = int(grid_size[0]), int(grid_size[1])
    if dim % 4:
        raise ConfigError(f"a 2-D sin-cos embedding needs a width divisible by 4, got {dim}")
    if gh <= 0 or gw <= 0:
        raise ConfigError(f"the patch grid must be non-empty, got {gh} x {gw}")
    rows, cols = torch.meshgrid(
        torch.arange(gh, dtype=torch.float64), torch.arange(gw, dtype=torch.float64), indexing="ij"
    )  # (gh, gw) each
    emb_rows = sincos_1d(rows.flatten(), dim // 2)  # (L, D/2)
    emb_cols = sincos_1d(cols.flatten(), dim // 2)  # (L, D/2)
    return torch.cat([emb_rows, emb_cols], dim=1)  # (L, D)


def wavelength_embed(wavelengths_nm: Sequence[float], dim: int) -> torch.Tensor:
    """Sin-cos embedding of central wavelengths in nanometres.

    Args:
        wavelengths_nm: one wavelength per band group (the group's mean).
        dim: embedding width, even.

    Returns:
        (G, dim) float32.
    """
    return sincos_1d(torch.tensor(list(wavelengths_nm), dtype=torch.float64), dim)


def resample_pos_embed(
    pos_embed: torch.Tensor,
    *,
    old_grid: tuple[int, int],
    new_grid: tuple[int, int],
    num_prefix_tokens: int = 0,
    mode: str = "bicubic",
) -> torch.Tensor:
    """Interpolate a learned position embedding to a new patch grid.

    Fixed sin-cos embeddings are recomputed instead (see :func:`sincos_2d`); this is
    for learned ones. Prefix tokens (cls, ...) are kept unchanged in front.

    Args:
        pos_embed: (1, P + gh*gw, D) embedding, P = ``num_prefix_tokens``.
        old_grid: (gh, gw) the embedding was made for.
        new_grid: (gh', gw') to resample to.
        num_prefix_tokens: leading tokens that carry no grid position.
        mode: ``torch.nn.functional.interpolate`` mode.

    Returns:
        (1, P + gh'*gw', D) in the input's dtype.
    """
    if pos_embed.ndim != 3 or pos_embed.shape[0] != 1:
        raise ConfigError(f"expected a (1, N, D) position embedding, got {tuple(pos_embed.shape)}")
    gh, gw = old_grid
    expected = num_prefix_tokens + gh * gw
    if pos_embed.shape[1] != expected:
        raise ConfigError(
            f"position embedding has {pos_embed.shape[1]} tokens, but grid {gh}x{gw} with "
            f"{num_prefix_tokens} prefix tokens needs {expected}"
        )
    if tuple(new_grid) == (gh, gw):
        return pos_embed
    return resample_abs_pos_embed(
        pos_embed,
        new_size=[int(new_grid[0]), int(new_grid[1])],
        old_size=[gh, gw],
        num_prefix_tokens=num_prefix_tokens,
        interpolation=mode,
    )  # (1, P + gh'*gw', D)
