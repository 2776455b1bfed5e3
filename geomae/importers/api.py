"""``geomae import``: published ViT weights -> a geomae weight file with band metadata.

Sources:

- ``timm-vit``: any timm ``VisionTransformer`` state dict (``--bands`` required, in
  channel order; see :mod:`geomae.importers.timm_vit`);
- a preset name (``ssl4eo-s12-vit-small-patch16-mae``, ...; see
  :mod:`geomae.importers.presets`): a timm ViT whose bands, normalization, level and
  architecture are known;
- ``satmae``: SatMAE / SatMAE++ group-channel checkpoints (:mod:`geomae.importers.satmae`);
- ``geomae``: geomae's own MAE checkpoints, exactly as ``geomae convert`` converts
  them, plus the source file's hash (and ``--level`` if given).

Every check runs before anything is written: the output name, the source, options
that contradict a preset, the file, its keys and shapes (the patch embedding against
``--bands``), the normalization statistics against the bands; then the imported
ChannelViT is built and loaded with ``strict=True``, and only then is the file written
(atomically, with its JSON sidecar). The result loads with
:func:`geomae.load_backbone` like any geomae export.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from geomae.bands import parse_bands
from geomae.convert import mae_to_vit, read_mae_checkpoint, resolve_target, vit_metadata
from geomae.errors import ConfigError
from geomae.importers.common import Imported, build_model, imported_metadata
from geomae.importers.presets import PRESETS, Preset, get_preset
from geomae.importers.reading import file_sha256, find_encoder, read_state_dict
from geomae.importers.satmae import SATMAE_BANDS, SATMAE_GROUPS, satmae_to_channel_vit
from geomae.importers.timm_vit import timm_to_channel_vit
from geomae.levels import parse_level
from geomae.metadata import GeoMetadata
from geomae.normalization import parse_normalization
from geomae.weights import WEIGHTS_SUFFIX, Target, write_weights

log = logging.getLogger(__name__)

__all__ = ["SOURCES", "ImportOptions", "PreparedImport", "import_weights", "prepare_import"]

#: Import sources besides the presets.
SOURCES: tuple[str, ...] = ("timm-vit", "satmae", "geomae")


@dataclass(frozen=True)
class ImportOptions:
    """What the user says about the weights (None: not given).

    Attributes:
        bands: input bands in channel order (required for ``timm-vit``).
        normalization: ``zscore:STATS.yaml``, ``scale:FACTOR`` or ``none`` (required
            for ``timm-vit`` and ``satmae``).
        level: ``L1C`` or ``L2A`` of the pretraining data.
        img_size: image size of the result (the position embedding is resampled).
        arch: timm model name (``timm-vit``).
        num_heads: attention heads when no ``arch`` names them.
        prefix: key prefix of the encoder in the file (``""``: none).
        offset: DN offset subtracted before normalization (default 0).
        groups: band groups (``satmae``; default SatMAE's three).
    """

    bands: str | Sequence[str] | None = None
    normalization: str | None = None
    level: str | None = None
    img_size: int | None = None
    arch: str | None = None
    num_heads: int | None = None
    prefix: str | None = None
    offset: float | None = None
    groups: Sequence[Sequence[str]] | None = None

    def given(self) -> list[str]:
        """Names of the options that were given."""
        return [k for k, v in vars(self).items() if v is not None]


@dataclass
class PreparedImport:
    """An import ready to be written.

    Attributes:
        tensors: the state dict to write.
        metadata: its metadata.
        target: parameter names (``geomae``; ``timm`` for a single-group geomae MAE).
    """

    tensors: dict[str, torch.Tensor]
    metadata: GeoMetadata
    target: Target


def _resolve_source(source: str) -> tuple[str, Preset | None]:
    key = source.strip().lower()
    if key in SOURCES:
        return key, None
    if key in PRESETS:
        preset = get_preset(key)
        return preset.source, preset
    raise ConfigError(
        f"unknown import source {source!r}; expected one of {', '.join(SOURCES)} or a "
        f"preset: {', '.join(PRESETS)}"
    )


def _apply_preset(preset: Preset, options: ImportOptions) -> ImportOptions:
    """Fill the options from the preset; refuse those that contradict it."""
    problems = []
    if options.bands is not None:
        given = parse_bands(options.bands, keep_order=True)
        if given != list(preset.bands):
            problems.append(f"--bands {','.join(given)} (preset: {','.join(preset.bands)})")
    if options.normalization is not None:
        norm, _ = parse_normalization(options.normalization)
        if norm != preset.normalization:
            problems.append(
                f"--normalization {options.normalization} (preset: "
                f"{preset.normalization.spec()}, i.e. {preset.normalization.describe()})"
            )
    level = parse_level(options.level, what="--level")
    if level is not None and level != preset.level:
        problems.append(f"--level {level} (preset: {preset.level})")
    if options.arch is not None and options.arch != preset.arch:
        problems.append(f"--arch {options.arch} (preset: {preset.arch})")
    if options.offset not in (None, 0.0):
        problems.append(f"--offset {options.offset:g} (preset: 0)")
    if options.groups is not None:
        problems.append("--groups (a timm ViT has one band group)")
    if problems:
        raise ConfigError(
            f"preset {preset.name} ({preset.torchgeo}) contradicts the options: "
            + "; ".join(problems)
            + ". Leave them out (the preset knows them) or import with timm-vit"
        )
    return replace(
        options,
        bands=list(preset.bands),
        normalization=preset.normalization.spec(),
        level=preset.level,
        arch=preset.arch,
        offset=0.0,
    )


def _check_output(out: Path) -> None:
    if out.suffix != WEIGHTS_SUFFIX:
        raise ConfigError(
            f"output {out} must end in {WEIGHTS_SUFFIX} (its JSON sidecar takes the same "
            "name with .json)"
        )


def _require(options: ImportOptions, kind: str, *names: str) -> None:
    missing = [n for n in names if getattr(options, n) is None]
    if missing:
        flags = ", ".join("--" + n.replace("_", "-") for n in missing)
        raise ConfigError(
            f"importing {kind} weights needs {flags}: the file does not say "
            + (
                "which band each input channel is"
                if "bands" in missing
                else "how its inputs were normalized"
            )
            + " (normalization: zscore:STATS.yaml, scale:10000 or none)"
        )


def _prepare_geomae(file: Path, options: ImportOptions, sha256: str) -> PreparedImport:

    refused = [n for n in options.given() if n != "level"]
    if refused:
        flags = ", ".join("--" + n.replace("_", "-") for n in refused)
        raise ConfigError(
            f"a geomae MAE checkpoint carries its own bands, normalization and architecture; "
            f"{flags} cannot be applied to it (only --level)"
        )
    state, metadata = read_mae_checkpoint(file)
    target = resolve_target("auto", metadata)
    tensors = mae_to_vit(state, metadata, target=target)
    meta = vit_metadata(metadata, target=target, source=file.name)
    level = parse_level(options.level, what="--level")
    meta = replace(
        meta,
        processing_level=level if level is not None else meta.processing_level,
        source={"kind": "geomae", "file": file.name, "sha256": sha256},
    )
    return PreparedImport(tensors=tensors, metadata=meta, target=target)


def _convert(
    kind: str, state: dict[str, torch.Tensor], options: ImportOptions, source: str
) -> tuple[Imported, str]:
    anchor_state, prefix = find_encoder(state, prefix=options.prefix, source=source)
    if kind == "timm-vit":
        assert options.bands is not None
        imported = timm_to_channel_vit(
            anchor_state,
            bands=parse_bands(options.bands, keep_order=True),
            arch=options.arch,
            num_heads=options.num_heads,
            source=source,
        )
    else:
        imported = satmae_to_channel_vit(
            anchor_state,
            bands=parse_bands(options.bands, keep_order=True)
            if options.bands is not None
            else SATMAE_BANDS,
            groups=options.groups if options.groups is not None else SATMAE_GROUPS,
            num_heads=options.num_heads,
            source=source,
        )
    return imported, prefix


def prepare_import(
    source: str, weights: str | os.PathLike[str], options: ImportOptions | None = None
) -> PreparedImport:
    """Read, check and convert published weights (nothing is written).

    Args:
        source: ``timm-vit``, ``satmae``, ``geomae`` or a preset name.
        weights: the published file.
        options: what the user says about it.

    Returns:
        The tensors, metadata and target to write.

    Raises:
        ConfigError: an unknown source or preset, options that contradict a preset or
            are missing, an image size not divisible by the patch size.
        BandError: a patch embedding whose channel count differs from the bands,
            statistics that lack a band.
        CheckpointError: an unreadable or foreign file, a missing SatMAE group, shapes
            that do not fit.
        FileNotFoundError: a statistics file that does not exist.
    """
    options = options or ImportOptions()
    kind, preset = _resolve_source(source)
    if preset is not None:
        options = _apply_preset(preset, options)
    file = Path(weights)
    what = f"weights file {file}"
    if kind == "geomae":
        return _prepare_geomae(file, options, file_sha256(file) if file.is_file() else "")
    _require(options, kind, *(("bands",) if kind == "timm-vit" else ()), "normalization")
    assert options.normalization is not None
    normalization, stats = parse_normalization(options.normalization)
    level = parse_level(options.level, what="--level")
    state = read_state_dict(file)
    imported, prefix = _convert(kind, state, options, what)
    model = build_model(imported, source=what)
    if options.img_size is not None and int(options.img_size) != model.img_size[0]:
        if int(options.img_size) % model.patch_size:
            raise ConfigError(
                f"--img-size {options.img_size} is not a multiple of the patch size "
                f"{model.patch_size}"
            )
        log.info(
            "resampling the position embedding from %d to %d px",
            model.img_size[0],
            options.img_size,
        )
        model.set_img_size(int(options.img_size))
    sha256 = file_sha256(file)
    if preset is not None and preset.sha256_prefix and not sha256.startswith(preset.sha256_prefix):
        log.warning(
            "%s: SHA-256 %s... does not start with %s of the published %s (re-saved, or another "
            "file?)",
            what,
            sha256[:12],
            preset.sha256_prefix,
            preset.file_name,
        )
    provenance: dict[str, Any] = {
        "kind": kind,
        "file": file.name,
        "sha256": sha256,
        "preset": preset.name if preset else None,
        "prefix": prefix,
        **imported.info,
    }
    if preset is not None:
        provenance.update(torchgeo=preset.torchgeo, publication=preset.publication)
    meta = imported_metadata(
        model,
        normalization=normalization,
        stats=stats,
        level=level,
        offset=float(options.offset or 0.0),
        source=provenance,
    )
    return PreparedImport(tensors=dict(model.state_dict()), metadata=meta, target="geomae")


def import_weights(
    source: str,
    weights: str | os.PathLike[str],
    out: str | os.PathLike[str],
    options: ImportOptions | None = None,
) -> Path:
    """Import published weights into ``out`` (``.safetensors`` + JSON sidecar).

    Args:
        source: ``timm-vit``, ``satmae``, ``geomae`` or a preset name.
        weights: the published file.
        out: the weight file to write, ending in ``.safetensors``.
        options: what the user says about the weights.

    Returns:
        The written file.

    Raises:
        ConfigError, BandError, CheckpointError, FileNotFoundError: see
            :func:`prepare_import`; nothing is written then.
    """
    target_path = Path(out)
    _check_output(target_path)
    prepared = prepare_import(source, weights, options)
    path, sidecar = write_weights(
        target_path, prepared.tensors, prepared.metadata, target=prepared.target
    )
    meta = prepared.metadata
    log.info(
        "imported %s (%s) -> %s and %s: bands %s, groups %s, %s, level %s",
        weights,
        source,
        path,
        sidecar,
        ",".join(meta.bands),
        meta.groups,
        meta.normalization.describe(),
        meta.processing_level or "unknown",
    )
    return path
