"""What every importer shares: the imported model, its metadata, transformer dimensions.

An importer turns a foreign state dict into an :class:`Imported`: ChannelViT keyword
arguments and a ChannelViT state dict that loads with ``strict=True``. From it,
:func:`imported_metadata` builds the same :class:`~geomae.metadata.GeoMetadata` for
every source: bands (and wavelengths), groups, normalization, processing level, image
and patch size, architecture, and ``source`` with the source file's SHA-256.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from geomae.convert import check_state
from geomae.errors import CheckpointError
from geomae.metadata import GeoMetadata
from geomae.models.vit import ChannelViT
from geomae.normalization import Normalization
from geomae.stats import BandStats
from geomae.version import __version__

log = logging.getLogger(__name__)

__all__ = [
    "BlockDims",
    "Imported",
    "block_dims",
    "build_model",
    "default_num_heads",
    "imported_metadata",
    "unsupported_keys",
]

#: Block keys of a timm ``Block`` (the only transformer block geomae represents).
_BLOCK_KEY = re.compile(
    r"^blocks\.(\d+)\.(norm1|norm2|attn\.qkv|attn\.proj|mlp\.fc1|mlp\.fc2)\.(weight|bias)$"
)
#: Key fragments of ViT variants ChannelViT cannot represent, and what they are.
_UNSUPPORTED: dict[str, str] = {
    ".ls1.": "layer scale",
    ".ls2.": "layer scale",
    ".gamma_1": "layer scale",
    ".gamma_2": "layer scale",
    "attn.q_norm.": "query-key normalization",
    "attn.k_norm.": "query-key normalization",
    "attn.q_bias": "separate q/v biases (BEiT style)",
    "attn.relative_position": "relative position bias",
    "reg_token": "register tokens",
    "norm_pre.": "a pre-transformer norm",
    "mlp.norm.": "an MLP norm",
    "mlp.fc1_g.": "a gated MLP (SwiGLU)",
    "attn_pool.": "attention pooling",
}


@dataclass
class Imported:
    """A foreign encoder as geomae's ChannelViT.

    Attributes:
        kwargs: ChannelViT keyword arguments (no classifier).
        state: ChannelViT state dict.
        info: what the importer found (architecture name, dropped keys, ...), recorded
            in the metadata's ``source``.
    """

    kwargs: dict[str, Any]
    state: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BlockDims:
    """Transformer dimensions read from a state dict's ``blocks.*`` keys."""

    depth: int
    mlp_ratio: float
    qkv_bias: bool


def unsupported_keys(state: Mapping[str, torch.Tensor], *, source: str) -> None:
    """Refuse ViT variants ChannelViT cannot represent (layer scale, registers, ...).

    Raises:
        CheckpointError: naming the feature and some of its keys.
    """
    found: dict[str, list[str]] = {}
    for key in state:
        for fragment, what in _UNSUPPORTED.items():
            if fragment in key:
                found.setdefault(what, []).append(key)
    if found:
        detail = "; ".join(f"{what} ({', '.join(keys[:3])})" for what, keys in found.items())
        raise CheckpointError(
            f"{source} uses ViT features geomae's ChannelViT does not have: {detail}. Only "
            "plain ViTs (timm Block: norm1, attn.qkv, attn.proj, norm2, mlp.fc1, mlp.fc2) "
            "import"
        )


def block_dims(state: Mapping[str, torch.Tensor], embed_dim: int, *, source: str) -> BlockDims:
    """Depth, MLP ratio and qkv bias of ``blocks.*`` (every block must be complete).

    Raises:
        CheckpointError: no blocks, a gap in the block numbers, or a block missing keys.
    """
    indices: dict[int, set[str]] = {}
    for key in state:
        match = _BLOCK_KEY.match(key)
        if match:
            indices.setdefault(int(match.group(1)), set()).add(key)
    if not indices:
        raise CheckpointError(f"{source} has no transformer blocks (no 'blocks.N.*' keys)")
    depth = max(indices) + 1
    gaps = [i for i in range(depth) if i not in indices]
    if gaps:
        raise CheckpointError(f"{source}: transformer blocks {gaps} are missing (depth {depth})")
    fc1 = state.get("blocks.0.mlp.fc1.weight")
    if fc1 is None:
        raise CheckpointError(f"{source}: blocks.0.mlp.fc1.weight is missing")
    return BlockDims(
        depth=depth,
        mlp_ratio=float(fc1.shape[0]) / float(embed_dim),
        qkv_bias="blocks.0.attn.qkv.bias" in state,
    )


def default_num_heads(embed_dim: int, *, source: str) -> int:
    """Heads of the standard ViT of this width (head width 64; ViT-H/14: 16 heads).

    Raises:
        CheckpointError: a width without a standard head count (pass the heads).
    """
    if embed_dim == 1280:
        return 16
    if embed_dim % 64 == 0:
        return embed_dim // 64
    raise CheckpointError(
        f"{source}: the number of attention heads cannot be read from the weights and "
        f"width {embed_dim} has no standard head count; pass --num-heads (or --arch)"
    )


def build_model(imported: Imported, *, source: str) -> ChannelViT:
    """The ChannelViT of ``imported`` with its weights loaded (``strict=True``).

    Raises:
        CheckpointError: the state dict does not fit (every key is named).
    """
    model = ChannelViT(**imported.kwargs, num_classes=0)
    expected = {k: v.shape for k, v in model.state_dict().items()}
    check_state(imported.state, expected, what=f"imported weights of {source} and ChannelViT")
    model.load_state_dict(imported.state, strict=True)
    return model.eval()


def imported_metadata(
    model: ChannelViT,
    *,
    normalization: Normalization,
    stats: BandStats | None,
    level: str | None,
    offset: float,
    source: Mapping[str, Any],
) -> GeoMetadata:
    """The metadata of an imported model (see the module docstring).

    Args:
        model: the imported ChannelViT.
        normalization: what its inputs must be normalized with.
        stats: the z-score statistics (``zscore`` only).
        level: ``L1C`` / ``L2A`` of its pretraining data, or None.
        offset: DN offset subtracted before normalization.
        source: provenance (``kind``, ``file``, ``sha256``, ...).

    Raises:
        ConfigError: a zscore normalization without statistics.
        BandError: statistics that lack a band of the model.
    """
    bands: Sequence[str] = model.bands
    arch = model.arch_kwargs()
    return GeoMetadata(
        bands=list(bands),
        groups=[list(g) for g in model.groups],
        stats=normalization.band_stats(bands, stats),
        patch_size=model.patch_size,
        img_size=model.img_size[0],
        arch=arch,
        offset=float(offset),
        extra={"imported_by": f"geomae {__version__}"},
        normalization=normalization,
        processing_level=level,
        source=dict(source),
    )
