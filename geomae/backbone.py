"""The ViT backbone a fine-tuning task starts from, and the data settings it implies.

A task gets its backbone in one of three ways:

- ``backbone=PATH`` (converted ``.safetensors`` weights or an MAE ``.ckpt``) with
  ``pretrained=True``: the pretrained encoder, restricted to the DataModule's bands;
- ``backbone=PATH`` with ``pretrained=False``: the same architecture and normalization,
  randomly initialized (the ``random_init`` baseline of a benchmark);
- ``backbone=None``: a randomly initialized :class:`~geomae.models.ChannelViT` built from
  ``arch`` (size preset, groups, patch size, ...) over the DataModule's bands.

The bands always come from the DataModule and must be a subset of the weights' bands.
The image size is the DataModule's tile size unless the task asks for another one, in
which case batches are resized on the device (see :func:`resize_to`).

The weights' normalization (z-score statistics, or a scale such as ``x / 10000`` for
imported SSL4EO weights, as equivalent statistics) goes to the DataModule, and their
processing level is checked against the DataModule's (:func:`push_stats`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence, Sized
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F

from geomae.convert import load_backbone
from geomae.datamodules.contract import FinetuneData, SplitData, TiledData
from geomae.errors import BandError, ConfigError
from geomae.levels import check_level
from geomae.metadata import GeoMetadata
from geomae.models.arch import EncoderArch
from geomae.models.vit import ChannelViT, GlobalPool
from geomae.normalization import Normalization
from geomae.stats import BandStats

log = logging.getLogger(__name__)

__all__ = [
    "ARCH_DEFAULTS",
    "BuiltBackbone",
    "build_backbone",
    "check_img_size",
    "datamodule_tile_size",
    "push_stats",
    "random_backbone",
    "resize_to",
]

#: Architecture of a randomly initialized backbone when ``arch`` leaves a key out
#: (the :class:`~geomae.trainers.MAETask` defaults).
ARCH_DEFAULTS: dict[str, Any] = {"size": "tiny", "groups": "satmae", "patch_size": 8}
_ARCH_KEYS = ("size", "groups", "patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")
_ARCH_KEYS_ALL = (*_ARCH_KEYS, "qkv_bias")


@dataclass
class BuiltBackbone:
    """A backbone and where its normalization comes from.

    Attributes:
        model: the encoder (no classifier), over the DataModule's bands.
        stats: the weights' normalization statistics, or None for a backbone built
            from ``arch`` (the DataModule's statistics are used as they are).
        offset: the DN offset of the weights' pretraining data, or None.
        source: human-readable origin, for messages and metadata.
        normalization: the weights' normalization (None for a backbone from ``arch``).
        level: processing level of the weights' pretraining data, None if unknown.
    """

    model: ChannelViT
    stats: BandStats | None
    offset: float | None
    source: str
    normalization: Normalization | None = None
    level: str | None = None


def datamodule_tile_size(datamodule: object) -> int | None:
    """Side in pixels of the tiles a DataModule yields, or None if it cannot tell.

    Looked up in order: an int ``patch_size`` (a
    :class:`~geomae.datamodules.contract.TiledData`, e.g. torchgeo GeoDataModules: the
    sampled patch side), then, for a :class:`~geomae.datamodules.contract.SplitData`
    (every torchgeo DataModule), the dataset class's ``image_size`` and the image of
    the first sample of a split dataset that :meth:`setup` already built.

    Raises:
        ConfigError: if the tiles are not square.
    """
    if isinstance(datamodule, TiledData):
        size = datamodule.patch_size
        if isinstance(size, Sequence) and len(size) == 2:
            size = _square(tuple(int(s) for s in size), "the DataModule's patch_size")
        if isinstance(size, int):
            return size
    if not isinstance(datamodule, SplitData):
        return None
    # a class attribute of some torchgeo datasets only
    image_size = getattr(datamodule.dataset_class, "image_size", None)
    if isinstance(image_size, int):
        return image_size
    if isinstance(image_size, Sequence) and len(image_size) == 2:
        return _square(tuple(int(s) for s in image_size), "the dataset's image_size")
    splits = {
        "train_dataset": datamodule.train_dataset,
        "val_dataset": datamodule.val_dataset,
        "test_dataset": datamodule.test_dataset,
        "predict_dataset": datamodule.predict_dataset,
    }
    for name, dataset in splits.items():
        if not isinstance(dataset, Sized) or len(dataset) == 0:
            continue
        image = cast(Any, dataset)[0]["image"]  # (C, H, W)
        return _square((int(image.shape[-2]), int(image.shape[-1])), f"{name} images")
    return None


def _square(size: tuple[int, ...], what: str) -> int:
    if size[0] != size[1]:
        raise ConfigError(f"{what} are {size[0]}x{size[1]} px; fine-tuning needs square tiles")
    return size[0]


def check_img_size(img_size: int, patch_size: int, *, tile_size: int | None, source: str) -> None:
    """Raise a ConfigError unless ``img_size`` is a positive multiple of ``patch_size``.

    Args:
        img_size: the size the backbone will see.
        patch_size: the backbone's patch size.
        tile_size: the DataModule's tile size (for the message), if known.
        source: where the backbone comes from (for the message).
    """
    if img_size > 0 and img_size % patch_size == 0:
        return
    up = -(-img_size // patch_size) * patch_size
    what = f"the DataModule's {tile_size}-px tiles are" if tile_size else f"img_size {img_size} is"
    raise ConfigError(
        f"{what} not divisible by the patch size {patch_size} of the backbone "
        f"({source}); set the task's img_size to a multiple of {patch_size} (e.g. {up}: "
        "batches are resized to it on the device) or use a backbone with a patch size "
        f"that divides {img_size}"
    )


def random_backbone(
    *,
    bands: Sequence[str],
    arch: Mapping[str, Any] | None,
    img_size: int,
    drop_path_rate: float,
    tile_size: int | None = None,
) -> ChannelViT:
    """A randomly initialized encoder over ``bands``.

    Args:
        bands: the DataModule's bands.
        arch: ``size`` preset (``tiny`` ... ``huge``), ``groups``, ``patch_size``,
            ``embed_dim``/``depth``/``num_heads`` (override the preset), ``mlp_ratio``,
            ``qkv_bias``; missing keys take :data:`ARCH_DEFAULTS`.
        img_size: input size in pixels.
        drop_path_rate: stochastic depth.
        tile_size: the DataModule's tile size (for messages), if known.

    Raises:
        ConfigError: on an unknown key (``bands`` and ``img_size`` come from the data).
    """
    given = dict(arch or {})
    unknown = sorted(set(given) - set(_ARCH_KEYS_ALL))
    if unknown:
        raise ConfigError(
            f"unknown arch key(s) {unknown}; expected some of {list(_ARCH_KEYS_ALL)} "
            "(bands come from the DataModule, the image size from its tiles or img_size)"
        )
    spec = {**ARCH_DEFAULTS, **given}
    patch_size = int(spec.pop("patch_size"))
    if patch_size <= 0:
        raise ConfigError(f"arch patch_size must be positive, got {patch_size}")
    check_img_size(img_size, patch_size, tile_size=tile_size, source="arch")
    resolved = EncoderArch.resolve(
        bands=bands,
        img_size=img_size,
        patch_size=patch_size,
        drop_path_rate=drop_path_rate,
        **spec,
    )
    return ChannelViT.from_arch(resolved)


def build_backbone(
    *,
    backbone: str | Path | None,
    pretrained: bool,
    arch: Mapping[str, Any] | None,
    bands: Sequence[str],
    img_size: int | None,
    tile_size: int | None,
    drop_path_rate: float,
    global_pool: GlobalPool = "token",
) -> BuiltBackbone:
    """Build the backbone of a fine-tuning task (see the module docstring).

    Args:
        backbone: converted weights or MAE checkpoint, or None for a random init.
        pretrained: load the weights (False: same architecture, random init).
        arch: architecture of a random init without a file; must be None with a file.
        bands: the DataModule's bands (a subset of the weights' bands).
        img_size: the input size the task asked for, or None for ``tile_size``.
        tile_size: the DataModule's tile size, if known.
        drop_path_rate: stochastic depth of the encoder.
        global_pool: ``token`` or ``avg`` pooling for :meth:`ChannelViT.forward_head`.

    Returns:
        The backbone over ``bands`` (in that order) at the resolved image size.

    Raises:
        BandError: the weights lack some of ``bands`` (named with the file).
        ConfigError: ``arch`` given with a file, no image size known, or an image size
            not divisible by the patch size.
    """
    size = img_size if img_size is not None else tile_size
    if size is None:
        raise ConfigError(
            "cannot tell the DataModule's tile size: set the task's img_size to the "
            "size of its images"
        )
    if backbone is None:
        model = random_backbone(
            bands=bands,
            arch=arch,
            img_size=int(size),
            drop_path_rate=drop_path_rate,
            tile_size=tile_size if img_size is None else None,
        )
        model.reset_classifier(0, global_pool)
        log.info("backbone: random init %s over bands %s", _describe(model), list(bands))
        return BuiltBackbone(model=model, stats=None, offset=None, source="random init")
    if arch is not None:
        raise ConfigError(
            f"arch={dict(arch)} is given together with backbone={backbone}: the "
            "architecture comes from the weights file; set arch to null"
        )
    path = Path(backbone)
    model = load_backbone(path, pretrained=pretrained, drop_path_rate=drop_path_rate)
    meta = cast(GeoMetadata, model.geomae_metadata)
    missing = [b for b in bands if b not in model.bands]
    if missing:
        raise BandError(
            f"the DataModule's band(s) {missing} are not in the backbone {path}, which "
            f"was trained on {list(model.bands)}; select a subset of those bands in the "
            "DataModule"
        )
    check_img_size(int(size), model.patch_size, tile_size=tile_size, source=str(path))
    if list(bands) != list(model.bands):
        model = model.select_bands(list(bands))
    model.set_img_size(int(size))
    model.reset_classifier(0, global_pool)
    source = f"backbone {path}" if pretrained else f"random init of backbone {path}"
    log.info("backbone: %s, %s over bands %s", source, _describe(model), list(bands))
    return BuiltBackbone(
        model=model,
        stats=meta.stats.select(bands),
        offset=float(meta.offset),
        source=source,
        normalization=meta.normalization,
        level=meta.processing_level,
    )


def _describe(model: ChannelViT) -> str:
    return (
        f"ViT D={model.embed_dim} depth={model.depth} heads={model.num_heads} "
        f"patch={model.patch_size} img={model.img_size[0]} groups={model.groups}"
    )


def push_stats(datamodule: FinetuneData, built: BuiltBackbone) -> None:
    """Check the processing level, hand the backbone's normalization to the DataModule.

    L1C weights on L2A data or the reverse stop with a ConfigError unless the
    DataModule's ``allow_level_mismatch`` is set (a level unknown on either side is not
    checked). The DataModule keeps user-given statistics and warns about each band where
    they differ from the backbone's, naming what the weights expect (see
    :class:`~geomae.datamodules.base.GeomaeDataModule`). The offset is a
    property of the data (0 for products before processing baseline 04.00, 1000 after),
    so a DataModule offset that differs from the pretraining data's is allowed and
    only logged: each side removes its own offset before the shared normalization.

    Args:
        datamodule: a :class:`~geomae.datamodules.contract.FinetuneData` (``bands``,
            ``set_stats``, ``offset``, ``processing_level``, ``allow_level_mismatch``),
            checked by the task.
        built: the backbone; nothing happens for a backbone without statistics.

    Raises:
        ConfigError: the processing levels differ and no mismatch is allowed.
    """
    if built.stats is None:
        return
    check_level(
        data_level=datamodule.processing_level,
        weights_level=built.level,
        allow=bool(datamodule.allow_level_mismatch),
        data=type(datamodule).__name__,
        weights=f"the weights of {built.source}",
    )
    if built.normalization is not None and built.normalization.kind != "zscore":
        datamodule.set_stats(
            built.stats, source=built.source, expects=built.normalization.describe()
        )
    else:
        datamodule.set_stats(built.stats, source=built.source)
    offset = float(datamodule.offset)
    if built.offset is not None and offset != built.offset:
        log.warning(
            "the DataModule subtracts offset %g from raw DN while the pretraining data of "
            "%s used %g; right when the products differ in processing baseline (e.g. "
            "EuroSAT / BigEarthNet v1 before 04.00: 0, newer L2A: 1000), otherwise set "
            "the DataModule's offset to %g",
            offset,
            built.source,
            built.offset,
            built.offset,
        )


def resize_to(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resize a ``(B, C, H, W)`` batch to ``size`` (no-op if it matches)."""
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image, size=size, mode="bilinear", align_corners=False)  # (B, C, h, w)
