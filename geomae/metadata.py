"""Band and architecture metadata that travels with every checkpoint and export.

The same :class:`GeoMetadata` is written into a Lightning checkpoint (under the key
``"geomae"``), into a safetensors header (as JSON under ``"geomae"``) and into a JSON
sidecar, so that band order, normalization and geometry never have to be guessed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from geomae.bands import parse_bands, wavelengths
from geomae.stats import BandStats

__all__ = ["FORMAT_VERSION", "GeoMetadata"]

FORMAT_VERSION = 1
_REQUIRED = ("bands", "wavelengths_nm", "groups", "stats", "patch_size", "img_size", "arch")


@dataclass
class GeoMetadata:
    """Everything a consumer of geomae weights needs besides the tensors.

    Attributes:
        bands: canonical band names, in the channel order the model expects.
        groups: band groups (lists of band names), one patch embedding each.
        stats: normalization statistics of ``bands``.
        patch_size: patch size in pixels.
        img_size: image size in pixels the model was trained at.
        arch: architecture keyword arguments (embed_dim, depth, num_heads, ...).
        offset: value subtracted from raw DN before normalization (e.g. 1000 for L2A
            processing baseline 04.00), 0 if none.
        extra: free-form provenance (geomae version, source checkpoint, ...).
    """

    bands: list[str]
    groups: list[list[str]]
    stats: BandStats
    patch_size: int
    img_size: int
    arch: dict[str, Any]
    offset: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Canonicalize and cross-check bands, groups and stats."""
        self.bands = parse_bands(self.bands, keep_order=True)
        self.groups = [parse_bands(g, keep_order=True) for g in self.groups]
        grouped = [b for g in self.groups for b in g]
        if sorted(grouped) != sorted(self.bands):
            raise ValueError(
                f"band groups {self.groups} must cover bands {self.bands} exactly once"
            )
        self.stats = self.stats.select(self.bands, source="metadata stats")

    @property
    def wavelengths_nm(self) -> list[float]:
        """Central wavelengths of :attr:`bands`."""
        return wavelengths(self.bands)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (what goes in checkpoints and headers)."""
        return {
            "format_version": FORMAT_VERSION,
            "bands": list(self.bands),
            "wavelengths_nm": self.wavelengths_nm,
            "groups": [list(g) for g in self.groups],
            "stats": self.stats.to_dict(),
            "patch_size": int(self.patch_size),
            "img_size": int(self.img_size),
            "arch": dict(self.arch),
            "offset": float(self.offset),
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "metadata") -> GeoMetadata:
        """Inverse of :meth:`to_dict`.

        Raises:
            ValueError: naming the missing keys when ``data`` is incomplete.
        """
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{source}: geomae metadata lacks {missing}")
        return cls(
            bands=list(data["bands"]),
            groups=[list(g) for g in data["groups"]],
            stats=BandStats.from_dict(data["stats"], source=f"{source} stats"),
            patch_size=int(data["patch_size"]),
            img_size=int(data["img_size"]),
            arch=dict(data["arch"]),
            offset=float(data.get("offset", 0.0)),
            extra=dict(data.get("extra", {})),
        )

    def to_json(self) -> str:
        """Serialize to a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, *, source: str = "metadata") -> GeoMetadata:
        """Parse :meth:`to_json` output."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"{source}: metadata is not valid JSON ({err})") from None
        return cls.from_dict(data, source=source)
