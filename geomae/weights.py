"""geomae weight files: a safetensors file plus a JSON sidecar, both carrying metadata.

A weight file ``NAME.safetensors`` holds the tensors of a ViT encoder and, in its
header (string values only, as safetensors requires)::

    {"geomae": GeoMetadata.to_json(), "format": "pt", "target": "geomae" | "timm"}

``target`` says whose parameter names the tensors use: ``geomae`` for
:class:`~geomae.models.vit.ChannelViT`, ``timm`` for a stock timm
``VisionTransformer`` (single band group only). ``NAME.json`` beside it holds the same
three entries, with the metadata as a JSON object, for people and tools that do not
read safetensors headers. Both files are written atomically (temporary file in the
same folder, then rename).
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, cast

import torch
from safetensors import safe_open
from safetensors.torch import save

from geomae.errors import CheckpointError, ConfigError
from geomae.fileio import atomic_write
from geomae.metadata import GeoMetadata

log = logging.getLogger(__name__)

__all__ = [
    "TARGETS",
    "WEIGHTS_SUFFIX",
    "Target",
    "is_safetensors",
    "read_weights_file",
    "read_weights_header",
    "sidecar_path",
    "write_weights",
]

Target = Literal["geomae", "timm"]
TARGETS: tuple[str, ...] = ("geomae", "timm")
WEIGHTS_SUFFIX = ".safetensors"
#: Largest safetensors header geomae accepts (the format's own limit is 100 MB).
_MAX_HEADER = 100_000_000


def sidecar_path(path: str | os.PathLike[str]) -> Path:
    """The JSON sidecar of a weight file: same name, suffix ``.json``."""
    return Path(path).with_suffix(".json")


def is_safetensors(path: str | os.PathLike[str]) -> bool:
    """True if the file starts like a safetensors file (8-byte header length, then ``{``).

    Args:
        path: an existing file.
    """
    with open(path, "rb") as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    (size,) = struct.unpack("<Q", head[:8])
    return 0 < size <= _MAX_HEADER and head[8:9] == b"{"


def _own_storage(tensor: torch.Tensor) -> torch.Tensor:
    """A contiguous tensor that owns its whole storage (safetensors refuses shared ones)."""
    t = tensor.detach().contiguous()
    if t.untyped_storage().nbytes() != t.numel() * t.element_size():
        t = t.clone()
    return t


def write_weights(
    path: str | os.PathLike[str],
    tensors: Mapping[str, torch.Tensor],
    metadata: GeoMetadata,
    *,
    target: Target,
) -> tuple[Path, Path]:
    """Write ``tensors`` as a safetensors file and its JSON sidecar.

    Args:
        path: output file, ending in ``.safetensors``; its folder is created.
        tensors: parameter name -> tensor (made contiguous; shared storage is copied).
        metadata: what goes into the header and the sidecar.
        target: ``geomae`` or ``timm`` (whose parameter names ``tensors`` uses).

    Returns:
        ``(weights file, sidecar)``.

    Raises:
        ConfigError: ``path`` does not end in ``.safetensors``, or an unknown target.
    """
    out = Path(path)
    if out.suffix != WEIGHTS_SUFFIX:
        raise ConfigError(
            f"weights file {out} must end in {WEIGHTS_SUFFIX} (its JSON sidecar takes "
            f"the same name with .json)"
        )
    if target not in TARGETS:
        raise ConfigError(f"unknown weights target {target!r}; expected one of {list(TARGETS)}")
    header = {"geomae": metadata.to_json(), "format": "pt", "target": target}
    data = {name: _own_storage(t) for name, t in tensors.items()}
    atomic_write(out, lambda f: f.write(save(data, metadata=header)))
    sidecar = sidecar_path(out)
    text = json.dumps(
        {"format": "pt", "target": target, "geomae": metadata.to_dict()}, indent=2, sort_keys=True
    )
    atomic_write(sidecar, lambda f: f.write((text + "\n").encode("utf-8")))
    return out, sidecar


def _open_error(path: Path, err: Exception) -> CheckpointError:
    detail = " ".join(str(err).split()) or type(err).__name__
    return CheckpointError(
        f"weights file {path} cannot be read as safetensors: {detail} (not a safetensors "
        "file, or truncated or corrupt)"
    )


def _parse_header(path: Path, header: Mapping[str, str] | None) -> tuple[GeoMetadata, Target]:
    header = dict(header or {})
    if "geomae" not in header:
        keys = sorted(header)
        raise CheckpointError(
            f"weights file {path} is not a geomae export: its safetensors header has no "
            f"'geomae' metadata (header keys: {keys}); convert a MAE checkpoint with "
            "`geomae convert`"
        )
    target = header.get("target", "geomae")
    if target not in TARGETS:
        raise CheckpointError(
            f"weights file {path} names target {target!r}; expected one of {list(TARGETS)}"
        )
    try:
        metadata = GeoMetadata.from_json(header["geomae"], source=f"weights file {path}")
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(
            f"weights file {path} has incomplete or invalid geomae metadata: {err}"
        ) from err
    return metadata, cast(Target, target)


def read_weights_header(path: str | os.PathLike[str]) -> tuple[GeoMetadata, Target]:
    """Read only the metadata of a weight file (no tensor is loaded).

    Args:
        path: a ``.safetensors`` file written by :func:`write_weights`.

    Returns:
        ``(metadata, target)``.

    Raises:
        CheckpointError: missing file, not safetensors / truncated, or no geomae metadata.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"weights file {file} does not exist")
    try:
        with safe_open(str(file), framework="pt") as f:
            header = f.metadata()
    except Exception as err:  # safetensors raises its own error types on foreign bytes
        raise _open_error(file, err) from err
    return _parse_header(file, header)


def read_weights_file(
    path: str | os.PathLike[str],
) -> tuple[dict[str, torch.Tensor], GeoMetadata, Target]:
    """Read the tensors and the metadata of a weight file.

    Args:
        path: a ``.safetensors`` file written by :func:`write_weights`.

    Returns:
        ``(tensors on the CPU, metadata, target)``.

    Raises:
        CheckpointError: missing file, not safetensors / truncated, or no geomae metadata.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"weights file {file} does not exist")
    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            header = f.metadata()
            metadata, target = _parse_header(file, header)
            tensors: dict[str, Any] = {name: f.get_tensor(name) for name in f.keys()}
    except CheckpointError:
        raise
    except Exception as err:  # safetensors raises its own error types on foreign bytes
        raise _open_error(file, err) from err
    return tensors, metadata, target
