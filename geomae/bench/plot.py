"""``results.png``: grouped bars (band sets x protocols) with error bars, one panel per metric."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from geomae.bench.report import ReportTable, summarize

__all__ = ["plot_results"]


def plot_results(table: ReportTable, path: Path) -> None:
    """Draw the benchmark: bar = mean over seeds, error bar = sample std.

    Args:
        table: the records and their order.
        path: PNG file to write.
    """
    metrics = [m for m in table.metrics if any(m in r.metrics for r in table.records)]
    protocols = [p for p in table.protocols if any(r.protocol == p for r in table.records)]
    band_sets = list(table.band_sets)
    panels = max(1, len(metrics))
    width_in = 1.0 + panels * max(3.5, 0.35 * len(band_sets) * max(1, len(protocols)))
    fig = Figure(figsize=(width_in, 4.0))
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    x = np.arange(len(band_sets))
    width = 0.8 / max(1, len(protocols))
    for ax, metric in zip(axes, metrics or ["(no results)"], strict=False):
        for j, protocol in enumerate(protocols):
            stats = [summarize(table, b, protocol, metric) for b in band_sets]
            means = [0.0 if math.isnan(s.mean) else s.mean for s in stats]
            errors = [0.0 if math.isnan(s.std) else s.std for s in stats]
            ax.bar(
                x + (j - (len(protocols) - 1) / 2) * width,
                means,
                width,
                yerr=errors,
                capsize=3,
                label=protocol,
            )
        ax.set_xticks(x, band_sets, rotation=30, ha="right")
        ax.set_title(metric)
        ax.set_ylim(0, 1)
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles), fontsize="small")
    seeds = table.seeds
    fig.suptitle(f"band-configuration benchmark ({len(seeds)} seed{'s' * (len(seeds) != 1)})")
    fig.tight_layout(rect=(0.0, 0.08, 1.0, 1.0))
    fig.savefig(path, dpi=120)
