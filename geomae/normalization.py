"""How raw Sentinel-2 digital numbers become model input: the weights' contract.

Every geomae weight file says how its inputs must be normalized. After the DataModule
subtracts its DN ``offset`` (the L2A offset of processing baseline 04.00, or 0):

- ``zscore``: ``(x - mean_b) / std_b`` with per-band statistics (geomae's own MAEs,
  ``geomae stats``);
- ``scale``: ``x / scale`` for every band (SSL4EO-S12 and most published Sentinel-2
  encoders: ``x / 10000``, reflectance);
- ``none``: ``x`` as it is.

The DataModules apply every kind through the same per-band normalization: a ``scale``
is the statistics ``mean 0, std scale`` of each band, ``none`` is ``mean 0, std 1``
(:meth:`Normalization.band_stats`). So whatever normalizes with statistics today
(:meth:`~geomae.datamodules.base.GeomaeDataModule.set_stats`, the benchmark)
normalizes imported weights correctly, and a user's statistics that differ are
reported band by band.

On the command line a normalization is written ``zscore:STATS.yaml``, ``scale:10000``
or ``none`` (:func:`parse_normalization`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast, get_args

from geomae.errors import ConfigError
from geomae.stats import BandStat, BandStats

__all__ = [
    "NORMALIZATION_KINDS",
    "NormKind",
    "Normalization",
    "parse_normalization",
]

NormKind = Literal["zscore", "scale", "none"]
NORMALIZATION_KINDS: tuple[str, ...] = get_args(NormKind)
_SPEC_HELP = "zscore:STATS.yaml, scale:FACTOR (e.g. scale:10000) or none"


@dataclass(frozen=True)
class Normalization:
    """The normalization a model expects (see the module docstring).

    Attributes:
        kind: ``zscore``, ``scale`` or ``none``.
        scale: the divisor of ``scale`` (1 for the other kinds).
    """

    kind: NormKind = "zscore"
    scale: float = 1.0

    def __post_init__(self) -> None:
        """Validate the kind and the scale."""
        if self.kind not in NORMALIZATION_KINDS:
            raise ConfigError(
                f"unknown normalization kind {self.kind!r}; expected one of "
                f"{list(NORMALIZATION_KINDS)}"
            )
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ConfigError(f"normalization scale must be a positive number, got {self.scale}")
        if self.kind != "scale" and self.scale != 1.0:
            raise ConfigError(f"a {self.kind} normalization takes no scale (got {self.scale})")

    def spec(self) -> str:
        """The command-line spelling: ``zscore``, ``scale:10000`` or ``none``."""
        return f"scale:{self.scale:g}" if self.kind == "scale" else self.kind

    def describe(self) -> str:
        """Human-readable formula, e.g. ``x / 10000`` or ``(x - mean) / std per band``."""
        if self.kind == "scale":
            return f"x / {self.scale:g}"
        if self.kind == "none":
            return "x unchanged"
        return "(x - mean) / std per band"

    def band_stats(self, bands: Sequence[str], stats: BandStats | None = None) -> BandStats:
        """The per-band statistics that apply this normalization.

        Args:
            bands: canonical band names.
            stats: the z-score statistics (required for ``zscore``, ignored otherwise).

        Returns:
            ``stats`` selected to ``bands`` for ``zscore``; ``mean 0, std scale`` (``std 1``
            for ``none``) for every band otherwise, with ``attrs["normalization"]``.

        Raises:
            ConfigError: a ``zscore`` normalization without statistics.
            BandError: statistics that lack one of ``bands``.
        """
        if self.kind == "zscore":
            if stats is None:
                raise ConfigError("a zscore normalization needs per-band statistics")
            return stats.select(bands, source="normalization stats")
        return BandStats(
            {b: BandStat(0.0, self.scale) for b in bands},
            {"normalization": self.spec()},
        )

    def matches(self, stats: BandStats, *, rel_tol: float = 1e-6) -> list[str]:
        """Bands whose statistics do not apply this (non-zscore) normalization.

        Returns:
            One line per band, e.g. ``"B02: mean 1400 vs 0, std 850 vs 10000"``; always
            empty for ``zscore`` (any statistics are a z-score).
        """
        if self.kind == "zscore":
            return []
        lines = []
        for band, stat in stats.bands.items():
            parts = [
                f"{name} {a:g} vs {b:g}"
                for name, a, b in (("mean", stat.mean, 0.0), ("std", stat.std, self.scale))
                if not math.isclose(a, b, rel_tol=rel_tol, abs_tol=rel_tol)
            ]
            if parts:
                lines.append(f"{band}: " + ", ".join(parts))
        return lines

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.kind == "scale":
            out["scale"] = float(self.scale)
        return out

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, source: str = "metadata"
    ) -> Normalization:
        """Inverse of :meth:`to_dict`; None (files before normalization was stored) is zscore.

        Raises:
            ValueError: an unknown kind or an invalid scale, naming ``source``.
        """
        if data is None:
            return cls()
        if not isinstance(data, Mapping) or "kind" not in data:
            raise ValueError(f"{source}: normalization must be a mapping with 'kind', got {data!r}")
        try:
            return cls(kind=cast(NormKind, data["kind"]), scale=float(data.get("scale", 1.0)))
        except ConfigError as err:
            raise ValueError(f"{source}: {err}") from None


def parse_normalization(spec: str) -> tuple[Normalization, BandStats | None]:
    """Parse ``zscore:STATS.yaml``, ``scale:FACTOR`` or ``none``.

    Args:
        spec: the command-line value.

    Returns:
        ``(normalization, statistics)``; the statistics are read from the YAML file of
        ``zscore`` and None otherwise.

    Raises:
        ConfigError: an unknown kind, a missing or non-positive factor, a ``zscore``
            without a file.
        FileNotFoundError: the statistics file does not exist.
    """
    text = spec.strip()
    kind, _, value = text.partition(":")
    kind = kind.strip().lower().replace("-", "")
    if kind == "zscore":
        if not value.strip():
            raise ConfigError(
                f"normalization {spec!r}: zscore needs the statistics file, e.g. "
                "zscore:stats.yaml (written by `geomae stats`)"
            )
        return Normalization("zscore"), BandStats.load(Path(value.strip()))
    if kind == "scale":
        try:
            factor = float(value)
        except ValueError:
            raise ConfigError(
                f"normalization {spec!r}: scale needs a positive factor, e.g. scale:10000"
            ) from None
        if not (math.isfinite(factor) and factor > 0):
            raise ConfigError(f"normalization {spec!r}: the scale factor must be positive")
        return Normalization("scale", factor), None
    if kind == "none" and not value:
        return Normalization("none"), None
    raise ConfigError(f"unknown normalization {spec!r}; expected {_SPEC_HELP}")
