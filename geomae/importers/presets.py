"""Presets: published Sentinel-2 ViT weights whose metadata geomae knows.

The SSL4EO-S12 ViTs (Wang et al. 2022; FG-MAE, Wang et al. 2023) as torchgeo 0.8
lists them (``torchgeo.models.ViTSmall16_Weights.SENTINEL2_ALL_MAE`` and so on): stock
timm ViTs with ``in_chans=13`` over the 13 **L1C** bands in the order B01 B02 B03 B04
B05 B06 B07 B08 B8A B09 B10 B11 B12, inputs divided by 10000, 224-px images. With a
preset the user passes only the file (downloaded by themselves; geomae never
downloads); options that contradict the preset are refused.

``sha256_prefix`` is the hash fragment in the published file name (torchvision's
convention) where there is one: a file whose SHA-256 does not start with it is
logged as a warning (it may have been re-saved), never refused.
"""

from __future__ import annotations

from dataclasses import dataclass

from geomae.bands import S2_BANDS
from geomae.errors import ConfigError
from geomae.normalization import Normalization

__all__ = ["PRESETS", "Preset", "get_preset"]


@dataclass(frozen=True)
class Preset:
    """What a published weight file is.

    Attributes:
        name: the preset's name on the command line.
        source: the importer (``timm-vit``).
        arch: timm model name.
        bands: input bands in channel order.
        normalization: what the inputs must be normalized with.
        level: processing level of the pretraining data.
        img_size: image size of pretraining.
        torchgeo: the torchgeo weights enum member, for reference.
        file_name: the published file name.
        publication: the paper.
        sha256_prefix: hash fragment of the published file name, if any.
    """

    name: str
    source: str
    arch: str
    bands: tuple[str, ...]
    normalization: Normalization
    level: str
    img_size: int
    torchgeo: str
    file_name: str
    publication: str
    sha256_prefix: str | None = None


_L1C_13: tuple[str, ...] = tuple(S2_BANDS)  # B01 ... B08 B8A B09 B10 B11 B12
_SCALE = Normalization("scale", 10000.0)
_SSL4EO = "https://arxiv.org/abs/2211.07044"
_FGMAE = "https://arxiv.org/abs/2310.18653"


def _ssl4eo(
    size: str,
    patch: int,
    method: str,
    enum: str,
    file_name: str,
    sha256_prefix: str | None = None,
) -> Preset:
    arch = f"vit_{size}_patch{patch}_224"
    return Preset(
        name=f"ssl4eo-s12-vit-{size}-patch{patch}-{method}",
        source="timm-vit",
        arch=arch,
        bands=_L1C_13,
        normalization=_SCALE,
        level="L1C",
        img_size=224,
        torchgeo=f"torchgeo.models.{enum}.SENTINEL2_ALL_{method.upper()}",
        file_name=file_name,
        publication=_FGMAE if method == "fgmae" else _SSL4EO,
        sha256_prefix=sha256_prefix,
    )


#: Name -> preset, in listing order.
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        _ssl4eo("small", 16, "mae", "ViTSmall16_Weights", "B13_vits16_mae_ep99_enc.pth"),
        _ssl4eo(
            "small",
            16,
            "moco",
            "ViTSmall16_Weights",
            "vit_small_patch16_224_sentinel2_all_moco-67c9032d.pth",
            "67c9032d",
        ),
        _ssl4eo(
            "small",
            16,
            "dino",
            "ViTSmall16_Weights",
            "vit_small_patch16_224_sentinel2_all_dino-36bcc127.pth",
            "36bcc127",
        ),
        _ssl4eo("small", 16, "fgmae", "ViTSmall16_Weights", "B13_vits16_fgmae_ep99_enc.pth"),
        _ssl4eo("base", 16, "mae", "ViTBase16_Weights", "B13_vitb16_mae_ep99_enc.pth"),
        _ssl4eo("base", 16, "fgmae", "ViTBase16_Weights", "B13_vitb16_fgmae_ep99_enc.pth"),
        _ssl4eo("large", 16, "mae", "ViTLarge16_Weights", "B13_vitl16_mae_ep99_enc.pth"),
        _ssl4eo("large", 16, "fgmae", "ViTLarge16_Weights", "B13_vitl16_fgmae_ep99_enc.pth"),
        _ssl4eo("huge", 14, "mae", "ViTHuge14_Weights", "B13_vith14_mae_ep199_enc.pth"),
        _ssl4eo("huge", 14, "fgmae", "ViTHuge14_Weights", "B13_vith14_fgmae_ep399_enc.pth"),
    )
}


def get_preset(name: str) -> Preset:
    """The preset called ``name``.

    Raises:
        ConfigError: an unknown name (the known ones are listed).
    """
    key = name.strip().lower()
    if key not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; known presets: {', '.join(PRESETS)}")
    return PRESETS[key]
