"""timm ``VisionTransformer`` state dict -> geomae ChannelViT (one band group).

The timm ViT (``timm.models.vision_transformer``, as torchgeo builds it with
``timm.create_model(name, in_chans=13)`` and loads its SSL4EO-S12 weights) computes

    x = concat(cls_token, patch_embed(x)) + pos_embed      # (B, 1+L, D)
    x = norm(blocks(x))                                     # forward_features

with a learned ``pos_embed`` of shape ``(1, 1+L, D)`` (``(1, L, D)`` with
``no_embed_class``). ChannelViT with one group and ``pos_embed_type="learned"`` adds to
patch token ``l`` ``pos_embed_learned[l] + spectral_embed + group_embed`` and nothing to
its cls token. The mapping that makes the features equal:

- ``patch_embed.proj.*`` -> ``patch_embed.projs.0.*``;
- ``pos_embed[:, 1:]`` -> ``pos_embed_learned``;
- ``cls_token + pos_embed[:, :1]`` -> ``cls_token`` (the cls token's position folded in);
- ``group_embed = -spectral_embed`` (the fixed wavelength embedding of the group's
  mean wavelength): timm has no spectral embedding, so their sum is zero (exactly:
  ``a + (-a) == 0`` in floating point);
- ``blocks.*`` and ``norm.*`` keep their names (ChannelViT uses timm's ``Block``).

The classifier (``head.*``) is dropped. A missing final ``norm`` (some published encoder
files leave it out; torchgeo then keeps timm's initial LayerNorm) becomes the identity
LayerNorm timm would have, with a warning. ViT variants that ChannelViT cannot represent
(layer scale, register tokens, ``fc_norm`` after average pooling, ...) are refused.

The architecture is read from the shapes (width, depth, patch size, grid, MLP ratio, qkv
bias, input channels); the number of heads is not in the shapes: it comes from a timm
model name (``arch``, whose expected shapes are then checked key by key), an explicit
``num_heads``, or the standard ViT of that width (head width 64).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from geomae.bands import parse_bands
from geomae.convert import check_state
from geomae.errors import BandError, CheckpointError, ConfigError
from geomae.importers.common import (
    Imported,
    block_dims,
    default_num_heads,
    unsupported_keys,
)
from geomae.models.groups import group_wavelengths
from geomae.models.pos_embed import wavelength_embed

log = logging.getLogger(__name__)

__all__ = ["timm_to_channel_vit"]

_PATCH = "patch_embed.proj.weight"
_DROPPED = ("head.", "head_drop.")


def _grid_of(tokens: int, *, source: str) -> tuple[int, bool]:
    """(grid side, whether pos_embed has a cls row) of a ``(1, tokens, D)`` pos_embed."""
    for prefix in (1, 0):
        side = math.isqrt(tokens - prefix)
        if side > 0 and side * side == tokens - prefix:
            return side, prefix == 1
    raise CheckpointError(
        f"{source}: pos_embed holds {tokens} tokens, neither a square grid nor a square "
        "grid plus a class token"
    )


def _check_channels(patch: torch.Tensor, bands: Sequence[str], *, source: str) -> None:
    if patch.ndim != 4 or patch.shape[2] != patch.shape[3]:
        raise CheckpointError(
            f"{source}: {_PATCH} has shape {tuple(patch.shape)}; expected (D, C, p, p)"
        )
    if patch.shape[1] != len(bands):
        raise BandError(
            f"{source}: the patch embedding {_PATCH} takes {patch.shape[1]} input channels "
            f"but --bands lists {len(bands)} ({', '.join(bands)}); give the bands of the "
            "weights' input channels, in channel order"
        )


def _timm_shapes(
    arch: str | None, kwargs: Mapping[str, Any]
) -> tuple[dict[str, torch.Size], int, str]:
    """Expected shapes, heads and a name of the timm model ``arch`` (or of ``kwargs``)."""
    import timm
    from timm.models.vision_transformer import VisionTransformer

    def build() -> Any:
        if arch is None:
            return VisionTransformer(**kwargs)
        try:
            return timm.create_model(
                arch,
                pretrained=False,
                in_chans=kwargs["in_chans"],
                img_size=kwargs["img_size"],
                num_classes=0,
            )
        except RuntimeError as err:  # timm: "Unknown model (...)"
            raise ConfigError(f"--arch {arch!r}: {err}") from None

    try:
        with torch.device("meta"):
            model = build()
    except NotImplementedError:  # an initializer that reads tensor values needs real data
        model = build()
    heads = int(model.blocks[0].attn.num_heads)
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    name = arch or (
        f"VisionTransformer(D={kwargs['embed_dim']}, depth={kwargs['depth']}, "
        f"heads={kwargs['num_heads']}, patch={kwargs['patch_size']})"
    )
    return shapes, heads, name


def timm_to_channel_vit(
    state: Mapping[str, torch.Tensor],
    *,
    bands: Sequence[str],
    arch: str | None = None,
    num_heads: int | None = None,
    source: str,
) -> Imported:
    """Map a timm ``VisionTransformer`` encoder onto a single-group ChannelViT.

    Args:
        state: the encoder's state dict (prefix already stripped).
        bands: the weights' input bands, in channel order.
        arch: timm model name (e.g. ``vit_small_patch16_224``); None infers the
            architecture from the shapes.
        num_heads: attention heads when ``arch`` is None (default: width / 64).
        source: the file, for messages.

    Returns:
        ChannelViT kwargs (``pos_embed_type="learned"``, the grid of ``pos_embed``) and
        state dict.

    Raises:
        BandError: the patch embedding's channel count differs from ``bands``.
        CheckpointError: not a plain timm ViT, or shapes that do not fit ``arch``.
        ConfigError: an unknown timm model name.
    """
    names = parse_bands(list(bands), keep_order=True)
    if _PATCH not in state:
        hint = (
            " (it has per-group patch embeddings patch_embed.N.proj: a SatMAE checkpoint? "
            "import it with the satmae source)"
            if "patch_embed.0.proj.weight" in state
            else ""
        )
        raise CheckpointError(f"{source} is not a timm ViT: it has no {_PATCH}{hint}")
    patch = state[_PATCH]
    _check_channels(patch, names, source=source)
    unsupported_keys(state, source=source)
    if any(k.startswith("fc_norm.") for k in state):
        raise CheckpointError(
            f"{source} has fc_norm (timm's norm after average pooling): its features are "
            "pooled before the final norm, which ChannelViT does not do; export the model "
            "with global_pool='token' and its final norm"
        )
    for key in ("cls_token", "pos_embed"):
        if key not in state:
            raise CheckpointError(f"{source} is not a timm ViT with a class token: no {key!r}")
    embed_dim, patch_size = int(patch.shape[0]), int(patch.shape[2])
    pos = state["pos_embed"]  # (1, 1+L, D) or (1, L, D)
    side, embed_class = _grid_of(int(pos.shape[1]), source=source)
    dims = block_dims(state, embed_dim, source=source)
    heads = num_heads if num_heads is not None else default_num_heads(embed_dim, source=source)
    kwargs = {
        "img_size": side * patch_size,
        "patch_size": patch_size,
        "in_chans": len(names),
        "embed_dim": embed_dim,
        "depth": dims.depth,
        "num_heads": heads,
        "mlp_ratio": dims.mlp_ratio,
        "qkv_bias": dims.qkv_bias,
        "no_embed_class": not embed_class,
        "num_classes": 0,
    }
    expected, heads, name = _timm_shapes(arch, kwargs)
    kept = {k: v for k, v in state.items() if not k.startswith(_DROPPED)}
    dropped = sorted(k for k in state if k.startswith(_DROPPED))
    if "norm.weight" not in kept and "norm.weight" in expected:
        log.warning(
            "%s has no final norm (norm.weight / norm.bias): using the identity LayerNorm "
            "(weight 1, bias 0) that timm initializes, as torchgeo does when loading it",
            source,
        )
        kept["norm.weight"] = torch.ones(embed_dim, dtype=patch.dtype)
        kept["norm.bias"] = torch.zeros(embed_dim, dtype=patch.dtype)

    check_state(kept, expected, what=f"{source} and timm {name}")
    return _to_channel_vit(
        kept,
        bands=names,
        kwargs={**kwargs, "num_heads": heads},
        embed_class=embed_class,
        info={"timm_arch": name, "dropped_keys": dropped},
    )


def _to_channel_vit(
    state: Mapping[str, torch.Tensor],
    *,
    bands: list[str],
    kwargs: Mapping[str, Any],
    embed_class: bool,
    info: dict[str, Any],
) -> Imported:
    """Apply the mapping of the module docstring."""
    pos = state["pos_embed"]  # (1, P+L, D)
    cls = state["cls_token"]  # (1, 1, D)
    prefix = 1 if embed_class else 0
    groups = [list(bands)]
    wavelengths = group_wavelengths(groups)
    spectral = wavelength_embed(wavelengths, int(kwargs["embed_dim"]))  # (1, D) float32
    out: dict[str, torch.Tensor] = {
        "cls_token": cls + pos[:, :1] if embed_class else cls,  # (1, 1, D)
        "pos_embed_learned": pos[:, prefix:].clone(),  # (1, L, D)
        "group_embed": (-spectral).to(pos.dtype),  # (1, D)
        "patch_embed.projs.0.weight": state["patch_embed.proj.weight"],
        "patch_embed.projs.0.bias": state["patch_embed.proj.bias"],
    }
    for key, value in state.items():
        if key.startswith(("blocks.", "norm.")):
            out[key] = value
    vit_kwargs: dict[str, Any] = {
        "bands": list(bands),
        "groups": groups,
        "img_size": int(kwargs["img_size"]),
        "patch_size": int(kwargs["patch_size"]),
        "embed_dim": int(kwargs["embed_dim"]),
        "depth": int(kwargs["depth"]),
        "num_heads": int(kwargs["num_heads"]),
        "mlp_ratio": float(kwargs["mlp_ratio"]),
        "qkv_bias": bool(kwargs["qkv_bias"]),
        "group_wavelengths": [float(w) for w in wavelengths],
        "pos_embed_type": "learned",
    }
    return Imported(kwargs=vit_kwargs, state=out, info=info)
