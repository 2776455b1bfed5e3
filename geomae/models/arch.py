"""The architecture of a ChannelViT encoder and of a ChannelMAE, stated once.

:class:`EncoderArch` and :class:`MAEArch` are frozen dataclasses: every setting is
resolved (size preset plus overrides, band spelling, band groups, group wavelengths)
and checked when one is made, so a model built from one cannot disagree with it.
What builds or describes a model goes through them:

- :class:`~geomae.models.vit.ChannelViT` ``.arch`` / ``from_arch``;
- :class:`~geomae.models.mae.ChannelMAE` takes an :class:`MAEArch`;
- :class:`~geomae.trainers.MAETask` resolves its hyperparameters into one;
- the converter, the timm registry and the random fine-tuning backbone read
  :meth:`EncoderArch.from_dict` / :meth:`EncoderArch.resolve`;
- :class:`~geomae.metadata.GeoMetadata` stores :meth:`MAEArch.to_dict` (MAE
  checkpoints) or :meth:`EncoderArch.to_dict` (exported encoders).

The stored dictionaries keep the key names of earlier geomae files, so files written
before these classes existed read the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, cast

from timm.layers import to_2tuple

from geomae.bands import parse_bands
from geomae.errors import ConfigError
from geomae.models.groups import GroupSpec, resolve_groups
from geomae.models.groups import group_wavelengths as mean_wavelengths
from geomae.models.masking import MASKING_STRATEGIES, MaskingStrategy, check_ratio
from geomae.models.sizes import check_dims, resolve_size

__all__ = ["EncoderArch", "MAEArch", "PosEmbedType", "grid_of", "image_pair"]

PosEmbedType = Literal["sincos", "learned"]
_POS_EMBED_TYPES: tuple[str, ...] = ("sincos", "learned")


def image_pair(value: int | Sequence[int], what: str = "img_size") -> tuple[int, int]:
    """``64`` or ``(64, 64)`` -> ``(64, 64)`` (timm's ``to_2tuple``, checked)."""
    pair = tuple(int(v) for v in to_2tuple(value))
    if len(pair) != 2:
        raise ConfigError(f"{what} must be an int or a pair (height, width), got {value!r}")
    return pair[0], pair[1]


def grid_of(img_size: tuple[int, int], patch_size: int) -> tuple[int, int]:
    """The patch grid ``(H/p, W/p)`` of an image size.

    Raises:
        ConfigError: a side that is not positive or not divisible by the patch size.
    """
    h, w = img_size
    if h <= 0 or w <= 0 or h % patch_size or w % patch_size:
        raise ConfigError(
            f"image size {h}x{w} must be positive and divisible by the patch size {patch_size}"
        )
    return h // patch_size, w // patch_size


@dataclass(frozen=True)
class EncoderArch:
    """Everything that decides the shape of a :class:`~geomae.models.vit.ChannelViT`.

    Build it with :meth:`resolve` (preset and overrides) or :meth:`from_dict` (a
    stored description); the constructor takes resolved values only.

    Attributes:
        bands: canonical band names in input-channel order.
        groups: band groups (each a tuple of bands of ``bands``).
        img_size: (H, W) the position embedding is built for.
        patch_size: patch size p in pixels.
        embed_dim: token width D.
        depth: transformer blocks.
        num_heads: attention heads per block.
        mlp_ratio: MLP hidden width / D.
        qkv_bias: bias in the qkv projection.
        drop_path_rate: stochastic depth (a training setting kept with the shape).
        group_wavelengths: wavelength (nm) of each group's spectral embedding.
        pos_embed_type: ``sincos`` (fixed) or ``learned`` (imported ViTs).
        size: the preset the widths came from, if any (informative only).
    """

    bands: tuple[str, ...]
    groups: tuple[tuple[str, ...], ...]
    img_size: tuple[int, int]
    patch_size: int
    embed_dim: int
    depth: int
    num_heads: int
    group_wavelengths: tuple[float, ...]
    mlp_ratio: float = 4.0
    qkv_bias: bool = True
    drop_path_rate: float = 0.0
    pos_embed_type: PosEmbedType = "sincos"
    size: str | None = None

    def __post_init__(self) -> None:
        """Check the resolved values against each other.

        Raises:
            ConfigError: inconsistent widths, grid, wavelengths or embedding type.
        """
        check_dims(embed_dim=self.embed_dim, depth=self.depth, num_heads=self.num_heads)
        if self.patch_size <= 0:
            raise ConfigError(f"patch_size must be positive, got {self.patch_size}")
        grid_of(self.img_size, self.patch_size)
        if len(self.group_wavelengths) != len(self.groups):
            raise ConfigError(
                f"{len(self.group_wavelengths)} group wavelengths given for "
                f"{len(self.groups)} groups {[list(g) for g in self.groups]}"
            )
        if self.pos_embed_type not in _POS_EMBED_TYPES:
            raise ConfigError(
                f"pos_embed_type must be one of {list(_POS_EMBED_TYPES)}, "
                f"got {self.pos_embed_type!r}"
            )

    # ---- construction ------------------------------------------------------------------
    @classmethod
    def resolve(
        cls,
        *,
        bands: str | Sequence[str],
        groups: GroupSpec = "single",
        size: str | None = "tiny",
        img_size: int | Sequence[int] = 224,
        patch_size: int = 16,
        embed_dim: int | None = None,
        depth: int | None = None,
        num_heads: int | None = None,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        drop_path_rate: float = 0.0,
        group_wavelengths: Sequence[float] | None = None,
        pos_embed_type: PosEmbedType = "sincos",
    ) -> EncoderArch:
        """Resolve a size preset, its overrides, the bands and the groups.

        Args:
            bands: band names (any spelling) or a band-set name, in channel order.
            groups: ``single``, ``satmae``, ``per-band`` or lists of bands.
            size: ``tiny`` ... ``huge``; ``embed_dim``/``depth``/``num_heads``
                override it. None: all three must be given.
            img_size: int or (H, W).
            patch_size: patch size p.
            embed_dim: width override.
            depth: depth override.
            num_heads: heads override.
            mlp_ratio: MLP hidden width / D.
            qkv_bias: bias in the qkv projection.
            drop_path_rate: stochastic depth.
            group_wavelengths: per-group wavelengths; default each group's mean
                central wavelength.
            pos_embed_type: ``sincos`` or ``learned``.

        Raises:
            ConfigError: unknown preset, missing widths without a preset, or
                inconsistent values.
            BandError: bad bands or groups.
        """
        if size is None:
            given = {"embed_dim": embed_dim, "depth": depth, "num_heads": num_heads}
            missing = [k for k, v in given.items() if v is None]
            if missing:
                raise ConfigError(f"no size preset and no {missing}: the width is unknown")
            widths = (int(cast(int, embed_dim)), int(cast(int, depth)), int(cast(int, num_heads)))
        else:
            dims = resolve_size(size, embed_dim=embed_dim, depth=depth, num_heads=num_heads)
            widths = (dims.embed_dim, dims.depth, dims.num_heads)
        band_list = parse_bands(bands, keep_order=True)
        group_list = resolve_groups(band_list, groups)
        wavelengths = (
            mean_wavelengths(group_list) if group_wavelengths is None else group_wavelengths
        )
        return cls(
            bands=tuple(band_list),
            groups=tuple(tuple(g) for g in group_list),
            img_size=image_pair(img_size),
            patch_size=int(patch_size),
            embed_dim=widths[0],
            depth=widths[1],
            num_heads=widths[2],
            group_wavelengths=tuple(float(v) for v in wavelengths),
            mlp_ratio=float(mlp_ratio),
            qkv_bias=bool(qkv_bias),
            drop_path_rate=float(drop_path_rate),
            pos_embed_type=pos_embed_type,
            size=size,
        )

    @classmethod
    def from_dict(
        cls,
        arch: Mapping[str, Any],
        *,
        bands: Sequence[str],
        groups: Sequence[Sequence[str]],
        img_size: int | Sequence[int],
        patch_size: int,
    ) -> EncoderArch:
        """Read a stored description: an MAE's or an encoder's ``to_dict()``.

        Keys the dictionary lacks come from the keyword arguments (the metadata's own
        bands, groups, image and patch size). A dictionary that names no preset must
        give every width.

        Raises:
            ConfigError: the description is incomplete, contradicts ``bands``, or is
                not a valid encoder.
        """
        if "bands" in arch and parse_bands(arch["bands"], keep_order=True) != list(bands):
            raise ConfigError(f"arch bands {arch['bands']} differ from the bands {list(bands)}")
        size = arch.get("size")
        try:
            return cls.resolve(
                bands=list(bands),
                groups=[list(g) for g in groups],
                size=None if size is None else str(size),
                img_size=arch.get("img_size", img_size),
                patch_size=int(arch.get("patch_size", patch_size)),
                embed_dim=arch.get("embed_dim"),
                depth=arch.get("depth"),
                num_heads=arch.get("num_heads"),
                mlp_ratio=float(arch.get("mlp_ratio", 4.0)),
                qkv_bias=bool(arch.get("qkv_bias", True)),
                drop_path_rate=float(arch.get("drop_path_rate", 0.0)),
                group_wavelengths=arch.get("group_wavelengths") or None,
                # only imported ViTs have a learned position embedding
                pos_embed_type="learned" if arch.get("pos_embed_type") == "learned" else "sincos",
            )
        except ConfigError as err:
            raise ConfigError(f"arch {dict(arch)} is not a valid ViT: {err}") from err

    @property
    def grid_size(self) -> tuple[int, int]:
        """The patch grid ``(H/p, W/p)``."""
        return grid_of(self.img_size, self.patch_size)

    def replace(self, **changes: Any) -> EncoderArch:
        """A copy with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    # ---- description --------------------------------------------------------------------
    def vit_kwargs(self) -> dict[str, Any]:
        """JSON-safe :class:`~geomae.models.vit.ChannelViT` keyword arguments."""
        h, w = self.img_size
        extra: dict[str, Any] = {}
        if self.pos_embed_type != "sincos":  # sincos models keep their old metadata
            extra["pos_embed_type"] = self.pos_embed_type
        return {
            "bands": list(self.bands),
            "groups": [list(g) for g in self.groups],
            "img_size": h if h == w else [h, w],
            "patch_size": self.patch_size,
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.mlp_ratio,
            "qkv_bias": self.qkv_bias,
            "drop_path_rate": self.drop_path_rate,
            "group_wavelengths": list(self.group_wavelengths),
            **extra,
        }

    def to_dict(self) -> dict[str, Any]:
        """What :class:`~geomae.metadata.GeoMetadata` stores (= :meth:`vit_kwargs`)."""
        return self.vit_kwargs()


@dataclass(frozen=True)
class MAEArch:
    """A :class:`~geomae.models.mae.ChannelMAE`: its encoder, decoder and masking.

    Attributes:
        encoder: the encoder's architecture.
        decoder_embed_dim: decoder width.
        decoder_depth: decoder blocks.
        decoder_num_heads: decoder heads.
        mask_ratio: default fraction of masked tokens, in [0, 1).
        masking: ``consistent``, ``independent`` or ``spectral``.
        norm_pix_loss: targets normalized per patch and group.
    """

    encoder: EncoderArch
    decoder_embed_dim: int = 128
    decoder_depth: int = 2
    decoder_num_heads: int = 4
    mask_ratio: float = 0.75
    masking: MaskingStrategy = "consistent"
    norm_pix_loss: bool = True

    def __post_init__(self) -> None:
        """Check the decoder, the ratio and the strategy.

        Raises:
            ConfigError: inconsistent decoder sizes, ratio or strategy, or a
                non-square image.
        """
        check_dims(
            embed_dim=self.decoder_embed_dim,
            depth=self.decoder_depth,
            num_heads=self.decoder_num_heads,
            what="decoder",
        )
        check_ratio(self.mask_ratio)
        if self.masking not in MASKING_STRATEGIES:
            raise ConfigError(
                f"unknown masking strategy {self.masking!r}; expected {list(MASKING_STRATEGIES)}"
            )
        h, w = self.encoder.img_size
        if h != w:
            raise ConfigError(f"ChannelMAE is square; got an image size of {h}x{w}")

    #: Keyword arguments of :meth:`resolve` that are not encoder settings (the fields
    #: beside ``encoder``; set below the class).
    DECODER_KEYS: ClassVar[tuple[str, ...]]
    #: Keyword arguments of :meth:`resolve` passed to :meth:`EncoderArch.resolve`.
    ENCODER_KEYS = (
        "bands",
        "groups",
        "size",
        "img_size",
        "patch_size",
        "embed_dim",
        "depth",
        "num_heads",
        "mlp_ratio",
        "drop_path_rate",
    )

    @classmethod
    def resolve(cls, **settings: Any) -> MAEArch:
        """Resolve flat settings (MAETask's hyperparameters, a stored dict).

        Args:
            **settings: :data:`ENCODER_KEYS` (``bands`` required; the encoder
                defaults are geomae's MAE defaults: ``satmae`` groups, ``tiny``,
                64-px tiles, patch 8) and :data:`DECODER_KEYS`. Other keys are an
                error.

        Raises:
            ConfigError: unknown keys or inconsistent values.
        """
        unknown = sorted(set(settings) - set(cls.ENCODER_KEYS) - set(cls.DECODER_KEYS))
        if unknown:
            raise ConfigError(
                f"unknown MAE architecture setting(s) {unknown}; expected some of "
                f"{[*cls.ENCODER_KEYS, *cls.DECODER_KEYS]}"
            )
        encoder: dict[str, Any] = {
            "groups": "satmae",
            "size": "tiny",
            "img_size": 64,
            "patch_size": 8,
        }
        encoder.update({k: v for k, v in settings.items() if k in cls.ENCODER_KEYS})
        decoder = {k: v for k, v in settings.items() if k in cls.DECODER_KEYS}
        if "mask_ratio" in decoder:
            decoder["mask_ratio"] = float(decoder["mask_ratio"])
        for key in ("decoder_embed_dim", "decoder_depth", "decoder_num_heads"):
            if key in decoder:
                decoder[key] = int(decoder[key])
        return cls(encoder=EncoderArch.resolve(**encoder), **decoder)

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-safe settings that :meth:`resolve` reads back (GeoMetadata's arch)."""
        enc = self.encoder
        return {
            "bands": list(enc.bands),
            "groups": [list(g) for g in enc.groups],
            "size": enc.size,
            "img_size": enc.img_size[0],
            "patch_size": enc.patch_size,
            "embed_dim": enc.embed_dim,
            "depth": enc.depth,
            "num_heads": enc.num_heads,
            "decoder_embed_dim": self.decoder_embed_dim,
            "decoder_depth": self.decoder_depth,
            "decoder_num_heads": self.decoder_num_heads,
            "mlp_ratio": enc.mlp_ratio,
            "mask_ratio": self.mask_ratio,
            "masking": self.masking,
            "norm_pix_loss": self.norm_pix_loss,
            "drop_path_rate": enc.drop_path_rate,
        }


MAEArch.DECODER_KEYS = tuple(f.name for f in dataclasses.fields(MAEArch) if f.name != "encoder")
