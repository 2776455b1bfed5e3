"""``results.png``: grouped bars (band sets x protocols) with error bars, one panel per metric.

With several label fractions the figure has one row of panels per fraction (the
fraction in each panel's title, ascending from the top).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from geomae.evaluation.report import ReportTable, summarize

__all__ = ["bar_panels", "plot_results"]


def bar_panels(
    series: Sequence[tuple[str, ReportTable, str]],
    band_sets: Sequence[str],
    metrics: Sequence[str],
    *,
    inches_per_bar: float,
    height: float,
    capsize: float,
    label_fractions: Sequence[float | None] = (None,),
) -> tuple[Figure, list[Artist], list[str]]:
    """One panel per metric (and row per label fraction), bars grouped by band set.

    Bar = mean over seeds, error bar = sample std (0 where missing). No legend yet.

    Args:
        series: ``(label, table, protocol)`` of each bar of a group, in drawing order.
        band_sets: the groups along x.
        metrics: one panel each (an empty ``(no results)`` panel when there is none).
        inches_per_bar: figure width per bar, beside 1 inch of margin (3.5 the least
            per panel).
        height: height of one row of panels in inches.
        capsize: error bar cap size in points.
        label_fractions: one row of panels per fraction (None: every record, one row).

    Returns:
        ``(figure, legend handles, legend labels)`` of the first panel.
    """
    panels = max(1, len(metrics))
    rows = max(1, len(label_fractions))
    width_in = 1.0 + panels * max(3.5, inches_per_bar * len(band_sets) * max(1, len(series)))
    fig = Figure(figsize=(width_in, height * rows))
    FigureCanvasAgg(fig)
    grid = fig.subplots(rows, panels, squeeze=False)
    x = np.arange(len(band_sets))
    width = 0.8 / max(1, len(series))
    for axes, fraction in zip(grid, label_fractions, strict=False):
        _bar_row(axes, series, band_sets, metrics, fraction, x=x, width=width, capsize=capsize)
    handles, labels = grid[0][0].get_legend_handles_labels()
    return fig, handles, labels


def _bar_row(
    axes: Sequence[Any],
    series: Sequence[tuple[str, ReportTable, str]],
    band_sets: Sequence[str],
    metrics: Sequence[str],
    fraction: float | None,
    *,
    x: np.ndarray,
    width: float,
    capsize: float,
) -> None:
    """Draw one row of metric panels (one label fraction)."""
    for ax, metric in zip(axes, metrics or ["(no results)"], strict=False):
        for j, (label, table, protocol) in enumerate(series):
            stats = [summarize(table, b, protocol, metric, fraction) for b in band_sets]
            means = [0.0 if math.isnan(s.mean) else s.mean for s in stats]
            errors = [0.0 if math.isnan(s.std) else s.std for s in stats]
            ax.bar(
                x + (j - (len(series) - 1) / 2) * width,
                means,
                width,
                yerr=errors,
                capsize=capsize,
                label=label,
            )
        ax.set_xticks(x, band_sets, rotation=30, ha="right")
        ax.set_title(metric if fraction is None else f"{metric}, labels {fraction:g}")
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)


def plot_results(table: ReportTable, path: Path) -> None:
    """Draw the benchmark: bar = mean over seeds, error bar = sample std.

    Args:
        table: the records and their order.
        path: PNG file to write.
    """
    metrics = [m for m in table.metrics if any(m in r.metrics for r in table.records)]
    protocols = [p for p in table.protocols if any(r.protocol == p for r in table.records)]
    series = [(protocol, table, protocol) for protocol in protocols]
    fractions = table.label_fractions
    fig, handles, labels = bar_panels(
        series,
        list(table.band_sets),
        metrics,
        inches_per_bar=0.35,
        height=4.0,
        capsize=3,
        label_fractions=fractions if fractions != [1.0] else [None],
    )
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize="small")
    seeds = table.seeds
    fig.suptitle(f"band-configuration benchmark ({len(seeds)} seed{'s' * (len(seeds) != 1)})")
    fig.tight_layout(rect=(0.0, 0.08 / len(fractions), 1.0, 1.0))
    fig.savefig(path, dpi=120)
