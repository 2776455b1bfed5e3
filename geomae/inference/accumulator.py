"""A band of output rows that blends overlapping window predictions.

The accumulator holds weighted sums for exactly one row of windows: ``window`` output
rows by the (padded) scene width, however tall the scene is. Rows above the current
window row are finished (no later window touches them): :meth:`RowBandAccumulator.advance`
hands them out, divided by their summed weight, and shifts the band down. Its
allocation never changes, so memory is bounded by one window row (the overlap with the
next row is part of it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from geomae.errors import ConfigError

__all__ = ["FinishedRows", "RowBandAccumulator"]


@dataclass
class FinishedRows:
    """Output rows that no later window will touch.

    Attributes:
        row: first row (output units, from the scene's top).
        values: ``(K, n, width)`` float32 blended values (NaN where no window added).
        coverage: ``(n, width)`` float32 share of input pixels with data (0: nodata).
    """

    row: int
    values: np.ndarray
    coverage: np.ndarray


class RowBandAccumulator:
    """Weighted sums of window outputs over one band of ``height`` rows.

    Args:
        channels: values per output pixel (classes, or features).
        height: rows of one window in output units (the band's height).
        width: the scene's width in output units.
        padded_width: columns the windows span (>= ``width``).
        total_rows: the scene's height in output units (rows past it are padding and
            never handed out).

    Attributes:
        sums: ``(channels, height, padded_width)`` float32 weighted sums.
        weights: ``(height, padded_width)`` float32 summed weights.
        coverage: ``(height, padded_width)`` float32 share of input pixels with data.
        top: scene row of the band's first row.
    """

    def __init__(
        self, *, channels: int, height: int, width: int, padded_width: int, total_rows: int
    ) -> None:
        if padded_width < width:
            raise ConfigError(f"padded width {padded_width} is below the width {width}")
        self.channels, self.height, self.width = channels, height, width
        self.total_rows = total_rows
        self.sums = np.zeros((channels, height, padded_width), np.float32)  # (K, h, W')
        self.weights = np.zeros((height, padded_width), np.float32)  # (h, W')
        self.coverage = np.zeros((height, padded_width), np.float32)  # (h, W')
        self.top = 0

    @property
    def allocated_shape(self) -> tuple[int, int, int]:
        """``(channels, height, padded_width)``: what the band holds, at any time."""
        return (self.channels, self.height, int(self.sums.shape[2]))

    def add(
        self,
        values: np.ndarray,
        weight: np.ndarray,
        coverage: np.ndarray,
        *,
        row: int,
        col: int,
    ) -> None:
        """Add one window's output at scene position ``(row, col)`` (output units).

        Args:
            values: ``(K, h, w)`` the window's output.
            weight: ``(h, w)`` its blending weight.
            coverage: ``(h, w)`` share of its input pixels with data.
            row: the window's first row; it must lie in the current band.
            col: the window's first column.

        Raises:
            ConfigError: a window outside the band (rows were handed out already, or
                the window is taller than the band).
        """
        _, h, w = values.shape
        r = row - self.top
        if r < 0 or r + h > self.height or col < 0 or col + w > self.sums.shape[2]:
            raise ConfigError(
                f"window at row {row}, column {col} ({h} x {w}) is outside the accumulated "
                f"band (rows {self.top}..{self.top + self.height - 1})"
            )
        self.sums[:, r : r + h, col : col + w] += values * weight  # (K, h, w)
        self.weights[r : r + h, col : col + w] += weight
        np.maximum(
            self.coverage[r : r + h, col : col + w],
            coverage,
            out=self.coverage[r : r + h, col : col + w],
        )

    def advance(self, row: int) -> FinishedRows | None:
        """Hand out the rows above ``row`` and move the band to start at ``row``.

        Args:
            row: first row of the next window row (or the scene's height, to finish).

        Returns:
            The finished rows (clipped to the scene), or None if there are none.
        """
        n = min(row, self.top + self.height) - self.top
        if n <= 0:
            return None
        finished = self._finished(n)
        keep = self.height - n
        for array in (self.sums, self.weights, self.coverage):
            array[..., :keep, :] = array[..., n:, :]  # shift the band up by n rows
            array[..., keep:, :] = 0.0
        self.top += n
        return finished

    def finish(self) -> FinishedRows | None:
        """Hand out every row still in the band (call after the last window)."""
        return self.advance(self.top + self.height)

    def _finished(self, n: int) -> FinishedRows | None:
        """The first ``n`` rows of the band, blended, clipped to the scene."""
        n = min(n, self.total_rows - self.top)
        if n <= 0:
            return None
        weights = self.weights[:n, : self.width]  # (n, W)
        with np.errstate(invalid="ignore", divide="ignore"):
            values = self.sums[:, :n, : self.width] / weights  # (K, n, W)
        values[:, weights <= 0] = np.nan
        return FinishedRows(self.top, values, self.coverage[:n, : self.width].copy())
