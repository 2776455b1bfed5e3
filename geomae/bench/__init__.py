"""Band-configuration benchmark: one command, one table, one plot.

``geomae bench-bands --config configs/bench_bands_eurosat.yaml`` compares band sets
(RGB, RGB+NIR, 10 m, all 12, custom lists) under the same backbone and protocols
(linear probe, statistics baseline, random init, fine-tuning of the pretrained or of a
random-init encoder) over several seeds and label fractions, and writes
``results.{csv,md,nc,png}`` with ``config.yaml`` and ``versions.json``.

Modules: :mod:`~geomae.bench.config` (the YAML), :mod:`~geomae.bench.data` (DataModules
and tile lists), :mod:`~geomae.bench.features` (embeddings and their cache),
:mod:`~geomae.bench.labels` (label-fraction subsets), :mod:`~geomae.bench.probe` and
:mod:`~geomae.bench.protocols` (what a cell does),
:mod:`~geomae.bench.metrics`, :mod:`~geomae.bench.records` (``cells.jsonl``, resume),
:mod:`~geomae.bench.runner`, :mod:`~geomae.bench.report` and :mod:`~geomae.bench.plot`.
"""

from geomae.bench.config import PROTOCOLS, BenchConfig, load_config, parse_config
from geomae.bench.records import Cell, CellRecord
from geomae.bench.runner import BenchOutcome, BenchRunner, run_benchmark

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
