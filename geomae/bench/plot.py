"""``results.png``: grouped bars (band sets x protocols) with error bars, one panel per metric."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from geomae.bench.report import ReportTable, summarize

__all__ = ["bar_panels", "plot_results"]


def bar_panels(
    series: Sequence[tuple[str, ReportTable, str]],
    band_sets: Sequence[str],
    metrics: Sequence[str],
    *,
    inches_per_bar: float,
    height: float,
    capsize: float,
) -> tuple[Figure, list[Artist], list[str]]:
    """One panel per metric, bars of every series grouped by band set, no legend yet.

    Bar = mean over seeds, error bar = sample std (0 where missing).

    Args:
        series: ``(label, table, protocol)`` of each bar of a group, in drawing order.
        band_sets: the groups along x.
        metrics: one panel each (an empty ``(no results)`` panel when there is none).
        inches_per_bar: figure width per bar, beside 1 inch of margin (3.5 the least
            per panel).
        height: figure height in inches.
        capsize: error bar cap size in points.

    Returns:
        ``(figure, legend handles, legend labels)`` of the first panel.
    """
    panels = max(1, len(metrics))
    width_in = 1.0 + panels * max(3.5, inches_per_bar * len(band_sets) * max(1, len(series)))
    fig = Figure(figsize=(width_in, height))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    x = np.arange(len(band_sets))
    width = 0.8 / max(1, len(series))
    for ax, metric in zip(axes, metrics or ["(no results)"], strict=False):
        for j, (label, table, protocol) in enumerate(series):
            stats = [summarize(table, b, protocol, metric) for b in band_sets]
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
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    return fig, handles, labels


def plot_results(table: ReportTable, path: Path) -> None:
    """Draw the benchmark: bar = mean over seeds, error bar = sample std.

    Args:
        table: the records and their order.
        path: PNG file to write.
    """
    metrics = [m for m in table.metrics if any(m in r.metrics for r in table.records)]
    protocols = [p for p in table.protocols if any(r.protocol == p for r in table.records)]
    series = [(protocol, table, protocol) for protocol in protocols]
    fig, handles, labels = bar_panels(
        series, list(table.band_sets), metrics, inches_per_bar=0.35, height=4.0, capsize=3
    )
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize="small")
    seeds = table.seeds
    fig.suptitle(f"band-configuration benchmark ({len(seeds)} seed{'s' * (len(seeds) != 1)})")
    fig.tight_layout(rect=(0.0, 0.08, 1.0, 1.0))
    fig.savefig(path, dpi=120)
