"""Sliding windows over a scene and the weights that blend their overlaps.

A scene of ``size`` pixels along an axis is covered by windows of ``window`` pixels that
start every ``stride = window - overlap`` pixels. The last window is moved back to end
on the scene's edge (so every pixel is predicted and no window reads past the scene);
only a scene smaller than one window is padded. With ``align`` > 1 (embeddings: the
patch size) the covered extent is the scene rounded up to a multiple of ``align``, so
every window starts on the patch grid; the at most ``align - 1`` pixels past the edge
are padding.

Overlapping predictions are blended with a separable weight that ramps up over the
first ``overlap`` pixels of a window and down over the last ``overlap`` (flat in
between, never zero): with the ``cosine`` ramp ``sin²`` and its mirror ``cos²`` sum to
one, so inside the scene the weights of neighbouring windows form a partition of
unity; the accumulator divides by the summed weight anyway, which makes any positive
weight exact for a model whose windows agree. No seams follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np

from geomae.errors import ConfigError

__all__ = [
    "BLEND_KINDS",
    "BlendKind",
    "WindowGrid",
    "blend_weights",
    "ramp",
    "window_starts",
]

BlendKind = Literal["cosine", "linear", "none"]
BLEND_KINDS: tuple[str, ...] = get_args(BlendKind)


def window_starts(size: int, window: int, stride: int, *, align: int = 1) -> list[int]:
    """Start offsets of the windows covering ``size`` pixels along one axis.

    Args:
        size: scene extent in pixels.
        window: window side in pixels.
        stride: step between window starts (``window - overlap``), a multiple of
            ``align``.
        align: window starts are multiples of it (the covered extent is ``size``
            rounded up to a multiple of ``align``).

    Returns:
        Increasing starts; the last window ends on the (aligned) edge, or a single
        ``[0]`` when one window covers everything (it is padded).

    Raises:
        ConfigError: a non-positive size, window or stride, a stride above the window,
            or a window or stride that is not a multiple of ``align``.
    """
    if size < 1 or window < 1 or not 1 <= stride <= window:
        raise ConfigError(
            f"windows need size >= 1, window >= 1 and 1 <= stride <= window (got size "
            f"{size}, window {window}, stride {stride})"
        )
    if window % align or stride % align:
        raise ConfigError(
            f"window {window} and stride {stride} must be multiples of {align} (the patch size)"
        )
    extent = math.ceil(size / align) * align
    if extent <= window:
        return [0]
    starts = list(range(0, extent - window, stride))
    starts.append(extent - window)
    return starts


def ramp(overlap: int, kind: BlendKind) -> np.ndarray:
    """The rising edge of the blending weight: ``overlap`` values in (0, 1].

    ``cosine``: ``sin²(π/2 · (i + 0.5) / overlap)``; ``linear``: ``(i + 0.5) / overlap``;
    ``none``: ones. The ramp and its reverse sum to one element by element.
    """
    if kind not in BLEND_KINDS:
        raise ConfigError(f"blend must be one of {list(BLEND_KINDS)}, got {kind!r}")
    t = (np.arange(overlap, dtype=np.float64) + 0.5) / max(overlap, 1)  # (overlap,)
    if kind == "cosine":
        return np.sin(0.5 * np.pi * t) ** 2
    if kind == "linear":
        return t
    return np.ones(overlap)


def blend_weights(window: int, overlap: int, kind: BlendKind = "cosine") -> np.ndarray:
    """Separable blending weight of one window.

    Args:
        window: window side (in the units of the output: pixels, or patches).
        overlap: overlap of neighbouring windows, same units (beyond ``window // 2``
            the two ramps cross and each pixel keeps the smaller one).
        kind: ``cosine``, ``linear`` or ``none`` (a flat weight: plain averaging).

    Returns:
        ``(window, window)`` float32 weights, positive everywhere.
    """
    edge = np.ones(window, dtype=np.float64)  # (window,)
    if overlap > 0 and kind != "none":
        up = ramp(overlap, kind)[:window]
        edge[: len(up)] = np.minimum(edge[: len(up)], up)
        edge[window - len(up) :] = np.minimum(edge[window - len(up) :], up[::-1])
    return np.outer(edge, edge).astype(np.float32)  # (window, window)


@dataclass(frozen=True)
class WindowGrid:
    """The windows covering a ``height`` x ``width`` scene, row by row.

    Attributes:
        height: scene rows in pixels.
        width: scene columns in pixels.
        window: window side in pixels.
        overlap: pixels shared by neighbouring windows.
        align: window starts are multiples of it (1, or the patch size).
    """

    height: int
    width: int
    window: int
    overlap: int
    align: int = 1

    def __post_init__(self) -> None:
        """Check the overlap against the window."""
        if not 0 <= self.overlap < self.window:
            raise ConfigError(
                f"overlap must be in 0..window-1 (window {self.window}), got {self.overlap}"
            )

    @property
    def stride(self) -> int:
        """Step between window starts."""
        return self.window - self.overlap

    @property
    def row_starts(self) -> list[int]:
        """First pixel row of each row of windows."""
        return window_starts(self.height, self.window, self.stride, align=self.align)

    @property
    def col_starts(self) -> list[int]:
        """First pixel column of each window in a row."""
        return window_starts(self.width, self.window, self.stride, align=self.align)

    @property
    def padded_width(self) -> int:
        """Columns the windows of a row span (the width, or more when padded)."""
        return max(self.col_starts[-1] + self.window, self.width)

    def __len__(self) -> int:
        """Number of windows."""
        return len(self.row_starts) * len(self.col_starts)
