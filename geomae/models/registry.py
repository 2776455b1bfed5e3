"""timm registrations: ``geomae_vit_{tiny,small,base,large,huge}_patch{8,16}``.

After ``import geomae.models``::

    timm.create_model("geomae_vit_tiny_patch16", bands=["B02", "B03", "B04"], groups="single")

builds a randomly initialized :class:`~geomae.models.vit.ChannelViT`. Pretrained
geomae weights are not fetched by timm: load them with ``geomae.convert``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from timm.models import register_model

from geomae.bands import L2A_BANDS, parse_bands
from geomae.errors import ConfigError
from geomae.models.groups import GroupSpec
from geomae.models.sizes import VIT_SIZES
from geomae.models.vit import ChannelViT

__all__ = [
    "MODEL_NAMES",
    "create_channel_vit",
    "geomae_vit_tiny_patch16",
    "geomae_vit_tiny_patch8",
    "geomae_vit_small_patch16",
    "geomae_vit_small_patch8",
    "geomae_vit_base_patch16",
    "geomae_vit_base_patch8",
    "geomae_vit_large_patch16",
    "geomae_vit_large_patch8",
    "geomae_vit_huge_patch16",
    "geomae_vit_huge_patch8",
]

#: timm factory arguments that carry no meaning for geomae models.
_IGNORED = ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir")


def create_channel_vit(
    *,
    size: str,
    patch_size: int,
    pretrained: bool = False,
    bands: str | Sequence[str] | None = None,
    groups: GroupSpec = "single",
    img_size: int | Sequence[int] = 224,
    in_chans: int | None = None,
    **kwargs: Any,
) -> ChannelViT:
    """Build a ChannelViT of a preset size (what the timm entry points call).

    Args:
        size: ``tiny``, ``small``, ``base``, ``large`` or ``huge``.
        patch_size: patch size p.
        pretrained: must be False (geomae weights load through ``geomae.convert``).
        bands: band names or a band-set name; default all 12 L2A bands.
        groups: band-group preset or lists of bands.
        img_size: image size for the position-embedding buffer.
        in_chans: optional check: must equal the number of bands.
        **kwargs: other :class:`ChannelViT` arguments (``num_classes``,
            ``global_pool``, ``drop_path_rate``, overrides of ``embed_dim``/``depth``/
            ``num_heads``); ``device``/``dtype`` move the model.

    Returns:
        The model.

    Raises:
        ConfigError: ``pretrained=True``, or ``in_chans`` not matching ``bands``.
    """
    if pretrained:
        raise ConfigError(
            "geomae models have no timm-hosted weights; create the model with "
            "pretrained=False and load a geomae checkpoint or export with geomae.convert"
        )
    for key in _IGNORED:
        kwargs.pop(key, None)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    band_list = list(L2A_BANDS) if bands is None else parse_bands(bands, keep_order=True)
    if in_chans is not None and int(in_chans) != len(band_list):
        raise ConfigError(
            f"in_chans={in_chans} does not match the {len(band_list)} bands {band_list}"
            + ("" if bands is not None else " (default: all 12 L2A bands); pass bands=")
        )
    dims = VIT_SIZES[size]
    params: dict[str, Any] = {
        "embed_dim": dims.embed_dim,
        "depth": dims.depth,
        "num_heads": dims.num_heads,
        **kwargs,
    }
    model = ChannelViT(
        bands=band_list, groups=groups, img_size=img_size, patch_size=patch_size, **params
    )
    if device is not None or dtype is not None:
        model = model.to(device=torch.device(device) if device is not None else None, dtype=dtype)
    return model


@register_model
def geomae_vit_tiny_patch16(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-tiny, 16x16 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="tiny", patch_size=16, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_tiny_patch8(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-tiny, 8x8 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="tiny", patch_size=8, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_small_patch16(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-small, 16x16 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="small", patch_size=16, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_small_patch8(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-small, 8x8 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="small", patch_size=8, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_base_patch16(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-base, 16x16 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="base", patch_size=16, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_base_patch8(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-base, 8x8 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="base", patch_size=8, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_large_patch16(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-large, 16x16 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="large", patch_size=16, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_large_patch8(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-large, 8x8 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="large", patch_size=8, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_huge_patch16(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-huge, 16x16 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="huge", patch_size=16, pretrained=pretrained, **kwargs)


@register_model
def geomae_vit_huge_patch8(pretrained: bool = False, **kwargs: Any) -> ChannelViT:
    """ChannelViT-huge, 8x8 patches (see :func:`create_channel_vit`)."""
    return create_channel_vit(size="huge", patch_size=8, pretrained=pretrained, **kwargs)


#: Names of the registered timm models.
MODEL_NAMES: tuple[str, ...] = (
    "geomae_vit_tiny_patch16",
    "geomae_vit_tiny_patch8",
    "geomae_vit_small_patch16",
    "geomae_vit_small_patch8",
    "geomae_vit_base_patch16",
    "geomae_vit_base_patch8",
    "geomae_vit_large_patch16",
    "geomae_vit_large_patch8",
    "geomae_vit_huge_patch16",
    "geomae_vit_huge_patch8",
)
