"""MAE checkpoint -> ViT weights (+ metadata), and :func:`load_backbone`.

The pieces, each usable on its own:

- :func:`read_mae_checkpoint`: the state dict and :class:`~geomae.metadata.GeoMetadata`
  of a Lightning checkpoint of :class:`~geomae.trainers.MAETask`, read with
  ``torch.load(weights_only=True)`` (no arbitrary unpickling).
- :func:`mae_to_vit`: a pure state-dict -> state-dict function. It keeps the encoder,
  drops the decoder (mask token included) and checks every key's shape against the
  target model: geomae's :class:`~geomae.models.vit.ChannelViT`, or for a
  single-group model a stock timm ``VisionTransformer``.
- :func:`export_weights` (``geomae convert``): checkpoint -> ``.safetensors`` + JSON
  sidecar (see :mod:`geomae.weights`).
- :func:`load_backbone`: a weight file or an MAE checkpoint -> a ready
  :class:`~geomae.models.vit.ChannelViT`, optionally over a subset of bands and at
  another image size, with its metadata attached.

**The timm mapping.** ChannelViT adds to the patch token ``l`` of group ``g``
``pos_2d[l] + wavelength_sincos(lambda_g) + group_embed[g]``; the first two are fixed
(recomputed from the architecture, never stored), the last is learned. A stock timm
ViT has one learned ``pos_embed`` of shape ``(1, 1 + L, D)`` added to the cls token
and the patch tokens. With one group the sum is the same for every token of a patch
position, so the timm ``pos_embed`` is ``zeros`` for the cls token (ChannelViT gives
the cls token no position) followed by ``pos_2d + wavelength_sincos + group_embed``
for the patches; ``patch_embed.projs.0`` becomes ``patch_embed.proj``, and
``cls_token``, ``blocks.*`` and ``norm.*`` keep their names. Mapping back
(:func:`timm_to_vit`) subtracts the fixed parts from every patch row: what remains
must be one and the same vector (the learned ``group_embed``) in every row, and the
cls row must be zero, otherwise the file is refused.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal, cast

import torch
from torch import nn

from geomae.bands import parse_bands
from geomae.checkpoint_io import safe_torch_load
from geomae.errors import BandError, CheckpointError, ConfigError
from geomae.metadata import GeoMetadata
from geomae.models.arch import EncoderArch
from geomae.models.pos_embed import sincos_2d, wavelength_embed
from geomae.models.sizes import VIT_SIZES
from geomae.models.vit import ChannelViT, GlobalPool
from geomae.version import __version__
from geomae.weights import (
    TARGETS,
    Target,
    is_safetensors,
    read_weights_file,
    read_weights_header,
    write_weights,
)

log = logging.getLogger(__name__)

__all__ = [
    "TIMM_MODEL_NAMES",
    "ExportTarget",
    "Target",
    "check_state",
    "encoder_kwargs",
    "export_weights",
    "load_backbone",
    "mae_to_vit",
    "read_mae_checkpoint",
    "read_weights",
    "read_weights_metadata",
    "resolve_target",
    "timm_kwargs",
    "timm_model_name",
    "timm_to_vit",
    "vit_metadata",
]

ExportTarget = Literal["auto", "geomae", "timm"]

#: timm model whose default configuration matches each size preset.
TIMM_MODEL_NAMES: dict[str, str] = {
    "tiny": "vit_tiny_patch16_224",
    "small": "vit_small_patch16_224",
    "base": "vit_base_patch16_224",
    "large": "vit_large_patch16_224",
    "huge": "vit_huge_patch14_224",
}

_ENCODER = "encoder."
_DECODER = "decoder."
_MASK_TOKEN = "mask_token"
_MAX_LISTED = 10


def _listing(items: Sequence[Any]) -> str:
    """At most ``_MAX_LISTED`` items, and how many more there are."""
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f", ... ({more} more)" if more > 0 else "")


# ---- reading MAE checkpoints ---------------------------------------------------------
def _torch_load(path: Path) -> Any:
    """``torch.load(weights_only=True)`` with every failure as a CheckpointError."""
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    return safe_torch_load(
        path,
        source=f"checkpoint {path}",
        expected="a PyTorch checkpoint",
        refused_hint="geomae reads only tensors and plain containers; a checkpoint written "
        "by `geomae fit` never needs more",
    )


def read_mae_checkpoint(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], GeoMetadata]:
    """Read the weights and metadata of an MAE checkpoint written by ``geomae fit``.

    Args:
        path: a Lightning checkpoint of :class:`~geomae.trainers.MAETask` (its
            ``state_dict`` holds ``model.encoder.*`` and ``model.decoder.*``, its
            ``geomae`` entry the metadata).

    Returns:
        ``(state_dict, metadata)``: the full state dict, keys as stored.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, holds objects that
            ``weights_only`` loading refuses, is not a geomae MAE checkpoint (what was
            found is named), or has incomplete metadata.
    """
    file = Path(path)
    checkpoint = _torch_load(file)
    if not isinstance(checkpoint, dict):
        raise CheckpointError(
            f"checkpoint {file} is not a geomae MAE checkpoint: it holds a "
            f"{type(checkpoint).__name__}, not a checkpoint dictionary"
        )
    keys = [str(k) for k in checkpoint]
    if "geomae" not in checkpoint:
        bare = bool(checkpoint) and all(isinstance(v, torch.Tensor) for v in checkpoint.values())
        found = (
            f"a bare state dict with {len(keys)} tensors (e.g. {_listing(keys[:5])})"
            if bare
            else f"top-level keys {_listing(keys)}"
        )
        raise CheckpointError(
            f"checkpoint {file} is not a geomae MAE checkpoint: it has no 'geomae' "
            f"metadata ({found}); convert checkpoints written by `geomae fit` with MAETask"
        )
    meta = checkpoint["geomae"]
    task = meta.get("extra", {}).get("task") if isinstance(meta, dict) else None
    if task not in (None, "MAETask"):
        raise CheckpointError(
            f"checkpoint {file} was written by {task}, not by MAETask: only MAE "
            "pretraining checkpoints convert to backbone weights"
        )
    state = checkpoint.get("state_dict")
    if not isinstance(state, dict):
        raise CheckpointError(
            f"checkpoint {file} is not a geomae MAE checkpoint: it has no 'state_dict' "
            f"(top-level keys {_listing(keys)})"
        )
    state_keys = [str(k) for k in state]
    if not any(k.startswith("model." + _ENCODER) for k in state_keys):
        raise CheckpointError(
            f"checkpoint {file} is not a geomae MAE checkpoint: its state_dict has no "
            f"'model.encoder.*' weights ({len(state_keys)} keys, e.g. "
            f"{_listing(state_keys[:5])})"
        )
    not_tensors = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"checkpoint {file}: state_dict entries that are not tensors: {_listing(not_tensors)}"
        )
    try:
        metadata = GeoMetadata.from_dict(meta, source=f"checkpoint {file}")
    except (ValueError, TypeError, KeyError, AttributeError) as err:
        raise CheckpointError(
            f"checkpoint {file} has incomplete or invalid geomae metadata: {err}"
        ) from err
    return state, metadata


# ---- architecture --------------------------------------------------------------------
def encoder_kwargs(metadata: GeoMetadata) -> dict[str, Any]:
    """ChannelViT keyword arguments (without a classifier) described by ``metadata``.

    ``metadata.arch`` is either a ChannelMAE's ``arch_kwargs()`` (MAE checkpoints:
    ``size`` plus overrides, decoder settings) or a ChannelViT's (exports). Bands and
    groups come from the metadata itself; the group wavelengths default to the mean
    central wavelength of each group, as ChannelMAE builds its encoder.

    Raises:
        CheckpointError: the architecture is incomplete or contradicts the bands.
    """
    try:
        arch = EncoderArch.from_dict(
            metadata.arch,
            bands=metadata.bands,
            groups=metadata.groups,
            img_size=metadata.img_size,
            patch_size=metadata.patch_size,
        )
    except ConfigError as err:
        raise CheckpointError(f"metadata is inconsistent or incomplete: {err}") from err
    return arch.vit_kwargs()


def _square(img_size: int | Sequence[int]) -> int:
    if isinstance(img_size, int):
        return img_size
    h, w = (int(v) for v in img_size)
    if h != w:
        raise ConfigError(f"geomae weights are square; got image size {h}x{w}")
    return h


def _size_name(metadata: GeoMetadata, kwargs: Mapping[str, Any]) -> str:
    """The size preset named in the metadata, else the one with the same width."""
    size = metadata.arch.get("size") or dict(metadata.extra.get("mae_arch") or {}).get("size")
    if size in VIT_SIZES:
        return str(size)
    for name, dims in VIT_SIZES.items():
        if dims.embed_dim == kwargs["embed_dim"]:
            return name
    return "base"


def timm_model_name(metadata: GeoMetadata) -> str:
    """Timm model name for ``metadata``'s size (its kwargs are always passed explicitly)."""
    return TIMM_MODEL_NAMES[_size_name(metadata, encoder_kwargs(metadata))]


def timm_kwargs(metadata: GeoMetadata) -> dict[str, Any]:
    """Keyword arguments that make ``timm.create_model`` build the exported ViT.

    ``fc_norm=False`` keeps the final LayerNorm inside ``forward_features`` for every
    pooling, as in ChannelViT.

    Raises:
        CheckpointError: the model has more than one band group.
    """
    kwargs = encoder_kwargs(metadata)
    _require_single_group(metadata)
    return {
        "img_size": _square(kwargs["img_size"]),
        "patch_size": kwargs["patch_size"],
        "in_chans": len(kwargs["bands"]),
        "embed_dim": kwargs["embed_dim"],
        "depth": kwargs["depth"],
        "num_heads": kwargs["num_heads"],
        "mlp_ratio": kwargs["mlp_ratio"],
        "qkv_bias": kwargs["qkv_bias"],
        "class_token": True,
        "global_pool": str(metadata.arch.get("global_pool", "token")),
        "fc_norm": False,
        "num_classes": 0,
    }


def _require_single_group(metadata: GeoMetadata) -> None:
    if len(metadata.groups) != 1:
        raise CheckpointError(
            f"a stock timm ViT has one patch embedding, but this model has "
            f"{len(metadata.groups)} band groups {metadata.groups}; use the 'geomae' target "
            "(loaded with geomae.load_backbone)"
        )


def _build_shapes(build: Callable[[], nn.Module]) -> dict[str, torch.Size]:
    """Parameter shapes of a model built by ``build()``, on the meta device if possible."""
    try:
        with torch.device("meta"):
            model = build()
    except NotImplementedError:  # a constructor that reads tensor values needs real data
        with torch.no_grad():
            model = build()
    return {k: v.shape for k, v in model.state_dict().items()}


def _encoder_shapes(kwargs: Mapping[str, Any]) -> dict[str, torch.Size]:
    return _build_shapes(lambda: ChannelViT(**kwargs, num_classes=0))


def _timm_shapes(name: str, kwargs: Mapping[str, Any]) -> dict[str, torch.Size]:
    import timm

    return _build_shapes(lambda: timm.create_model(name, pretrained=False, **kwargs))


def check_state(
    state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Size], *, what: str
) -> None:
    """Compare a state dict with expected shapes, key by key.

    Args:
        state: the tensors.
        expected: key -> shape of the target model.
        what: description of the comparison, for the message.

    Raises:
        CheckpointError: listing every missing, unexpected and shape-mismatched key.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched = [
        f"{k}: {tuple(state[k].shape)} vs expected {tuple(shape)}"
        for k, shape in expected.items()
        if k in state and tuple(state[k].shape) != tuple(shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing keys [{_listing(missing)}]")
    if unexpected:
        problems.append(f"unexpected keys [{_listing(unexpected)}]")
    if mismatched:
        problems.append(f"shape mismatches [{_listing(mismatched)}]")
    if problems:
        raise CheckpointError(f"{what} do not fit: " + "; ".join(problems))


def _describe(kwargs: Mapping[str, Any]) -> str:
    return (
        f"ChannelViT(D={kwargs['embed_dim']}, depth={kwargs['depth']}, "
        f"heads={kwargs['num_heads']}, patch={kwargs['patch_size']}, "
        f"groups={kwargs['groups']})"
    )


# ---- conversion ----------------------------------------------------------------------
def _split(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], list[str], list[str]]:
    """Encoder tensors (prefix stripped), dropped keys, keys that are neither."""
    keys = list(state_dict)
    if any(k.startswith("model." + _ENCODER) for k in keys):
        prefix = "model."
    elif any(k.startswith(_ENCODER) for k in keys):
        prefix = ""
    else:
        raise CheckpointError(
            f"no MAE encoder weights: no 'model.encoder.*' or 'encoder.*' keys among "
            f"{len(keys)} keys (e.g. {_listing(keys[:5])})"
        )
    encoder: dict[str, torch.Tensor] = {}
    dropped: list[str] = []
    unknown: list[str] = []
    for key, value in state_dict.items():
        name = key[len(prefix) :] if key.startswith(prefix) else None
        if name is not None and name.startswith(_ENCODER):
            encoder[name[len(_ENCODER) :]] = value
        elif name is not None and (name.startswith(_DECODER) or name == _MASK_TOKEN):
            dropped.append(name)
        else:
            unknown.append(key)
    return encoder, dropped, unknown


def _log_dropped(dropped: Sequence[str]) -> None:
    counts = Counter(".".join(k.split(".")[:2]) for k in dropped)
    log.info(
        "dropped %d MAE weights that are not part of the ViT encoder: %s",
        len(dropped),
        ", ".join(f"{prefix} ({n})" for prefix, n in sorted(counts.items())) or "none",
    )


def _fixed_patch_embed(kwargs: Mapping[str, Any]) -> torch.Tensor:
    """(L, D) fixed part ChannelViT adds to single-group patch tokens: pos + wavelength."""
    size = _square(kwargs["img_size"])
    grid = (size // kwargs["patch_size"], size // kwargs["patch_size"])
    pos = sincos_2d(grid, kwargs["embed_dim"])  # (L, D)
    spectral = wavelength_embed(kwargs["group_wavelengths"], kwargs["embed_dim"])  # (1, D)
    return pos + spectral  # (L, D)


def _to_timm(encoder: Mapping[str, torch.Tensor], kwargs: Mapping[str, Any]) -> dict:
    cls = encoder["cls_token"]  # (1, 1, D)
    group = encoder["group_embed"].float()  # (1, D)
    patches = _fixed_patch_embed(kwargs) + group  # (L, D)
    zeros = torch.zeros(1, cls.shape[-1])  # (1, D): ChannelViT's cls token has no position
    pos_embed = torch.cat([zeros, patches], dim=0)[None].to(cls.dtype)  # (1, 1+L, D)
    out: dict[str, torch.Tensor] = {"cls_token": cls, "pos_embed": pos_embed}
    for key, value in encoder.items():
        if key.startswith("patch_embed.projs.0."):
            out["patch_embed.proj." + key.removeprefix("patch_embed.projs.0.")] = value
        elif key.startswith(("blocks.", "norm.")):
            out[key] = value
    return out


def mae_to_vit(
    state_dict: Mapping[str, torch.Tensor],
    metadata: GeoMetadata,
    *,
    target: Target = "geomae",
) -> dict[str, torch.Tensor]:
    """Turn an MAE state dict into the state dict of its ViT encoder.

    Keeps the ``model.encoder.*`` tensors (or ``encoder.*`` of a bare ChannelMAE state
    dict) with the prefix stripped and drops ``decoder.*`` (mask token, decoder blocks,
    pixel heads), logging what was dropped. Every key is checked against the target
    model built from ``metadata``: missing, unexpected and mis-shaped keys are all
    reported at once. The input is not modified; the output shares its tensors.

    Args:
        state_dict: MAETask (``model.`` prefix) or ChannelMAE state dict.
        metadata: the checkpoint's metadata (architecture, bands, groups).
        target: ``geomae`` for :class:`~geomae.models.vit.ChannelViT` names, ``timm``
            for a stock timm ``VisionTransformer`` (one band group only; the mapping is
            described in this module's docstring).

    Returns:
        The encoder's state dict for ``target``.

    Raises:
        CheckpointError: keys that are neither encoder nor decoder weights (never
            silently dropped), no encoder weights, weights that do not fit the
            architecture, or ``timm`` for a model with several band groups.
        ConfigError: an unknown target.
    """
    if target not in TARGETS:
        raise ConfigError(f"unknown conversion target {target!r}; expected one of {list(TARGETS)}")
    encoder, dropped, unknown = _split(state_dict)
    if unknown:
        raise CheckpointError(
            f"{len(unknown)} state-dict keys are neither MAE encoder nor decoder weights: "
            f"[{_listing(unknown)}]; refusing to drop them silently"
        )
    kwargs = encoder_kwargs(metadata)
    check_state(
        encoder, _encoder_shapes(kwargs), what=f"MAE encoder weights and {_describe(kwargs)}"
    )
    _log_dropped(dropped)
    if target == "geomae":
        return encoder
    _require_single_group(metadata)
    out = _to_timm(encoder, kwargs)
    name = timm_model_name(metadata)
    check_state(
        out, _timm_shapes(name, timm_kwargs(metadata)), what=f"converted weights and timm {name}"
    )
    return out


def timm_to_vit(
    tensors: Mapping[str, torch.Tensor], metadata: GeoMetadata, *, source: str = "weights"
) -> dict[str, torch.Tensor]:
    """Map a ``timm``-target state dict back to ChannelViT names (inverse of the export).

    The learned ``group_embed`` is what remains of each patch row of ``pos_embed`` after
    subtracting the fixed 2-D sin-cos position and wavelength embeddings; it must be the
    same in every row (up to rounding of the stored dtype) and the cls row must be zero.

    Args:
        tensors: timm ``VisionTransformer`` state dict of a geomae export.
        metadata: the export's metadata.
        source: what the tensors came from, for messages.

    Returns:
        The ChannelViT state dict.

    Raises:
        CheckpointError: several band groups, shapes that do not fit, or a position
            embedding that is not geomae's fixed one plus a constant (e.g. a timm model
            trained with a learned position embedding).
    """
    _require_single_group(metadata)
    kwargs = encoder_kwargs(metadata)
    name = timm_model_name(metadata)
    expected = _timm_shapes(name, timm_kwargs(metadata))
    check_state(tensors, expected, what=f"{source} and timm {name}")
    pos_embed = tensors["pos_embed"]  # (1, 1+L, D)
    pos = pos_embed.float()[0]  # (1+L, D)
    tol = 16 * torch.finfo(pos_embed.dtype).eps * (1.0 + float(pos.abs().max()))
    cls_dev = float(pos[0].abs().max())
    rest = pos[1:] - _fixed_patch_embed(kwargs)  # (L, D)
    group = rest.mean(dim=0, keepdim=True)  # (1, D)
    dev = float((rest - group).abs().max())
    if cls_dev > tol or dev > tol:
        raise CheckpointError(
            f"{source}: pos_embed is not geomae's fixed 2-D sin-cos + wavelength embedding "
            f"plus one learned group embedding (cls row off by {cls_dev:.3g}, patch rows "
            f"differ by up to {dev:.3g}, tolerance {tol:.3g}); weights with a learned "
            "position embedding cannot be loaded into ChannelViT - load them with timm"
        )
    out: dict[str, torch.Tensor] = {
        "cls_token": tensors["cls_token"],
        "group_embed": group.to(pos_embed.dtype),
    }
    for key, value in tensors.items():
        if key.startswith("patch_embed.proj."):
            out["patch_embed.projs.0." + key.removeprefix("patch_embed.proj.")] = value
        elif key.startswith(("blocks.", "norm.")):
            out[key] = value
    return out


# ---- export --------------------------------------------------------------------------
def resolve_target(target: ExportTarget, metadata: GeoMetadata) -> Target:
    """``auto`` -> ``timm`` for a single band group, ``geomae`` otherwise.

    Raises:
        ConfigError: an unknown target.
    """
    if target == "auto":
        return "timm" if len(metadata.groups) == 1 else "geomae"
    if target not in TARGETS:
        raise ConfigError(f"unknown export target {target!r}; expected one of {['auto', *TARGETS]}")
    return cast(Target, target)


def vit_metadata(
    metadata: GeoMetadata, *, target: Target = "geomae", source: str | None = None
) -> GeoMetadata:
    """Metadata of the converted encoder: ``arch`` becomes ChannelViT's keyword arguments.

    The MAE's own ``arch`` is kept in ``extra["mae_arch"]``. A ``timm`` target also
    records how to rebuild the model with plain timm::

        timm.create_model(
            extra["timm_model"],
            pretrained=True,
            pretrained_cfg_overlay=dict(file=PATH, **extra["timm_pretrained_cfg_overlay"]),
            **extra["timm_kwargs"],
        )
    """
    kwargs = encoder_kwargs(metadata)
    arch = {**kwargs, "num_classes": 0, "global_pool": "token"}
    extra = dict(metadata.extra)
    extra.update(mae_arch=dict(metadata.arch), converted_by=f"geomae {__version__}", target=target)
    if source is not None:
        extra["source_checkpoint"] = source
    if target == "timm":
        tk = timm_kwargs(metadata)
        extra.update(
            timm_model=timm_model_name(metadata),
            timm_kwargs=tk,
            # add file=...: input_size declares the channels; first_conv=None keeps timm
            # versions that adapt only 3-channel stems from dropping the patch embedding
            timm_pretrained_cfg_overlay={
                "input_size": [tk["in_chans"], tk["img_size"], tk["img_size"]],
                "first_conv": None,
            },
        )
    return replace(
        metadata,
        bands=list(metadata.bands),
        groups=[list(g) for g in metadata.groups],
        arch=arch,
        extra=extra,
    )


def export_weights(
    ckpt_path: str | os.PathLike[str],
    out_path: str | os.PathLike[str],
    *,
    target: ExportTarget = "auto",
) -> Path:
    """Convert an MAE checkpoint into a weight file and its JSON sidecar.

    Args:
        ckpt_path: checkpoint written by ``geomae fit`` with MAETask.
        out_path: ``NAME.safetensors`` to write; ``NAME.json`` is written beside it.
        target: ``timm`` (stock timm ``VisionTransformer`` names; single group only),
            ``geomae`` (ChannelViT names) or ``auto`` (timm for one group, else geomae).

    Returns:
        The weights file.

    Raises:
        CheckpointError: see :func:`read_mae_checkpoint` and :func:`mae_to_vit`.
        ConfigError: an output name not ending in ``.safetensors``, an unknown target.
    """
    ckpt = Path(ckpt_path)
    state, metadata = read_mae_checkpoint(ckpt)
    resolved = resolve_target(target, metadata)
    tensors = mae_to_vit(state, metadata, target=resolved)
    meta = vit_metadata(metadata, target=resolved, source=ckpt.name)
    out, sidecar = write_weights(out_path, tensors, meta, target=resolved)
    log.info(
        "wrote %s (%d tensors, %s target, bands %s, groups %s) and %s",
        out,
        len(tensors),
        resolved,
        ",".join(meta.bands),
        meta.groups,
        sidecar,
    )
    return out


# ---- reading weights -----------------------------------------------------------------
def read_weights(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], GeoMetadata, Target]:
    """Read a weight file written by :func:`export_weights`, or convert an MAE checkpoint.

    Args:
        path: a geomae ``.safetensors`` export, or an MAE ``.ckpt`` (converted on the fly
            to the ``geomae`` target; recognized by its content, not its name).

    Returns:
        ``(tensors, metadata, target)``; the metadata's ``arch`` holds ChannelViT's
        keyword arguments.

    Raises:
        CheckpointError: missing, truncated or foreign file, or no geomae metadata.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"weights file {file} does not exist")
    if is_safetensors(file):
        return read_weights_file(file)
    if file.suffix == ".safetensors":
        raise CheckpointError(
            f"weights file {file} is not a safetensors file (truncated or corrupt header)"
        )
    state, metadata = read_mae_checkpoint(file)
    return mae_to_vit(state, metadata), vit_metadata(metadata, source=file.name), "geomae"


def read_weights_metadata(path: str | os.PathLike[str]) -> tuple[GeoMetadata, Target]:
    """The metadata and target of a weight file (header only) or an MAE checkpoint.

    Raises:
        CheckpointError: as :func:`read_weights`.
    """
    file = Path(path)
    if file.is_file() and is_safetensors(file):
        return read_weights_header(file)
    _, metadata, target = read_weights(file)
    return metadata, target


# ---- load_backbone -------------------------------------------------------------------
def _select(model: ChannelViT, bands: str | Sequence[str], source: Path) -> ChannelViT:
    requested = parse_bands(bands, keep_order=True)
    missing = [b for b in requested if b not in model.bands]
    if missing:
        raise BandError(
            f"band(s) {missing} are not in the weights {source}; they were trained on "
            f"{list(model.bands)}"
        )
    return model if requested == model.bands else model.select_bands(requested)


def load_backbone(
    path: str | os.PathLike[str],
    *,
    bands: str | Sequence[str] | None = None,
    img_size: int | None = None,
    pretrained: bool = True,
    num_classes: int = 0,
    global_pool: GlobalPool | None = None,
    drop_path_rate: float | None = None,
) -> ChannelViT:
    """Build a :class:`~geomae.models.vit.ChannelViT` from geomae weights.

    Whatever the file's target, the result is geomae's ChannelViT: a ``timm``-target
    export is mapped back (see :func:`timm_to_vit`). The weights load with
    ``strict=True`` after a key-by-key shape check; nothing is re-initialized.

    With ``bands``, the model keeps only those bands, in the order given (see
    :meth:`ChannelViT.select_bands`): band groups with no requested band are dropped;
    a group that keeps some of its bands has its patch-embedding weight sliced to them
    and scaled by ``n_full / n_kept``; the spectral embeddings of kept groups are
    unchanged. With ``img_size`` the fixed sin-cos position embedding is recomputed
    for the new grid (no interpolation needed).

    The returned module carries ``geomae_metadata`` (:class:`GeoMetadata`): bands,
    groups, statistics (selected to the bands), image size and architecture of the
    returned model, plus the file's provenance in ``extra``.

    Args:
        path: a ``.safetensors`` file of ``geomae convert`` or ``geomae import`` (timm
            ViTs, SSL4EO-S12 presets, SatMAE), or an MAE ``.ckpt``.
        bands: band names or a band-set name, each one of the weights' bands; None =
            all of them in the trained order.
        img_size: input size in pixels (a multiple of the patch size); None = trained.
        pretrained: False builds the same architecture with random initialization
            (baselines); the file is still read for its architecture and metadata.
        num_classes: classifier outputs; 0 = no classifier (a new head is random).
        global_pool: ``token`` or ``avg``; None = as stored (``token``).
        drop_path_rate: stochastic depth for fine-tuning; None = as stored.

    Returns:
        The model (in training mode, like any new module).

    Raises:
        CheckpointError: the file is missing, foreign, truncated or does not fit.
        BandError: a requested band that the weights never saw (named, with the
            available bands).
        ConfigError: an image size not divisible by the patch size.
    """
    file = Path(path)
    if pretrained:
        tensors, metadata, target = read_weights(file)
    else:
        metadata, target = read_weights_metadata(file)
    kwargs = encoder_kwargs(metadata)
    if drop_path_rate is not None:
        kwargs["drop_path_rate"] = float(drop_path_rate)
    model = ChannelViT(**kwargs, num_classes=0)
    if pretrained:
        state = timm_to_vit(tensors, metadata, source=str(file)) if target == "timm" else tensors
        expected = {k: v.shape for k, v in model.state_dict().items()}
        check_state(state, expected, what=f"weights {file} and {_describe(kwargs)}")
        model.load_state_dict(state, strict=True)
    if bands is not None:
        model = _select(model, bands, file)
    if img_size is not None:
        model.set_img_size(int(img_size))
    pool = global_pool or cast(GlobalPool, metadata.arch.get("global_pool", "token"))
    model.reset_classifier(num_classes, pool)
    extra = {**metadata.extra, "weights": file.name, "pretrained": bool(pretrained)}
    model.geomae_metadata = replace(  # type: ignore[assignment,attr-defined]
        metadata,
        bands=list(model.bands),
        groups=[list(g) for g in model.groups],
        stats=metadata.stats.select(model.bands, source=f"weights {file} stats"),
        patch_size=model.patch_size,
        img_size=_square(model.img_size),
        arch=model.arch_kwargs(),
        extra=extra,
    )
    log.info(
        "loaded %s backbone %s from %s over bands %s at %d px",
        "pretrained" if pretrained else "randomly initialized",
        _describe(kwargs),
        file,
        ",".join(model.bands),
        model.img_size[0],
    )
    return model
