"""Probe accuracy against pretraining minutes, from the online probe's ``probe.json`` files.

Each run is one line (``probe/linear_acc`` at every probe); the random-init encoder and
the per-band statistics baseline of the first run are drawn as horizontal references.

    python benchmarks/plot_probe_curve.py runs/pretrain_sample/version_0/probe.json \
        runs/pretrain_virginia/version_0/probe.json --labels both-scenes virginia-only \
        -o benchmarks/probe_vs_minutes.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("histories", nargs="+", type=Path)
    parser.add_argument("--labels", nargs="*")
    parser.add_argument("--metric", default="linear_acc")
    parser.add_argument("-o", "--output", type=Path, required=True)
    args = parser.parse_args()
    labels = args.labels or [p.parent.parent.name for p in args.histories]
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    first = None
    for path, label in zip(args.histories, labels, strict=True):
        history = json.loads(path.read_text())
        first = first or history[-1]
        minutes = [h["minutes"] for h in history]
        ax.plot(minutes, [h[args.metric] for h in history], "o-", label=label)
        print(label, [(round(h["minutes"], 1), round(h[args.metric], 3)) for h in history])
    assert first is not None
    for key, style, name in (
        (f"random_init/{args.metric}", "--", "random-init encoder"),
        (f"stats_baseline/{args.metric}", ":", "per-band statistics"),
        ("majority_acc", "-.", "majority class"),
    ):
        if key in first:
            ax.axhline(first[key], linestyle=style, color="grey", label=name)
    ax.set_xlabel("pretraining minutes (2 CPU cores)")
    ax.set_ylabel(f"online probe {args.metric}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=120)


if __name__ == "__main__":
    main()
