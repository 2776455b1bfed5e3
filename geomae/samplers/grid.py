"""A grid of patches that stays inside each region of a geo dataset (split strips)."""

from __future__ import annotations

from collections.abc import Iterator

import pandas as pd
from torchgeo.samplers import GridGeoSampler

__all__ = ["InsideGridGeoSampler"]


class InsideGridGeoSampler(GridGeoSampler):
    """A grid of patches that never crosses the bounds of the dataset's regions.

    torchgeo's :class:`~torchgeo.samplers.GridGeoSampler` (0.8) lets the last row and
    column of patches run past a region's edge, which after a spatial split would read
    pixels of the neighbouring split. Here the last row and column are moved back to
    end on the edge instead (overlapping their neighbours inside the region). Same
    arguments as ``GridGeoSampler``.
    """

    def _starts(self, low: float, high: float, size: float, stride: float) -> list[float]:
        """Patch start coordinates along one axis, the last one ending at ``high``."""
        starts = [low]
        while starts[-1] + size < high - 1e-6 * size:  # tolerate float round-off
            starts.append(min(starts[-1] + stride, high - size))
        return starts

    def _regions(self) -> Iterator[tuple[list[float], list[float], pd.Interval]]:
        """Per indexed region: x starts, y starts and its time interval."""
        for i in range(len(self.index)):
            xmin, ymin, xmax, ymax = self.index.geometry.iloc[i].bounds
            if xmax - xmin < self.size[1] or ymax - ymin < self.size[0]:
                continue
            xs = self._starts(xmin, xmax, self.size[1], self.stride[1])
            ys = self._starts(ymin, ymax, self.size[0], self.stride[0])
            yield xs, ys, self.index.index[i]

    def __iter__(self) -> Iterator[tuple[slice, slice, slice]]:
        """Yield ``(x, y, t)`` slices of every patch, row by row."""
        for xs, ys, interval in self._regions():
            for y in ys:
                for x in xs:
                    yield (
                        slice(x, x + self.size[1]),
                        slice(y, y + self.size[0]),
                        slice(interval.left, interval.right),
                    )

    def __len__(self) -> int:
        """Number of patches."""
        return sum(len(xs) * len(ys) for xs, ys, _ in self._regions())
