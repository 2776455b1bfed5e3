"""ViT size presets (width, depth, heads) and their resolution with overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from geomae.errors import ConfigError

__all__ = ["VIT_SIZES", "SizeName", "ViTSize", "check_dims", "resolve_size"]

SizeName = Literal["tiny", "small", "base", "large", "huge"]


@dataclass(frozen=True)
class ViTSize:
    """Transformer width, depth and number of attention heads.

    Attributes:
        embed_dim: token width D.
        depth: number of transformer blocks.
        num_heads: attention heads per block.
    """

    embed_dim: int
    depth: int
    num_heads: int


#: The standard ViT sizes (Dosovitskiy et al. / DeiT for tiny and small).
VIT_SIZES: dict[str, ViTSize] = {
    "tiny": ViTSize(192, 12, 3),
    "small": ViTSize(384, 12, 6),
    "base": ViTSize(768, 12, 12),
    "large": ViTSize(1024, 24, 16),
    "huge": ViTSize(1280, 32, 16),
}


def resolve_size(
    size: str,
    *,
    embed_dim: int | None = None,
    depth: int | None = None,
    num_heads: int | None = None,
) -> ViTSize:
    """Look up a size preset and apply explicit overrides.

    Args:
        size: one of ``tiny``, ``small``, ``base``, ``large``, ``huge``.
        embed_dim: width override.
        depth: depth override.
        num_heads: heads override.

    Returns:
        The resolved size.

    Raises:
        ConfigError: on an unknown preset, a non-positive value, a width not divisible
            by the number of heads, or a width not divisible by 4 (the 2-D sin-cos
            position embedding splits D into four equal parts).
    """
    if size not in VIT_SIZES:
        raise ConfigError(f"unknown model size {size!r}; expected one of {list(VIT_SIZES)}")
    base = VIT_SIZES[size]
    out = ViTSize(
        embed_dim=base.embed_dim if embed_dim is None else int(embed_dim),
        depth=base.depth if depth is None else int(depth),
        num_heads=base.num_heads if num_heads is None else int(num_heads),
    )
    check_dims(embed_dim=out.embed_dim, depth=out.depth, num_heads=out.num_heads)
    return out


def check_dims(*, embed_dim: int, depth: int, num_heads: int, what: str = "encoder") -> None:
    """Raise ConfigError unless width, depth and heads make a valid sin-cos ViT."""
    if embed_dim <= 0 or depth <= 0 or num_heads <= 0:
        raise ConfigError(
            f"{what} embed_dim, depth and num_heads must be positive, got "
            f"{embed_dim}, {depth}, {num_heads}"
        )
    if embed_dim % num_heads:
        raise ConfigError(f"{what} embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
    if embed_dim % 4:
        raise ConfigError(
            f"{what} embed_dim={embed_dim} must be divisible by 4 for the 2-D sin-cos "
            "position embedding"
        )
