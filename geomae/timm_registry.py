"""timm registrations: ``geomae_vit_{tiny,small,base,large,huge}_patch{8,16}``.

After ``import geomae`` (or any ``geomae.*`` module, which imports the package)::

    timm.create_model("geomae_vit_tiny_patch16", bands=["B02", "B03", "B04"], groups="single")

builds a randomly initialized :class:`~geomae.models.vit.ChannelViT`. With
``pretrained=True`` the weights come from a local geomae file (there are no hosted
weights), named the timm way::

    timm.create_model(
        "geomae_vit_small_patch16",
        pretrained=True,
        pretrained_cfg_overlay=dict(file="weights.safetensors"),
    )

which delegates to :func:`geomae.convert.load_backbone` (a ``geomae convert`` export of
either target, or an MAE ``.ckpt``). The architecture comes from the file; the model
name's size and patch size, and any ``embed_dim``/``depth``/``num_heads``/``groups``/
``mlp_ratio``/``qkv_bias`` given, must agree with it. ``bands`` selects a subset,
``img_size`` resizes, ``num_classes``/``global_pool``/``drop_path_rate`` apply as usual.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from timm.models import register_model

from geomae.bands import L2A_BANDS, parse_bands
from geomae.convert import encoder_kwargs, load_backbone, read_weights_metadata
from geomae.errors import CheckpointError, ConfigError
from geomae.models.arch import EncoderArch
from geomae.models.groups import GroupSpec, resolve_groups
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

#: Arguments that apply to a pretrained model as to a new one (load_backbone's).
_LOAD_ARGS = ("num_classes", "global_pool", "drop_path_rate")


def _pretrained_file(cfg: Any, overlay: Any) -> str | None:
    """The ``file`` of ``pretrained_cfg_overlay`` or ``pretrained_cfg`` (dict or object)."""
    for source in (overlay, cfg):
        if source is None:
            continue
        file = source.get("file") if isinstance(source, Mapping) else getattr(source, "file", None)
        if file:
            return str(file)
    return None


def _load_pretrained(
    file: str,
    *,
    size: str,
    patch_size: int,
    bands: str | Sequence[str] | None,
    groups: GroupSpec | None,
    img_size: int | Sequence[int] | None,
    kwargs: dict[str, Any],
) -> ChannelViT:
    """Load ``file`` with load_backbone after checking the requested architecture."""
    metadata, _ = read_weights_metadata(file)
    stored = encoder_kwargs(metadata)
    named = EncoderArch.resolve(
        bands=stored["bands"],
        groups=stored["groups"],
        size=size,
        img_size=stored["img_size"],
        patch_size=patch_size,
        embed_dim=kwargs.pop("embed_dim", None),
        depth=kwargs.pop("depth", None),
        num_heads=kwargs.pop("num_heads", None),
    )
    requested: dict[str, Any] = {
        "patch_size": named.patch_size,
        "embed_dim": named.embed_dim,
        "depth": named.depth,
        "num_heads": named.num_heads,
    }
    for key in ("mlp_ratio", "qkv_bias"):
        if key in kwargs:
            requested[key] = type(stored[key])(kwargs.pop(key))
    if groups is not None:
        requested["groups"] = resolve_groups(stored["bands"], groups)
    load_args = {k: kwargs.pop(k) for k in _LOAD_ARGS if k in kwargs}
    if kwargs:
        raise ConfigError(
            f"argument(s) {sorted(kwargs)} cannot be applied to pretrained weights: the "
            f"architecture comes from {file}"
        )
    differ = {k: (v, stored[k]) for k, v in requested.items() if v != stored[k]}
    if differ:
        detail = "; ".join(f"{k}: requested {a!r}, file {b!r}" for k, (a, b) in differ.items())
        raise CheckpointError(
            f"weights {file} do not fit the requested geomae_vit_{size}_patch{patch_size}: "
            f"{detail}; pick the model name and overrides the weights were trained with"
        )
    if isinstance(img_size, Sequence):
        height, width = (int(v) for v in img_size)
        if height != width:
            raise ConfigError(f"pretrained geomae models are square; got img_size {img_size}")
        img_size = height
    return load_backbone(file, bands=bands, img_size=img_size, **load_args)


def create_channel_vit(
    *,
    size: str,
    patch_size: int,
    pretrained: bool = False,
    bands: str | Sequence[str] | None = None,
    groups: GroupSpec | None = None,
    img_size: int | Sequence[int] | None = None,
    in_chans: int | None = None,
    **kwargs: Any,
) -> ChannelViT:
    """Build a ChannelViT of a preset size (what the timm entry points call).

    Args:
        size: ``tiny``, ``small``, ``base``, ``large`` or ``huge``.
        patch_size: patch size p.
        pretrained: load a local geomae weights file named by
            ``pretrained_cfg_overlay=dict(file=...)`` (or ``pretrained_cfg``'s
            ``file``) with :func:`geomae.convert.load_backbone`.
        bands: band names or a band-set name; default all 12 L2A bands (pretrained:
            a subset of the file's bands, default all of them).
        groups: band-group preset or lists of bands; default ``single`` (pretrained:
            the file's; if given, it must give the same groups).
        img_size: image size for the position-embedding buffer; default 224
            (pretrained: the file's).
        in_chans: optional check: must equal the number of bands.
        **kwargs: other :class:`ChannelViT` arguments (``num_classes``,
            ``global_pool``, ``drop_path_rate``, overrides of ``embed_dim``/``depth``/
            ``num_heads``); ``device``/``dtype`` move the model; timm's
            ``pretrained_cfg``/``pretrained_cfg_overlay``/``cache_dir``.

    Returns:
        The model; a pretrained one carries ``geomae_metadata``.

    Raises:
        ConfigError: ``pretrained=True`` without a file, or ``in_chans`` not matching
            the bands.
        CheckpointError: the file does not fit the requested architecture (see
            :func:`geomae.convert.load_backbone` for the file's own errors).
    """
    file = _pretrained_file(
        kwargs.pop("pretrained_cfg", None), kwargs.pop("pretrained_cfg_overlay", None)
    )
    kwargs.pop("cache_dir", None)
    device = kwargs.pop("device", None)
    dtype = kwargs.pop("dtype", None)
    if pretrained:
        if file is None:
            raise ConfigError(
                "geomae models have no hosted weights: create the model with "
                "pretrained=False, or pass a geomae weights file written by `geomae "
                "convert` with pretrained_cfg_overlay=dict(file='weights.safetensors') "
                "(or use geomae.load_backbone)"
            )
        model = _load_pretrained(
            file,
            size=size,
            patch_size=patch_size,
            bands=bands,
            groups=groups,
            img_size=img_size,
            kwargs=kwargs,
        )
        band_list = list(model.bands)
    else:
        band_list = list(L2A_BANDS) if bands is None else parse_bands(bands, keep_order=True)
    if in_chans is not None and int(in_chans) != len(band_list):
        raise ConfigError(
            f"in_chans={in_chans} does not match the {len(band_list)} bands {band_list}"
            + ("" if bands is not None else " (default: all bands); pass bands=")
        )
    if not pretrained:
        head = {k: kwargs.pop(k) for k in ("num_classes", "global_pool") if k in kwargs}
        arch = EncoderArch.resolve(
            bands=band_list,
            groups="single" if groups is None else groups,
            size=size,
            img_size=224 if img_size is None else img_size,
            patch_size=patch_size,
            **kwargs,
        )
        model = ChannelViT.from_arch(arch, **head)
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
