"""Whole-scene inference: window rows in, blended finished rows out.

For each row of windows (:class:`~geomae.inference.windows.WindowGrid`), top to
bottom: the rows above it are finished and handed to the writer
(:meth:`RowBandAccumulator.advance`); one full-width band of ``window`` rows is read
from the scene; its windows are predicted in batches; each output is added to the
accumulator with its blending weight. Memory therefore holds one band of input rows,
one batch of windows and the accumulator's band, never the scene.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch
import torch.nn.functional as F

from geomae.errors import ConfigError
from geomae.inference.accumulator import FinishedRows, RowBandAccumulator
from geomae.inference.predictor import WindowPredictor
from geomae.inference.scene import SceneReader
from geomae.inference.windows import BlendKind, WindowGrid, blend_weights
from geomae.progress import progress_bar

__all__ = ["RowSink", "SceneRun", "coverage_of", "predict_scene"]

log = logging.getLogger(__name__)


class RowSink(Protocol):
    """Where finished rows go (a writer)."""

    def write(self, rows: FinishedRows) -> None:
        """Take the next finished rows."""


@dataclass
class SceneRun:
    """What a run did.

    Attributes:
        windows: windows predicted.
        seconds: wall time of the loop.
        accumulator_shape: the accumulator's (constant) allocation
            ``(K, window rows, padded width)`` in output units.
        grid: the windows.
    """

    windows: int
    seconds: float
    accumulator_shape: tuple[int, int, int]
    grid: WindowGrid


def coverage_of(has_data: np.ndarray, scale: int) -> np.ndarray:
    """Share of pixels with data per output pixel.

    Args:
        has_data: ``(B, P, P)`` bool.
        scale: input pixels per output pixel along each axis.

    Returns:
        ``(B, P / scale, P / scale)`` float32 in [0, 1].
    """
    data = torch.from_numpy(has_data.astype(np.float32))[:, None]  # (B, 1, P, P)
    if scale > 1:
        data = F.avg_pool2d(data, scale)  # (B, 1, P / s, P / s)
    return data[:, 0].numpy()


def predict_scene(
    predictor: WindowPredictor,
    reader: SceneReader,
    sink: RowSink,
    *,
    overlap: int,
    batch_size: int = 16,
    blend: BlendKind = "cosine",
    progress: bool = True,
) -> SceneRun:
    """Predict every window of ``reader``'s scene and hand finished rows to ``sink``.

    Args:
        predictor: the model (its ``window`` is the window side, ``scale`` the output
            stride), with its input normalization configured.
        reader: the scene.
        sink: takes the finished rows, top to bottom.
        overlap: pixels shared by neighbouring windows (a multiple of the output
            stride, i.e. of the patch size for embeddings).
        batch_size: windows per forward pass.
        blend: blending weight (see :func:`~geomae.inference.windows.blend_weights`).
        progress: show a progress bar.

    Returns:
        What was done (:class:`SceneRun`).

    Raises:
        ConfigError: a bad overlap or batch size.
    """
    scale, window = predictor.scale, predictor.window
    if batch_size < 1:
        raise ConfigError(f"batch size must be >= 1, got {batch_size}")
    if overlap % scale:
        raise ConfigError(f"--overlap {overlap} must be a multiple of the patch size {scale}")
    grid = WindowGrid(
        height=reader.grid.height,
        width=reader.grid.width,
        window=window,
        overlap=overlap,
        align=scale,
    )
    rows, cols = grid.row_starts, grid.col_starts
    out_window = window // scale
    weight = blend_weights(out_window, overlap // scale, blend)  # (w, w)
    out_grid = reader.grid.coarsened(scale)
    acc = RowBandAccumulator(
        channels=predictor.channels,
        height=out_window,
        width=out_grid.width,
        padded_width=grid.padded_width // scale,
        total_rows=out_grid.height,
    )
    log.info(
        "%d windows of %d px (%d rows x %d), overlap %d px, %s blending, batch %d, on %s",
        len(grid),
        window,
        len(rows),
        len(cols),
        overlap,
        blend,
        batch_size,
        predictor.device,
    )
    start = time.perf_counter()
    with progress_bar(enabled=progress) as bar:
        task = bar.add_task("predict-scene", total=len(grid))
        for row in rows:
            finished = acc.advance(row // scale)
            if finished is not None:
                sink.write(finished)
            band = reader.read(row, window, 0, grid.padded_width)  # (C, P, W')
            for first in range(0, len(cols), batch_size):
                starts = cols[first : first + batch_size]
                raw = np.stack([band[:, :, c : c + window] for c in starts])  # (B, C, P, P)
                outputs = predictor(raw)  # (B, K, P / s, P / s)
                coverage = coverage_of(reader.has_data(raw), scale)  # (B, P / s, P / s)
                for out, cov, col in zip(outputs, coverage, starts, strict=True):
                    acc.add(out, weight, cov, row=row // scale, col=col // scale)
                bar.advance(task, len(starts))
        finished = acc.finish()
        if finished is not None:
            sink.write(finished)
    seconds = time.perf_counter() - start
    log.info("%d windows in %.1f s (%.1f windows/s)", len(grid), seconds, len(grid) / seconds)
    return SceneRun(
        windows=len(grid), seconds=seconds, accumulator_shape=acc.allocated_shape, grid=grid
    )
