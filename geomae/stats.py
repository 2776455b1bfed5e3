"""Per-band normalization statistics, keyed by band name.

A :class:`BandStats` maps canonical band names to mean, standard deviation and
2nd/98th percentiles. It is what normalizes the data, and it travels inside every
checkpoint and exported weight file so that nothing downstream has to guess it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from geomae.bands import S2_BANDS, canonical_band
from geomae.errors import BandError, DataError

__all__ = ["BandStat", "BandStats"]


@dataclass(frozen=True)
class BandStat:
    """Statistics of one band (in raw digital numbers)."""

    mean: float
    std: float
    p2: float | None = None
    p98: float | None = None


@dataclass
class BandStats:
    """Statistics for a set of bands, keyed by canonical band name.

    Attributes:
        bands: mapping of canonical band name to its :class:`BandStat`.
        attrs: free-form provenance (source paths, number of pixels, offset applied).
    """

    bands: dict[str, BandStat]
    attrs: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Canonicalize band names and validate values."""
        clean: dict[str, BandStat] = {}
        for name, stat in self.bands.items():
            band = canonical_band(name)
            if not (math.isfinite(stat.mean) and math.isfinite(stat.std)):
                raise BandError(f"band {band}: non-finite statistics {stat}")
            if stat.std <= 0:
                raise BandError(
                    f"band {band}: std must be > 0 (got {stat.std}); a constant band "
                    "cannot be normalized - drop it or recompute the stats"
                )
            clean[band] = stat
        self.bands = clean

    def select(self, bands: Sequence[str], *, source: str = "stats") -> BandStats:
        """Return the stats of ``bands`` in that order.

        Raises:
            BandError: (a ValueError) naming every requested band the stats lack.
        """
        wanted = [canonical_band(b) for b in bands]
        missing = [b for b in wanted if b not in self.bands]
        if missing:
            raise BandError(
                f"{source} has no statistics for band(s) {missing}; it covers "
                f"{list(self.bands)}. Recompute them with `geomae stats` for these bands."
            )
        return BandStats({b: self.bands[b] for b in wanted}, dict(self.attrs))

    def mean(self, bands: Sequence[str]) -> list[float]:
        """Means of ``bands`` in that order."""
        return [s.mean for s in self.select(bands).bands.values()]

    def std(self, bands: Sequence[str]) -> list[float]:
        """Standard deviations of ``bands`` in that order."""
        return [s.std for s in self.select(bands).bands.values()]

    # ---- (de)serialization -------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe dictionary."""
        return {
            "bands": {
                b: {k: v for k, v in vars(s).items() if v is not None}
                for b, s in self.bands.items()
            },
            "attrs": dict(self.attrs),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str = "stats") -> BandStats:
        """Build from :meth:`to_dict` output (or a plain ``{band: {mean, std}}``)."""
        raw = data.get("bands", data)
        if not isinstance(raw, Mapping) or not raw:
            raise DataError(f"{source}: expected a mapping 'bands: {{B02: {{mean, std}}}}'")
        bands = {}
        for name, stat in raw.items():
            if not isinstance(stat, Mapping) or "mean" not in stat or "std" not in stat:
                raise DataError(f"{source}: band {name!r} needs 'mean' and 'std', got {stat!r}")
            bands[name] = BandStat(
                float(stat["mean"]),
                float(stat["std"]),
                None if stat.get("p2") is None else float(stat["p2"]),
                None if stat.get("p98") is None else float(stat["p98"]),
            )
        try:
            return cls(bands, dict(data.get("attrs", {})) if "bands" in data else {})
        except ValueError as err:
            raise type(err)(f"{source}: {err}") from None

    @classmethod
    def load(cls, path: str | Path) -> BandStats:
        """Read a stats YAML file written by :meth:`save` or ``geomae stats``."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"stats file {path} does not exist")
        with path.open() as f:
            data = yaml.safe_load(f)
        if not isinstance(data, Mapping):
            raise DataError(f"stats file {path}: expected a YAML mapping")
        return cls.from_dict(data, source=f"stats file {path}")

    def save(self, path: str | Path) -> None:
        """Write as YAML."""
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with Path(path).open("w") as f:
            yaml.safe_dump(self.to_dict(), f, sort_keys=False)

    @classmethod
    def default(cls) -> BandStats:
        """Approximate archive-wide L1C statistics from the band table (a fallback)."""
        return cls(
            {n: BandStat(b.default_mean, b.default_std) for n, b in S2_BANDS.items()},
            {"source": "geomae.bands default (approximate, global L1C)"},
        )

    @classmethod
    def coerce(cls, value: BandStats | Mapping[str, Any] | str | Path | None) -> BandStats:
        """Accept a BandStats, a dict, a YAML path, or None (defaults)."""
        if value is None:
            return cls.default()
        if isinstance(value, BandStats):
            return value
        if isinstance(value, (str, Path)):
            return cls.load(value)
        return cls.from_dict(value)
