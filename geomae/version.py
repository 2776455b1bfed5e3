"""The installed version of geomae, recorded in every checkpoint, weight file and store."""

from importlib.metadata import PackageNotFoundError, version

__all__ = ["__version__"]

try:
    __version__ = version("geomae")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"
