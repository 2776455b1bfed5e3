"""Atomic file writes: a crash or kill mid-write never leaves a partial target file.

The data goes to a temporary file beside the target (same filesystem), is flushed and
fsynced, gets the permissions a plain ``open()`` would give it (``mkstemp`` creates
files readable by the owner only), and is renamed over the target with
:func:`os.replace`, which is atomic on POSIX; the folder is then fsynced so the
rename survives a power loss.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """Persist a rename (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(
    target: str | os.PathLike[str],
    write: Callable[[BinaryIO], object],
    *,
    prefix: str | None = None,
    suffix: str = ".partial",
) -> Path:
    """Write ``target`` atomically.

    Args:
        target: the file to create or replace; its folder is created if needed.
        write: called with the open temporary file (binary mode) to write the content.
        prefix: temporary file name prefix (default ``.<target name>.``).
        suffix: temporary file name suffix.

    Returns:
        ``target`` as a :class:`~pathlib.Path`.
    """
    path = Path(target)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(
        prefix=prefix if prefix is not None else f".{path.name}.", suffix=suffix, dir=path.parent
    )
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _default_mode())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)
    return path
