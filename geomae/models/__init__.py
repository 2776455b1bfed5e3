"""geomae.models: the channel-aware MAE, its ViT encoder and their building blocks.

Importing it (like any ``geomae`` module) imports ``geomae``, which registers the
``geomae_vit_*`` models with timm (:mod:`geomae.timm_registry`).
"""

from geomae.models.arch import EncoderArch, MAEArch
from geomae.models.decoder import MAEDecoder
from geomae.models.groups import (
    GROUP_PRESETS,
    SATMAE_GROUPS,
    group_indices,
    group_wavelengths,
    resolve_groups,
)
from geomae.models.heads import LinearProbeHead, LinearSegmentationHead, UPerNetHead
from geomae.models.mae import ChannelMAE, MAEOutput
from geomae.models.masking import MASKING_STRATEGIES, Masks, make_masks, visible_counts
from geomae.models.patchify import patchify, unpatchify
from geomae.models.pos_embed import resample_pos_embed, sincos_1d, sincos_2d, wavelength_embed
from geomae.models.sizes import VIT_SIZES, ViTSize, resolve_size
from geomae.models.vit import ChannelViT

__all__ = [
    "GROUP_PRESETS",
    "MASKING_STRATEGIES",
    "SATMAE_GROUPS",
    "VIT_SIZES",
    "ChannelMAE",
    "ChannelViT",
    "EncoderArch",
    "MAEArch",
    "LinearProbeHead",
    "LinearSegmentationHead",
    "UPerNetHead",
    "MAEDecoder",
    "MAEOutput",
    "Masks",
    "ViTSize",
    "group_indices",
    "group_wavelengths",
    "make_masks",
    "patchify",
    "resample_pos_embed",
    "resolve_groups",
    "resolve_size",
    "sincos_1d",
    "sincos_2d",
    "unpatchify",
    "visible_counts",
    "wavelength_embed",
]
