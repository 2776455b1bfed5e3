"""Streaming per-band statistics: the one accumulator behind every :class:`BandStats`.

``geomae stats`` (random tiles of scenes), ``geomae prepare`` (every tile it writes) and
the datacube DataModule (random windows of a cube) all reduce tiles to band statistics
the same way, with :class:`StatsAccumulator`:

* mean and standard deviation: each update is reduced per band in float64 (count, mean,
  sum of squared deviations) and merged into the running totals with Chan et al.'s
  parallel update, accurate for any number of pixels (no ``sum(x**2) - sum(x)**2``
  cancellation). The std is the population std (ddof=0).
* percentiles p2 / p98: while every valid pixel of a band is an integer in 0..65535
  (uint16 digital numbers, the normal case) an exact 65536-bin histogram is kept and the
  percentiles are exact (numpy's default linear interpolation). Otherwise (float data)
  they come from a uniform random sample of ``reservoir_size`` pixels per band
  (bottom-k sampling on random keys), which is approximate.
* two accumulators over disjoint tiles :meth:`~StatsAccumulator.merge` into the
  statistics of all their tiles (the histograms add, the reservoirs stay uniform samples).
  :meth:`~StatsAccumulator.state` / :meth:`~StatsAccumulator.from_state` carry the
  totals as numpy arrays between processes (``geomae prepare`` on Dask: one per scene).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from geomae.errors import DataError
from geomae.stats import BandStat, BandStats
from geomae.version import __version__

__all__ = ["BandAccumulator", "StatsAccumulator"]

_HIST_BINS = 65536
#: How the std is computed, recorded in every ``BandStats.attrs``.
STD_METHOD = "population (ddof=0), float64 Chan/Welford merge per batch"


@dataclass
class BandAccumulator:
    """Running statistics of one band.

    Attributes:
        size: reservoir capacity.
        count: number of pixels seen.
        mean: running mean (float64).
        m2: running sum of squared deviations from the mean.
        histogram: counts of integer values 0..65535, while every value is one.
        reservoir: uniform random sample of the values (for non-integer data).
        keys: random keys of the reservoir values (the ``size`` smallest are kept).
    """

    size: int = 200_000
    count: int = 0
    mean: float = 0.0
    m2: float = 0.0
    histogram: Tensor | None = field(
        default_factory=lambda: torch.zeros(_HIST_BINS, dtype=torch.int64)
    )
    reservoir: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.float64))
    keys: Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.float64))

    def update(self, values: Tensor, generator: torch.Generator) -> None:
        """Merge a 1-D tensor of valid pixel values (any float dtype) into the totals."""
        values = values.to(torch.float64)
        n = values.numel()
        if n == 0:
            return
        batch_mean = values.mean().item()
        batch_m2 = ((values - batch_mean) ** 2).sum().item()
        self._merge_moments(n, batch_mean, batch_m2)
        if self.histogram is not None:
            integral = bool(
                (values == values.round()).all() and values.min() >= 0 and values.max() < _HIST_BINS
            )
            if integral:
                self.histogram += torch.bincount(values.long(), minlength=_HIST_BINS)
            else:
                self.histogram = None
        keys = torch.rand(n, generator=generator, dtype=torch.float64)
        self._keep_smallest_keys(torch.cat([self.keys, keys]), torch.cat([self.reservoir, values]))

    def merge(self, other: BandAccumulator) -> None:
        """Add the pixels ``other`` has seen (disjoint from these) to the totals."""
        if other.count == 0:
            return
        self._merge_moments(other.count, other.mean, other.m2)
        if self.histogram is not None and other.histogram is not None:
            self.histogram = self.histogram + other.histogram
        else:
            self.histogram = None
        self._keep_smallest_keys(
            torch.cat([self.keys, other.keys]), torch.cat([self.reservoir, other.reservoir])
        )

    def _merge_moments(self, n: int, mean: float, m2: float) -> None:
        total = self.count + n
        delta = mean - self.mean
        self.mean += delta * n / total
        self.m2 += m2 + delta * delta * self.count * n / total
        self.count = total

    def _keep_smallest_keys(self, keys: Tensor, pool: Tensor) -> None:
        if pool.numel() > self.size:
            keys, order = torch.topk(keys, self.size, largest=False)
            pool = pool[order]
        self.keys, self.reservoir = keys, pool

    @property
    def exact_percentiles(self) -> bool:
        """True when percentiles come from the exact integer histogram."""
        return self.histogram is not None

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0..100), numpy's linear interpolation."""
        if self.histogram is None:
            return float(np.percentile(self.reservoir.numpy(), q))
        position = q / 100.0 * (self.count - 1)
        lo, hi = math.floor(position), math.ceil(position)
        cumulative = torch.cumsum(self.histogram, 0)
        ranks = torch.tensor([lo + 1, hi + 1], dtype=torch.int64)
        v_lo, v_hi = torch.searchsorted(cumulative, ranks).tolist()
        return float(v_lo + (v_hi - v_lo) * (position - lo))

    @property
    def std(self) -> float:
        """Population standard deviation."""
        return math.sqrt(self.m2 / self.count) if self.count else float("nan")


class StatsAccumulator:
    """Per-band statistics of the valid pixels of a stream of tiles.

    Tiles are buffered until ``flush_pixels`` valid pixels are pending, so the per-update
    cost of the histograms and reservoirs is amortized over many small tiles; with
    ``flush_pixels=0`` every :meth:`update` is reduced at once.

    Args:
        bands: canonical names of the tiles' channels, in order.
        reservoir_size: values kept per band for the percentiles of non-integer data.
        seed: seed of the reservoir's random keys.
        flush_pixels: valid pixels to buffer before reducing.
    """

    def __init__(
        self,
        bands: Sequence[str],
        *,
        reservoir_size: int = 200_000,
        seed: int = 0,
        flush_pixels: int = 0,
    ) -> None:
        self.bands = list(bands)
        self.accumulators = {b: BandAccumulator(size=reservoir_size) for b in self.bands}
        self.generator = torch.Generator().manual_seed(seed)
        self.flush_pixels = flush_pixels
        self._pending: list[tuple[Tensor, Tensor]] = []
        self._pending_pixels = 0

    def update(self, image: Tensor | np.ndarray, valid: Tensor | np.ndarray) -> None:
        """Add tiles ``image`` ``(K, C, H, W)`` whose pixels ``valid`` ``(K, H, W)`` marks."""
        image_t, valid_t = torch.as_tensor(image), torch.as_tensor(valid, dtype=torch.bool)
        if image_t.shape[1] != len(self.bands) or valid_t.shape != (
            image_t.shape[0],
            *image_t.shape[2:],
        ):
            raise ValueError(
                f"tiles {tuple(image_t.shape)} / valid {tuple(valid_t.shape)} do not match "
                f"bands {self.bands}"
            )
        self._pending.append((image_t, valid_t))
        self._pending_pixels += int(valid_t.sum())
        if self._pending_pixels >= self.flush_pixels:
            self._flush()

    def merge(self, other: StatsAccumulator) -> None:
        """Add the tiles ``other`` has seen (same bands, other tiles) to these."""
        if other.bands != self.bands:
            raise ValueError(f"cannot merge statistics of bands {other.bands} into {self.bands}")
        self._flush()
        other._flush()
        for band, acc in self.accumulators.items():
            acc.merge(other.accumulators[band])

    def state(self) -> dict[str, np.ndarray]:
        """The accumulated totals as numpy arrays, to store and :meth:`from_state` later.

        Keys (``C`` bands, in order): ``count`` ``(C,)`` int64, ``mean`` / ``m2``
        ``(C,)`` float64, ``exact`` ``(C,)`` bool (histogram kept), ``histogram``
        ``(C, 65536)`` int64 (zero rows where not exact), ``size`` ``(1,)`` reservoir
        capacity, and per band ``reservoir/<band>`` / ``keys/<band>`` ``(R,)`` float64.
        """
        self._flush()
        accs = [self.accumulators[b] for b in self.bands]
        zeros = torch.zeros(_HIST_BINS, dtype=torch.int64)
        state = {
            "count": np.array([a.count for a in accs], dtype=np.int64),
            "mean": np.array([a.mean for a in accs], dtype=np.float64),
            "m2": np.array([a.m2 for a in accs], dtype=np.float64),
            "exact": np.array([a.histogram is not None for a in accs], dtype=bool),
            "histogram": torch.stack(
                [zeros if a.histogram is None else a.histogram for a in accs]
            ).numpy(),  # (C, 65536)
            "size": np.array([accs[0].size if accs else 0], dtype=np.int64),
        }
        for band, acc in zip(self.bands, accs, strict=True):
            state[f"reservoir/{band}"] = acc.reservoir.numpy()
            state[f"keys/{band}"] = acc.keys.numpy()
        return state

    @classmethod
    def from_state(
        cls, bands: Sequence[str], state: Mapping[str, np.ndarray], *, seed: int = 0
    ) -> StatsAccumulator:
        """An accumulator holding the totals :meth:`state` returned (for ``bands``).

        Raises:
            ValueError: if the state's arrays do not match ``bands``.
        """
        bands = list(bands)
        count = np.asarray(state["count"])
        if count.shape != (len(bands),) or any(f"keys/{b}" not in state for b in bands):
            raise ValueError(
                f"statistics state of shape {count.shape} (keys {sorted(state)[:6]}...) does "
                f"not match bands {bands}"
            )
        size = int(np.asarray(state["size"])[0])
        out = cls(bands, reservoir_size=size, seed=seed)
        histograms = np.asarray(state["histogram"])  # (C, 65536)
        for c, band in enumerate(bands):
            acc = out.accumulators[band]
            acc.count = int(count[c])
            acc.mean = float(state["mean"][c])
            acc.m2 = float(state["m2"][c])
            acc.histogram = (
                torch.from_numpy(np.array(histograms[c], dtype=np.int64))
                if bool(state["exact"][c])
                else None
            )
            acc.reservoir = torch.from_numpy(np.array(state[f"reservoir/{band}"], np.float64))
            acc.keys = torch.from_numpy(np.array(state[f"keys/{band}"], np.float64))
        return out

    def _flush(self) -> None:
        if not self._pending:
            return
        if len(self._pending) == 1:
            image, valid = self._pending[0]
        else:
            image = torch.cat([i for i, _ in self._pending])  # (K, C, H, W)
            valid = torch.cat([v for _, v in self._pending])  # (K, H, W)
        for c, band in enumerate(self.bands):
            values = image[:, c][valid].to(torch.float64)  # (P,)
            self.accumulators[band].update(values, self.generator)
        self._pending, self._pending_pixels = [], 0

    @property
    def pixels(self) -> dict[str, int]:
        """Valid pixels added per band."""
        self._flush()
        return {b: acc.count for b, acc in self.accumulators.items()}

    def result(
        self, *, where: str, offset: float = 0.0, attrs: Mapping[str, Any] | None = None
    ) -> BandStats:
        """The statistics of ``DN - offset`` over every valid pixel added.

        Args:
            where: what the tiles came from, for the error message.
            offset: subtracted from the raw values (recorded in ``attrs``).
            attrs: provenance merged into the result's ``attrs``.

        Raises:
            DataError: if a band has no valid pixel.
        """
        pixels = self.pixels
        empty = [b for b, n in pixels.items() if n == 0]
        if empty:
            raise DataError(f"{where}: band(s) {empty} have no valid pixel")
        stats = {
            band: BandStat(
                mean=acc.mean - offset,
                std=acc.std,
                p2=acc.percentile(2.0) - offset,
                p98=acc.percentile(98.0) - offset,
            )
            for band, acc in self.accumulators.items()
        }
        exact = all(acc.exact_percentiles for acc in self.accumulators.values())
        size = next(iter(self.accumulators.values())).size
        provenance: dict[str, Any] = dict(attrs or {})
        provenance.update(
            offset=float(offset),
            pixels=pixels,
            std=STD_METHOD,
            percentiles=(
                "exact (uint16 histogram)"
                if exact
                else f"approximate (uniform sample of {size} pixels per band) for non-integer bands"
            ),
            geomae_version=__version__,
        )
        return BandStats(stats, provenance)
