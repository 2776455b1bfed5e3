"""Token masking for the channel-aware MAE.

Tokens are group-major: token ``g * L + l`` is patch ``l`` of band group ``g``
(G groups, L patches, N = G * L). Every strategy keeps the same number of tokens in
every sample, so the visible tokens form a dense ``(B, N_vis, D)`` batch gathered by
index. With ``r`` the mask ratio:

- ``consistent``: one spatial mask shared by all groups. Each group keeps
  ``K = clamp(round(L * (1 - r)), 1, L)`` patches; ``N_vis = G * K``.
- ``independent``: each group draws its own spatial mask with the same ``K`` as above;
  ``N_vis = G * K``.
- ``spectral``: ``G_drop = min(floor(G * r), G - 1)`` whole groups are dropped (chosen
  per sample); the remaining ``G_k = G - G_drop`` groups share one spatial mask that
  keeps ``K = clamp(round(L * (1 - r) * G / G_k), 1, L)`` patches, which makes up the
  rest of the ratio; ``N_vis = G_k * K``. With one group this equals ``consistent``.

Visible tokens are listed in ascending (group-major) token order.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

import torch

from geomae.errors import ConfigError

__all__ = [
    "MASKING_STRATEGIES",
    "Masks",
    "MaskingStrategy",
    "check_ratio",
    "make_masks",
    "visible_counts",
]

MaskingStrategy = Literal["consistent", "independent", "spectral"]
MASKING_STRATEGIES: tuple[str, ...] = ("consistent", "independent", "spectral")


class Masks(NamedTuple):
    """Result of :func:`make_masks`.

    Attributes:
        ids_keep: (B, N_vis) int64 indices of the visible tokens, ascending.
        mask: (B, N) float, 1 = masked, 0 = visible.
        ids_restore: (B, N) int64; ``cat([visible, masked])`` gathered with it is in
            the original token order.
    """

    ids_keep: torch.Tensor
    mask: torch.Tensor
    ids_restore: torch.Tensor


def check_ratio(mask_ratio: float) -> float:
    """Return ``mask_ratio`` as float, raising ConfigError unless 0 <= r < 1."""
    r = float(mask_ratio)
    if not 0.0 <= r < 1.0:
        raise ConfigError(f"mask_ratio must be in [0, 1), got {mask_ratio}")
    return r


def visible_counts(
    strategy: str, *, num_groups: int, num_patches: int, mask_ratio: float
) -> tuple[int, int]:
    """Groups kept and patches kept per kept group (see the module docstring).

    Args:
        strategy: ``consistent``, ``independent`` or ``spectral``.
        num_groups: G.
        num_patches: L, patches per group.
        mask_ratio: r in [0, 1).

    Returns:
        ``(G_k, K)``; the encoder sees ``G_k * K`` tokens.
    """
    r = check_ratio(mask_ratio)
    g, n = int(num_groups), int(num_patches)
    if strategy in ("consistent", "independent"):
        return g, min(max(round(n * (1.0 - r)), 1), n)
    if strategy == "spectral":
        kept_groups = g - min(math.floor(g * r), g - 1)
        return kept_groups, min(max(round(n * (1.0 - r) * g / kept_groups), 1), n)
    raise ConfigError(f"unknown masking strategy {strategy!r}; expected {list(MASKING_STRATEGIES)}")


def _lowest(noise: torch.Tensor, k: int) -> torch.Tensor:
    """Bool mask of the ``k`` smallest values along the last dim of ``noise``."""
    rank = noise.argsort(dim=-1).argsort(dim=-1)
    return rank < k


def make_masks(
    *,
    batch_size: int,
    num_groups: int,
    num_patches: int,
    mask_ratio: float,
    strategy: MaskingStrategy,
    device: torch.device | str | None = None,
    generator: torch.Generator | None = None,
) -> Masks:
    """Draw random token masks.

    Args:
        batch_size: B.
        num_groups: G.
        num_patches: L, patches per group.
        mask_ratio: r in [0, 1).
        strategy: ``consistent``, ``independent`` or ``spectral``.
        device: device of the returned tensors.
        generator: random generator (on ``device``) for reproducible masks.

    Returns:
        The masks; every sample has exactly ``G_k * K`` visible tokens
        (:func:`visible_counts`).
    """
    b, g, n = int(batch_size), int(num_groups), int(num_patches)
    kept_groups, k = visible_counts(strategy, num_groups=g, num_patches=n, mask_ratio=mask_ratio)

    def rand(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, device=device, generator=generator)

    if strategy == "consistent":
        keep = _lowest(rand(b, n), k).unsqueeze(1).expand(b, g, n)  # (B, G, L)
    elif strategy == "independent":
        keep = _lowest(rand(b, g, n), k)  # (B, G, L)
    else:
        groups_kept = _lowest(rand(b, g), kept_groups)  # (B, G)
        spatial = _lowest(rand(b, n), k)  # (B, L)
        keep = groups_kept.unsqueeze(2) & spatial.unsqueeze(1)  # (B, G, L)
    mask = (~keep).reshape(b, g * n)  # (B, N) True = masked
    # Stable sort puts the visible tokens first, each part in ascending token order.
    ids_shuffle = torch.argsort(mask.to(torch.uint8), dim=1, stable=True)  # (B, N)
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (B, N)
    ids_keep = ids_shuffle[:, : kept_groups * k]  # (B, N_vis)
    return Masks(ids_keep=ids_keep, mask=mask.to(torch.float32), ids_restore=ids_restore)
