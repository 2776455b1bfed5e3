"""What a benchmark ran with: the exact configuration, package versions, file hashes."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import platform
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

__all__ = ["file_sha256", "git_commit", "versions", "write_config", "write_versions"]

#: Distribution name -> key in ``versions.json``.
_PACKAGES = {
    "torch": "torch",
    "torchgeo": "torchgeo",
    "timm": "timm",
    "lightning": "lightning",
    "scikit-learn": "sklearn",
    "torchmetrics": "torchmetrics",
    "numpy": "numpy",
    "xarray": "xarray",
    "geomae": "geomae",
}


def file_sha256(path: Path, *, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def git_commit(folder: Path | None = None) -> str | None:
    """Commit of the git checkout holding ``folder`` (default: geomae's), or None."""
    where = folder or Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=where,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    text = out.stdout.strip()
    return text if out.returncode == 0 and text else None


def versions() -> dict[str, Any]:
    """Python and package versions (None for a package that is not installed)."""
    out: dict[str, Any] = {"python": platform.python_version()}
    for dist, key in _PACKAGES.items():
        try:
            out[key] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            out[key] = None
    out["git_commit"] = git_commit()
    return out


def write_versions(path: Path, extra: Mapping[str, Any] | None = None) -> None:
    """Write :func:`versions` (plus ``extra``) as JSON."""
    data = {**versions(), **dict(extra or {})}
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def write_config(path: Path, raw: Mapping[str, Any]) -> None:
    """Write the configuration used, as YAML, in its own key order."""
    Path(path).write_text(yaml.safe_dump(dict(raw), sort_keys=False))
