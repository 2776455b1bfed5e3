"""Exceptions geomae raises for bad input.

Every error says which file, band or value is wrong and what was expected. The CLI
prints a :class:`GeomaeError` as one readable line and exits non-zero
(``GEOMAE_DEBUG=1`` shows the traceback). Each class also derives from the builtin
exception users would catch for that kind of problem.
"""

from __future__ import annotations

__all__ = [
    "BandError",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GeomaeError",
    "NonFiniteLossError",
    "ScenesFailedError",
    "StorageError",
]


class GeomaeError(Exception):
    """Base class of geomae's own errors."""


class DataError(GeomaeError, ValueError):
    """Input data is missing, unreadable or inconsistent (names the file)."""


class StorageError(DataError):
    """An object store cannot be used: no credentials, no bucket, or access denied."""


class ScenesFailedError(DataError):
    """Some scenes could not be cut; the others' parts are kept, the store is not written."""


class BandError(GeomaeError, ValueError):
    """A band is unknown, duplicated, missing from stats or from the weights."""


class CheckpointError(GeomaeError, ValueError):
    """A checkpoint or weight file is not geomae's, is truncated or does not fit."""


class ConfigError(GeomaeError, ValueError):
    """Configuration values contradict each other (e.g. patch size vs tile size)."""


class NonFiniteLossError(GeomaeError, FloatingPointError):
    """The training loss became NaN or infinite."""
