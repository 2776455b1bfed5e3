"""``geomae bench-bands``: compare band configurations with one command.

Runs (or resumes) the benchmark of a YAML configuration (see
:mod:`geomae.evaluation.config`) and prints the mean ± std table; the output folder gets
``results.csv``, ``results.md``, ``results.nc``, ``results.png``, ``config.yaml``,
``versions.json`` and the ``cells.jsonl`` a re-run resumes from. With ``backbones``
(several weights files) each backbone runs in ``output/<name>/`` and ``output/`` gets
one comparison table and plot (:mod:`geomae.evaluation.compare`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from geomae.evaluation import load_config, run_benchmark

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``geomae bench-bands``."""
    parser = argparse.ArgumentParser(
        prog="geomae bench-bands",
        description=(
            "Benchmark band sets (rgb, rgbn, 10m, all, custom lists) with one backbone, or "
            "several compared (backbones: {name: weights}), under linear probing, a "
            "band-statistics baseline, fine-tuning and random init, over several seeds. "
            "Finished cells are skipped on a re-run."
        ),
    )
    parser.add_argument("--config", required=True, help="benchmark YAML file")
    parser.add_argument("--output", default=None, help="output folder (replaces `output`)")
    parser.add_argument(
        "--backbone", default=None, help="weights file (replaces `backbone` / `backbones`)"
    )
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=None, help="seeds (replace `seeds`)"
    )
    parser.add_argument(
        "--device", default=None, help="auto, cpu, cuda or cuda:N (replaces `device`)"
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geomae bench-bands`` with ``argv`` (without the program name).

    Geomae errors (a band set the backbone lacks, a bad config value, a missing file)
    propagate to :func:`geomae.main.main`, which prints them as one line.

    Returns:
        0 on success.
    """
    args = build_parser().parse_args(list(argv))
    config = load_config(
        args.config,
        output=args.output,
        seeds=args.seeds,
        device=args.device,
        backbone=args.backbone,
    )
    outcome = run_benchmark(config)
    sys.stdout.write(outcome.markdown)
    sys.stdout.write(
        f"\n{len(outcome.ran)} cell(s) run, {len(outcome.skipped)} already done; "
        f"results in {outcome.output}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
