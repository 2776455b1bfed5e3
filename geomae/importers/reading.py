"""Reading published weight files: formats, wrappers and key prefixes.

A published checkpoint is a ``.safetensors`` file or a PyTorch pickle (``.pth``,
``.pt``, ``.ckpt``, ...). Pickles load with ``torch.load(weights_only=True)``: tensors
and plain containers only, plus ``argparse.Namespace`` (the training arguments that
MAE-style training scripts, SatMAE's among them, save beside the weights: a bag of
values, never code). Anything else is refused unexecuted.

The state dict may be wrapped (``{"state_dict": ...}``, ``{"model": ...}``,
``{"teacher": ...}``, ...) and its keys prefixed (``module.`` from DataParallel,
``backbone.``, ``model.``, ``encoder.``, ``_orig_mod.`` from ``torch.compile``).
:func:`find_encoder` finds the encoder by its anchor key (``cls_token``): the prefix
in front of it is stripped, and keys outside that prefix (a projection head, a
momentum encoder) are dropped and logged. Two candidate encoders in one file (MoCo's
base and momentum encoders, DINO's student and teacher) must be told apart with an
explicit prefix.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from geomae.checkpoint_io import safe_torch_load
from geomae.errors import CheckpointError
from geomae.weights import is_safetensors

log = logging.getLogger(__name__)

__all__ = [
    "WRAPPER_KEYS",
    "file_sha256",
    "find_encoder",
    "read_state_dict",
    "unwrap",
]

#: Keys under which training scripts store the model's state dict, in lookup order.
WRAPPER_KEYS: tuple[str, ...] = (
    "state_dict",
    "model",
    "model_state_dict",
    "teacher",
    "module",
    "net",
    "encoder",
)
_MAX_LISTED = 8


def _listing(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_LISTED])
    return shown + (f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else "")


def file_sha256(path: str | os.PathLike[str], *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes (recorded as the source of an import)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def unwrap(obj: Any, *, source: str) -> dict[str, torch.Tensor]:
    """The state dict inside a checkpoint object (see the module docstring).

    Non-tensor entries beside the tensors of a state dict (e.g. an ``epoch`` saved
    into it) are dropped.

    Raises:
        CheckpointError: no mapping of tensors found (what was found is named).
    """
    current = obj
    path: list[str] = []
    for _ in range(len(WRAPPER_KEYS) + 1):
        if not isinstance(current, Mapping):
            break
        nested = [k for k in WRAPPER_KEYS if isinstance(current.get(k), Mapping)]
        if nested:
            path.append(nested[0])
            current = current[nested[0]]
            continue
        tensors = {str(k): v for k, v in current.items() if isinstance(v, torch.Tensor)}
        if tensors:
            if path:
                log.info("%s: weights found under %s", source, "/".join(path))
            return tensors
        break
    found = (
        f"top-level keys {_listing([str(k) for k in obj])}"
        if isinstance(obj, Mapping)
        else f"a {type(obj).__name__}"
    )
    raise CheckpointError(
        f"{source} holds no state dict of tensors ({found}); expected a state dict, or one "
        f"under one of the keys {list(WRAPPER_KEYS)}"
    )


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """Read the state dict of a ``.safetensors`` or PyTorch weight file (on the CPU).

    Raises:
        CheckpointError: missing, truncated or foreign file, refused objects, or no
            state dict inside.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"weights file {file} does not exist")
    if is_safetensors(file):
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(file), device="cpu"))
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(
                f"weights file {file} cannot be read as safetensors: {err} (truncated or corrupt)"
            ) from err
    source = f"weights file {file}"
    checkpoint = safe_torch_load(
        file,
        source=source,
        expected="a PyTorch or safetensors file",
        refused_hint="Save only the state dict (torch.save(model.state_dict(), ...)) and "
        "import that",
        allowed=[argparse.Namespace],
    )
    return unwrap(checkpoint, source=source)


def find_encoder(
    state: Mapping[str, torch.Tensor],
    *,
    anchor: str = "cls_token",
    prefix: str | None = None,
    source: str,
) -> tuple[dict[str, torch.Tensor], str]:
    """Strip the key prefix of the encoder and drop what lies outside it.

    Args:
        state: the file's state dict.
        anchor: a key every encoder has (without prefix).
        prefix: the prefix to use (``""`` for none); None finds it from ``anchor``.
        source: the file, for messages.

    Returns:
        ``(encoder state dict without the prefix, the prefix)``.

    Raises:
        CheckpointError: no key ends in ``anchor`` (or none under ``prefix``), or several
            candidate prefixes and no ``prefix`` given (they are listed).
    """
    if prefix is None:
        candidates = sorted(
            {k[: -len(anchor)] for k in state if k == anchor or k.endswith("." + anchor)}
        )
        if not candidates:
            keys = list(state)
            raise CheckpointError(
                f"{source} has no '{anchor}' key: not a ViT with a class token ({len(keys)} "
                f"keys, e.g. {_listing(keys[:5])})"
            )
        if len(candidates) > 1:
            shown = ", ".join(repr(c) for c in candidates)
            raise CheckpointError(
                f"{source} holds {len(candidates)} encoders (key prefixes {shown}); choose "
                "one with --prefix (e.g. the teacher or the base encoder)"
            )
        prefix = candidates[0]
    out = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
    if anchor not in out:
        raise CheckpointError(f"{source} has no '{prefix}{anchor}' key under prefix {prefix!r}")
    dropped = sorted({k.split(".")[0] for k in state if not k.startswith(prefix)})
    if prefix:
        log.info("%s: encoder keys under prefix %r", source, prefix)
    if dropped:
        log.info("%s: ignoring keys outside the encoder: %s", source, _listing(dropped))
    return out, prefix
