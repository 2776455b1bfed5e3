"""Checkpoint IO that writes atomically and loads safely.

Lightning's ``TorchCheckpointIO`` (2.6) serializes the checkpoint into memory and
writes it inside an fsspec transaction. On a local disk that transaction writes a
temporary file made by ``tempfile.mkstemp()`` in ``$TMPDIR`` and moves it over the
target on commit. The move is an atomic rename only when ``$TMPDIR`` and the checkpoint
folder share a filesystem; otherwise (``/tmp`` on a local disk, checkpoints on a network
or parallel filesystem, the usual cluster layout) ``shutil.move`` copies the bytes into
the target path, and a kill during that copy leaves a truncated ``last.ckpt``. A kill
also leaves a full-size orphan in ``$TMPDIR``, and nothing is fsynced.

:class:`AtomicCheckpointIO` writes the temporary file in the checkpoint's own folder,
fsyncs it, renames it over the target with :func:`os.replace` (atomic on POSIX and
Windows) and fsyncs the folder, so ``last.ckpt`` is always either the previous or the
new complete checkpoint. Temporary names never contain ``last`` (Lightning's
``ckpt_path="last"`` picks any file with ``last`` in its name) nor end in ``.ckpt``.
Remote URLs (``s3://``, ...) keep Lightning's writer: object-store uploads are atomic.

Loading defaults to ``torch.load(weights_only=True)`` (no arbitrary pickle), and every
failure (truncated file, not a checkpoint, refused pickle) becomes a
:class:`~geomae.errors.CheckpointError` that names the file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import re
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.fabric.utilities.types import _PATH

from geomae.errors import CheckpointError
from geomae.fileio import atomic_write

__all__ = ["PARTIAL_PREFIX", "AtomicCheckpointIO", "atomic_torch_save", "safe_torch_load"]

log = logging.getLogger(__name__)

#: Prefix of the temporary files; the host and process id follow it.
PARTIAL_PREFIX = ".geomae-partial-"


def _is_local(path: _PATH) -> bool:
    """True for plain paths and ``file://`` URLs."""
    text = os.fspath(path)
    return "://" not in text or text.startswith("file://")


def _local_path(path: _PATH) -> Path:
    text = os.fspath(path)
    return Path(text.removeprefix("file://"))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(directory: Path) -> list[Path]:
    """Delete temporary files that killed writers on this host left in ``directory``.

    Args:
        directory: a checkpoint folder.

    Returns:
        The files removed.
    """
    prefix = f"{PARTIAL_PREFIX}{socket.gethostname()}-"
    removed = []
    for path in directory.glob(f"{PARTIAL_PREFIX}*"):
        if not path.name.startswith(prefix):
            continue  # another host's writer: not ours to judge
        pid_text = path.name[len(prefix) :].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed.append(path)
    if removed:
        log.info(
            "removed %d partial checkpoint file(s) of killed runs in %s", len(removed), directory
        )
    return removed


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> Path:
    """``torch.save`` to ``path`` so that readers only ever see a complete file.

    Writes ``<folder>/.geomae-partial-<host>-<pid>-<random>.tmp``, fsyncs it, renames it
    over ``path`` and fsyncs the folder. On any error (or interrupt) the temporary file
    is removed and ``path`` keeps its previous content.

    Args:
        obj: anything ``torch.save`` accepts.
        path: the target file; its folder is created if needed.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target.parent)
    atomic_write(
        target,
        lambda f: torch.save(obj, f),
        prefix=f"{PARTIAL_PREFIX}{socket.gethostname()}-{os.getpid()}-",
        suffix=".tmp",
    )
    return target


def _default_map_location(storage: Any, location: str) -> Any:
    return storage


def safe_torch_load(
    path: Path,
    *,
    source: str,
    expected: str,
    refused_hint: str,
    allowed: Sequence[type] = (),
) -> Any:
    """``torch.load(weights_only=True)`` on the CPU, every failure as a CheckpointError.

    Args:
        path: the pickle to load.
        source: the file as messages name it (``"weights file <path>"``).
        expected: what the file should have been, for the message on unreadable bytes
            (``"a PyTorch checkpoint"``).
        refused_hint: the sentence after the refused object's name, on what to do.
        allowed: globals the unpickler may load besides tensors and plain containers.

    Returns:
        The unpickled object.

    Raises:
        CheckpointError: objects that safe loading refuses, or bytes that do not load
            (truncated, corrupt or foreign).
    """
    try:
        with torch.serialization.safe_globals(list(allowed)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch.load fails in many ways on foreign or cut bytes
        text = str(err)
        refused = re.search(r"WeightsUnpickler error: (.+?)(?:\. |\n|$)", text)
        if refused:
            raise CheckpointError(
                f"{source} holds Python objects that safe loading "
                f"(torch.load with weights_only=True) refuses: {refused.group(1)}. "
                f"{refused_hint}"
            ) from err
        first = text.strip().splitlines()[0] if text.strip() else type(err).__name__
        raise CheckpointError(
            f"{source} cannot be read: it is truncated or corrupt, or not {expected} "
            f"({type(err).__name__}: {first})"
        ) from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint IO: atomic local writes, ``weights_only`` loads, clear errors.

    The ``geomae`` CLI installs it unless the configuration names another checkpoint IO
    plugin. In Python: ``Trainer(plugins=[AtomicCheckpointIO()])``.
    """

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: _PATH, storage_options: Any | None = None
    ) -> None:
        """Write ``checkpoint`` to ``path`` atomically (remote URLs: Lightning's writer).

        Args:
            checkpoint: the state Lightning dumps.
            path: target file or URL.
            storage_options: not supported (as in ``TorchCheckpointIO``).

        Raises:
            TypeError: if ``storage_options`` is given.
        """
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__}.save_checkpoint does not take storage_options")
        if not _is_local(path):
            super().save_checkpoint(checkpoint, path)
            return
        atomic_torch_save(checkpoint, _local_path(path))

    def load_checkpoint(
        self,
        path: _PATH,
        map_location: Callable[..., Any] | None = _default_map_location,
        weights_only: bool | None = None,
    ) -> dict[str, Any]:
        """Load a checkpoint with ``weights_only=True`` unless asked otherwise.

        Args:
            path: checkpoint file or URL.
            map_location: as in :func:`torch.load`.
            weights_only: None (default) means True: only tensors and plain Python
                containers are unpickled. Pass False only for checkpoints you trust.

        Returns:
            The checkpoint dictionary.

        Raises:
            FileNotFoundError: if ``path`` does not exist.
            CheckpointError: if the file is truncated, not a PyTorch checkpoint, not a
                dictionary, or holds objects that ``weights_only`` loading refuses.
        """
        safe = True if weights_only is None else bool(weights_only)
        try:
            checkpoint = super().load_checkpoint(path, map_location=map_location, weights_only=safe)
        except FileNotFoundError:
            raise
        except pickle.UnpicklingError as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            if safe and "weights_only" in str(err):
                raise CheckpointError(
                    f"checkpoint {path} holds Python objects that safe loading "
                    f"(weights_only=True) refuses: {first}. Only if you trust its source, "
                    "load it in Python with Trainer.fit(..., weights_only=False)"
                ) from err
            raise CheckpointError(
                f"checkpoint {path} cannot be read: {first} (truncated or not a PyTorch checkpoint)"
            ) from err
        except Exception as err:  # torch.load fails in many ways on foreign bytes
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(
                f"checkpoint {path} cannot be read: {first} (truncated, corrupt or not a "
                "PyTorch checkpoint; a checkpoint written by geomae is replaced atomically, "
                "so this one was cut by something else, e.g. a copy)"
            ) from err
        if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
            kind = type(checkpoint).__name__
            keys = list(checkpoint)[:8] if isinstance(checkpoint, dict) else []
            raise CheckpointError(
                f"checkpoint {path} is not a Lightning training checkpoint (a {kind} with "
                f"keys {keys}, no 'state_dict'); pass a file written by `geomae fit`"
            )
        return checkpoint
