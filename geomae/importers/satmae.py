"""SatMAE / SatMAE++ group-channel ViT checkpoints -> geomae ChannelViT (3 band groups).

What this importer assumes about SatMAE's published group-channel architecture
(Cong et al., NeurIPS 2022, ``models_vit_group_channels.py`` /
``models_mae_group_channels.py``; SatMAE++, Noman et al., CVPR 2024, keeps the same
encoder), from the paper and the released code's parameter names, not its code:

- **Input**: 10 Sentinel-2 bands in the order B02 B03 B04 B05 B06 B07 B08 B8A B11 B12
  (fMoW-Sentinel's 13 bands with B01, B09 and B10 dropped).
- **Groups** (channel indices ``(0, 1, 2, 6), (3, 4, 5, 7), (8, 9)``): (B02, B03, B04,
  B08), (B05, B06, B07, B8A), (B11, B12). Group ``g`` has its own timm ``PatchEmbed``:
  ``patch_embed.{g}.proj.weight`` ``(D, C_g, p, p)`` and ``.bias`` ``(D,)``, its input
  channels in the group's order.
- **Embeddings**: ``pos_embed`` ``(1, 1 + L, D - Dc)`` (fixed 2-D sin-cos, cls row
  first; stored in the checkpoint), ``channel_embed`` ``(1, G, Dc)`` (1-D sin-cos of the
  group index, learned in the fine-tuning model), ``channel_cls_embed`` ``(1, 1, Dc)``
  (the cls token's channel part; zeros, absent from some checkpoints: then zeros), and
  ``cls_token`` ``(1, 1, D)``. ``Dc`` is 256 in the released models; it is read from
  the shapes here.
- **Forward**: patch token ``(g, l)`` is ``patch_embed_g(x_g)[l] + concat(pos_embed[1 +
  l], channel_embed[g])``; tokens are concatenated group-major to ``(B, G*L, D)``; the cls
  token is ``cls_token + concat(pos_embed[0], channel_cls_embed)``, prepended; then
  ``blocks.N.*`` (timm ``Block``: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2,
  LayerNorm eps 1e-6) and the final ``norm``. Fine-tuned checkpoints with
  ``global_pool`` have ``fc_norm`` (applied after averaging the patch tokens) instead of
  ``norm``, and a ``head``.
- **Checkpoint file**: ``{"model": state_dict, "optimizer": ..., "epoch": ..., "args":
  argparse.Namespace}`` (read with ``weights_only=True``, the Namespace allowed). MAE
  pretraining checkpoints also hold the decoder (``mask_token``, ``decoder_*``), which
  is dropped.
- **Normalization**: SatMAE maps each band with its dataset mean and std to
  ``(x - (mean - 2 std)) / (4 std)``, clipped to [0, 1]. There is no preset: pass
  ``--normalization zscore:STATS.yaml`` with ``mean - 2 std`` and ``4 std`` of your
  bands (the clipping is not reproduced).

The mapping onto ChannelViT (``pos_embed_type="learned"``), exact up to float rounding:
``pos_embed_learned[l] = concat(pos_embed[1 + l], 0)``, ``group_embed[g] = concat(0,
channel_embed[g]) - spectral_embed[g]`` (ChannelViT adds its fixed wavelength
embedding), ``cls_token = cls_token + concat(pos_embed[0], channel_cls_embed)``,
``patch_embed.{g}.proj.*`` -> ``patch_embed.projs.{g}.*``; blocks and norm keep their
names. An ``fc_norm`` becomes ChannelViT's token ``norm`` (with a warning: ChannelViT
normalizes the tokens before pooling, SatMAE's fine-tuned head after).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from geomae.bands import parse_bands
from geomae.errors import BandError, CheckpointError
from geomae.importers.common import Imported, block_dims, default_num_heads, unsupported_keys
from geomae.models.groups import group_wavelengths
from geomae.models.pos_embed import wavelength_embed

log = logging.getLogger(__name__)

__all__ = ["SATMAE_BANDS", "SATMAE_GROUPS", "satmae_to_channel_vit"]

#: SatMAE's 10 input bands, in channel order.
SATMAE_BANDS: tuple[str, ...] = (
    "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12",
)  # fmt: skip
#: SatMAE's band groups (channel indices (0, 1, 2, 6), (3, 4, 5, 7), (8, 9)).
SATMAE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("B02", "B03", "B04", "B08"),
    ("B05", "B06", "B07", "B8A"),
    ("B11", "B12"),
)
_PATCH = re.compile(r"^patch_embed\.(\d+)\.proj\.weight$")
_DECODER = ("decoder", "mask_token")
_DROPPED = ("head.", "head_drop.")


def _group_patches(
    state: Mapping[str, torch.Tensor], groups: Sequence[Sequence[str]], *, source: str
) -> None:
    """Every group has its patch embedding, with one input channel per band."""
    found = sorted(int(m.group(1)) for k in state if (m := _PATCH.match(k)))
    if not found:
        raise CheckpointError(
            f"{source} is not a SatMAE group-channel checkpoint: it has no per-group patch "
            "embeddings patch_embed.N.proj.weight"
            + (
                " (it has patch_embed.proj: a timm ViT?)"
                if "patch_embed.proj.weight" in state
                else ""
            )
        )
    missing = [g for g in range(len(groups)) if g not in found]
    if missing:
        detail = "; ".join(f"group {g} ({', '.join(groups[g])})" for g in missing)
        raise CheckpointError(
            f"{source}: the SatMAE checkpoint lacks the patch embedding of {detail}: it has "
            f"patch_embed.{{{','.join(map(str, found))}}}.proj but the group-channel model has "
            f"{len(groups)} groups {[list(g) for g in groups]}"
        )
    extra = [g for g in found if g >= len(groups)]
    if extra:
        raise CheckpointError(
            f"{source}: the SatMAE checkpoint has {len(found)} patch embeddings but "
            f"{len(groups)} band groups were given {[list(g) for g in groups]}; pass the "
            "groups it was trained with"
        )
    for g, group in enumerate(groups):
        weight = state[f"patch_embed.{g}.proj.weight"]  # (D, C_g, p, p)
        if f"patch_embed.{g}.proj.bias" not in state:
            raise CheckpointError(f"{source}: patch_embed.{g}.proj.bias is missing")
        if weight.ndim != 4 or weight.shape[1] != len(group):
            raise BandError(
                f"{source}: patch_embed.{g}.proj.weight has shape {tuple(weight.shape)}: "
                f"{weight.shape[1] if weight.ndim == 4 else '?'} input channels, but group "
                f"{g} has {len(group)} bands ({', '.join(group)})"
            )


def _embeddings(
    state: Mapping[str, torch.Tensor], *, embed_dim: int, groups: int, source: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
    """``pos_embed (1, 1+L, D-Dc)``, ``channel_embed (1, G, Dc)``, cls part ``(1, 1, Dc)``, grid."""
    for key in ("cls_token", "pos_embed", "channel_embed"):
        if key not in state:
            raise CheckpointError(f"{source} is not a SatMAE group-channel ViT: no {key!r}")
    pos, chan = state["pos_embed"], state["channel_embed"]
    if chan.ndim != 3 or chan.shape[1] != groups:
        raise CheckpointError(
            f"{source}: channel_embed has shape {tuple(chan.shape)}; expected (1, {groups}, Dc) "
            f"for {groups} band groups"
        )
    channel_dim = int(chan.shape[2])
    if pos.ndim != 3 or pos.shape[2] + channel_dim != embed_dim:
        raise CheckpointError(
            f"{source}: pos_embed {tuple(pos.shape)} and channel_embed {tuple(chan.shape)} do "
            f"not add up to the token width {embed_dim} (expected pos_embed "
            f"(1, 1+L, {embed_dim - channel_dim}))"
        )
    side = int(round((pos.shape[1] - 1) ** 0.5))
    if side * side != pos.shape[1] - 1:
        raise CheckpointError(
            f"{source}: pos_embed holds {pos.shape[1]} tokens, not a cls token plus a square grid"
        )
    cls_chan = state.get("channel_cls_embed")
    if cls_chan is None:
        cls_chan = torch.zeros(1, 1, channel_dim, dtype=pos.dtype)
    elif tuple(cls_chan.shape) != (1, 1, channel_dim):
        raise CheckpointError(
            f"{source}: channel_cls_embed has shape {tuple(cls_chan.shape)}; expected "
            f"(1, 1, {channel_dim})"
        )
    return pos, chan, cls_chan, side


def satmae_to_channel_vit(
    state: Mapping[str, torch.Tensor],
    *,
    bands: Sequence[str] = SATMAE_BANDS,
    groups: Sequence[Sequence[str]] = SATMAE_GROUPS,
    num_heads: int | None = None,
    source: str,
) -> Imported:
    """Map a SatMAE group-channel encoder onto a ChannelViT with the same groups.

    Args:
        state: the checkpoint's state dict (prefix stripped; decoder and head keys are
            dropped here).
        bands: the input bands in channel order (default SatMAE's 10).
        groups: the band groups in patch-embedding order (default SatMAE's 3).
        num_heads: attention heads (default: width / 64, as the released models).
        source: the file, for messages.

    Returns:
        ChannelViT kwargs and state dict.

    Raises:
        CheckpointError: a missing group, embeddings that do not add up, a foreign file.
        BandError: a group whose patch embedding has another channel count, or groups
            that do not cover ``bands``.
    """
    names = parse_bands(list(bands), keep_order=True)
    group_names = [parse_bands(list(g), keep_order=True) for g in groups]
    flat = [b for g in group_names for b in g]
    if sorted(flat) != sorted(names):
        raise BandError(f"SatMAE groups {group_names} must cover the bands {names} exactly once")
    _group_patches(state, group_names, source=source)
    encoder = {
        k: v for k, v in state.items() if not k.startswith(_DECODER) and not k.startswith(_DROPPED)
    }
    dropped = sorted({k.split(".")[0] for k in state if k not in encoder})
    if dropped:
        log.info("%s: dropping %s (decoder / classifier)", source, ", ".join(dropped))
    unsupported_keys(encoder, source=source)
    embed_dim = int(encoder["cls_token"].shape[-1]) if "cls_token" in encoder else 0
    pos, chan, cls_chan, side = _embeddings(
        encoder, embed_dim=embed_dim, groups=len(group_names), source=source
    )
    patch_size = int(encoder["patch_embed.0.proj.weight"].shape[-1])
    dims = block_dims(encoder, embed_dim, source=source)
    heads = num_heads if num_heads is not None else default_num_heads(embed_dim, source=source)
    norm = "norm"
    if "norm.weight" not in encoder and "fc_norm.weight" in encoder:
        log.warning(
            "%s: fine-tuned with global pooling (fc_norm after averaging the patch tokens); "
            "fc_norm becomes ChannelViT's token norm, so pooled features differ from SatMAE's",
            source,
        )
        norm = "fc_norm"
    for key in (f"{norm}.weight", f"{norm}.bias"):
        if key not in encoder:
            raise CheckpointError(f"{source}: the final norm {key} is missing")
    out = _to_channel_vit(encoder, pos=pos, chan=chan, cls_chan=cls_chan, norm=norm)
    wavelengths = group_wavelengths(group_names)
    spectral = wavelength_embed(wavelengths, embed_dim).to(torch.float64)  # (G, D)
    out["group_embed"] = (out["group_embed"].to(torch.float64) - spectral).to(pos.dtype)
    unknown = sorted(
        k
        for k in encoder
        if not k.startswith(("blocks.", "patch_embed.", f"{norm}."))
        and k not in ("cls_token", "pos_embed", "channel_embed", "channel_cls_embed")
    )
    if unknown:
        raise CheckpointError(
            f"{source}: keys that are not part of SatMAE's group-channel encoder: {unknown[:8]}"
        )
    kwargs: dict[str, Any] = {
        "bands": names,
        "groups": group_names,
        "img_size": side * patch_size,
        "patch_size": patch_size,
        "embed_dim": embed_dim,
        "depth": dims.depth,
        "num_heads": heads,
        "mlp_ratio": dims.mlp_ratio,
        "qkv_bias": dims.qkv_bias,
        "group_wavelengths": [float(w) for w in wavelengths],
        "pos_embed_type": "learned",
    }
    info = {
        "satmae_groups": [list(g) for g in group_names],
        "channel_embed_dim": int(chan.shape[2]),
        "final_norm": norm,
        "dropped_keys": dropped,
    }
    return Imported(kwargs=kwargs, state=out, info=info)


def _to_channel_vit(
    encoder: Mapping[str, torch.Tensor],
    *,
    pos: torch.Tensor,
    chan: torch.Tensor,
    cls_chan: torch.Tensor,
    norm: str,
) -> dict[str, torch.Tensor]:
    """The key and embedding mapping of the module docstring.

    ``group_embed`` is returned before its wavelength part is subtracted.
    """
    groups, channel_dim = int(chan.shape[1]), int(chan.shape[2])
    pos_dim = int(pos.shape[2])
    num_patches = int(pos.shape[1]) - 1
    zeros_c = torch.zeros(1, num_patches, channel_dim, dtype=pos.dtype)
    zeros_p = torch.zeros(groups, pos_dim, dtype=chan.dtype)
    out: dict[str, torch.Tensor] = {
        "pos_embed_learned": torch.cat([pos[:, 1:], zeros_c], dim=2),  # (1, L, D)
        "group_embed": torch.cat([zeros_p, chan[0]], dim=1),  # (G, D)
        "cls_token": encoder["cls_token"] + torch.cat([pos[:, :1], cls_chan], dim=2),  # (1,1,D)
    }
    for key, value in encoder.items():
        match = re.match(r"^patch_embed\.(\d+)\.proj\.(weight|bias)$", key)
        if match:
            out[f"patch_embed.projs.{match.group(1)}.{match.group(2)}"] = value
        elif key.startswith("blocks."):
            out[key] = value
        elif key.startswith(f"{norm}."):
            out["norm." + key.removeprefix(f"{norm}.")] = value
    return out
