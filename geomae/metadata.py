"""Band and architecture metadata that travels with every checkpoint and export.

The same :class:`GeoMetadata` is written into a Lightning checkpoint (under the key
``"geomae"``), into a safetensors header (as JSON under ``"geomae"``) and into a JSON
sidecar, so that band order, normalization and geometry never have to be guessed.

Format version 2 added ``normalization`` (z-score statistics, or a scale such as
``x / 10000``; see :mod:`geomae.normalization`), ``processing_level`` (``L1C`` /
``L2A`` / unknown) and ``source`` (where imported weights came from, with the source
file's SHA-256). Version-1 files still load: their normalization is the z-score of
their ``stats``, their level and source are unknown.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from geomae.bands import parse_bands, wavelengths
from geomae.errors import ConfigError
from geomae.levels import parse_level
from geomae.normalization import Normalization
from geomae.stats import BandStats

__all__ = ["FORMAT_VERSION", "GeoMetadata"]

FORMAT_VERSION = 2
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
        normalization: what the model expects after the offset: z-score with
            ``stats``, or ``x / scale`` (then ``stats`` holds the equivalent
            ``mean 0, std scale`` of every band), or nothing.
        processing_level: ``L1C`` or ``L2A`` data the model was trained on, None if
            unknown.
        source: where the weights came from: ``kind`` (``geomae``, ``timm-vit``,
            ``satmae``), ``file``, ``sha256`` of that file, ``preset``, ... (empty
            for geomae's own checkpoints and older files).
    """

    bands: list[str]
    groups: list[list[str]]
    stats: BandStats
    patch_size: int
    img_size: int
    arch: dict[str, Any]
    offset: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    normalization: Normalization = field(default_factory=Normalization)
    processing_level: str | None = None
    source: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Canonicalize and cross-check bands, groups, stats, normalization and level."""
        self.bands = parse_bands(self.bands, keep_order=True)
        self.groups = [parse_bands(g, keep_order=True) for g in self.groups]
        grouped = [b for g in self.groups for b in g]
        if sorted(grouped) != sorted(self.bands):
            raise ValueError(
                f"band groups {self.groups} must cover bands {self.bands} exactly once"
            )
        self.stats = self.stats.select(self.bands, source="metadata stats")
        try:
            self.processing_level = parse_level(self.processing_level)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        contradictions = self.normalization.matches(self.stats)
        if contradictions:
            raise ValueError(
                f"normalization {self.normalization.spec()} contradicts the stats of "
                f"band(s): {'; '.join(contradictions)}"
            )

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
            "normalization": self.normalization.to_dict(),
            "processing_level": self.processing_level,
            "source": dict(self.source),
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
            normalization=Normalization.from_dict(data.get("normalization"), source=source),
            processing_level=data.get("processing_level"),
            source=dict(data.get("source") or {}),
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
