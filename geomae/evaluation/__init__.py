"""Band-configuration benchmark: one command, one table, one plot.

``geomae bench-bands --config configs/bench_bands_eurosat.yaml`` compares band sets
(RGB, RGB+NIR, 10 m, all 12, custom lists) under the same backbone and protocols
(linear probe, statistics baseline, random init, fine-tuning of the pretrained or of a
random-init encoder) over several seeds and label fractions, and writes
``results.{csv,md,nc,png}`` with ``config.yaml`` and ``versions.json``.

Modules: :mod:`~geomae.evaluation.config` (the YAML), :mod:`~geomae.evaluation.data` (DataModules
and tile lists), :mod:`~geomae.evaluation.features` (embeddings and their cache),
:mod:`~geomae.evaluation.labels` (label-fraction subsets), :mod:`geomae.linear_probe` and
:mod:`~geomae.evaluation.protocols` (what a cell does),
:mod:`~geomae.evaluation.metrics`, :mod:`~geomae.evaluation.records` (``cells.jsonl``, resume),
:mod:`~geomae.evaluation.runner`, :mod:`~geomae.evaluation.report` and
:mod:`~geomae.evaluation.plot`.
"""

from geomae.evaluation.compare import run_benchmark
from geomae.evaluation.config import PROTOCOLS, BenchConfig, load_config, parse_config
from geomae.evaluation.records import Cell, CellRecord
from geomae.evaluation.runner import BenchOutcome, BenchRunner

__all__ = [
    "PROTOCOLS",
    "BenchConfig",
    "BenchOutcome",
    "BenchRunner",
    "Cell",
    "CellRecord",
    "load_config",
    "parse_config",
    "run_benchmark",
]
