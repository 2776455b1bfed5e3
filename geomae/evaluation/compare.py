"""Several backbones in one benchmark: each runs as usual, one table and one plot compare them.

With ``backbones: {name: weights}`` in the configuration, :func:`run_comparison`

1. runs the pre-flight of every backbone (bands of every band set, processing level,
   DataModules) before anything is written;
2. runs each backbone as a single-backbone benchmark in ``output/<name>/`` (its own
   ``cells.jsonl``, feature cache and reports: resume works per backbone, and adding a
   backbone later runs only that one);
3. writes the comparison to ``output/``:

   - ``results.csv``: ``backbone`` followed by the columns of a single-backbone
     ``results.csv``;
   - ``results.md``: one table, band set by band set, one row per backbone, columns
     protocol / metric (mean ± std over seeds); then the seconds per cell;
   - ``results.nc``: dims ``backbone``, ``band_set``, ``label_fraction``, ``protocol``,
     ``seed``;
   - ``results.png``: one panel per metric, bars of each backbone and protocol grouped
     by band set;
   - ``config.yaml`` and ``versions.json``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import xarray as xr

from geomae.errors import BandError
from geomae.evaluation.config import BenchConfig
from geomae.evaluation.metrics import METRICS
from geomae.evaluation.plot import bar_panels
from geomae.evaluation.provenance import write_config, write_versions
from geomae.evaluation.report import (
    CSV_COLUMNS,
    ReportTable,
    csv_rows,
    netcdf_engine,
    summarize,
    to_dataset,
    write_csv_rows,
)
from geomae.evaluation.runner import BenchOutcome, BenchRunner, Preflight, resolve_device

log = logging.getLogger(__name__)

__all__ = [
    "ComparisonOutcome",
    "comparison_markdown",
    "plot_comparison",
    "run_benchmark",
    "run_comparison",
    "write_comparison_csv",
    "write_comparison_netcdf",
]


@dataclass
class ComparisonOutcome(BenchOutcome):
    """A :class:`BenchOutcome` over every backbone, plus each backbone's own.

    Attributes:
        per_backbone: backbone name -> its single-backbone outcome.
        tables: backbone name -> its report table.
    """

    per_backbone: dict[str, BenchOutcome] = field(default_factory=dict)
    tables: dict[str, ReportTable] = field(default_factory=dict)


def _preflight_all(runners: Mapping[str, BenchRunner]) -> dict[str, Preflight]:
    """Pre-flight every backbone; the band errors of all of them in one message."""
    checked: dict[str, Preflight] = {}
    band_errors: list[str] = []
    for name, runner in runners.items():
        try:
            checked[name] = runner.preflight()
        except BandError as err:
            band_errors.append(f"backbone {name!r}: {err}")
    if band_errors:
        raise BandError(" | ".join(band_errors))
    return checked


def run_benchmark(config: BenchConfig) -> BenchOutcome:
    """Run (or resume) the benchmark of ``config`` and write its report.

    With ``backbones`` every backbone runs in its own sub-folder and the comparison is
    written to the output folder (:func:`run_comparison`).
    """
    if config.backbones:
        return run_comparison(config)
    return BenchRunner(config).run()


def run_comparison(config: BenchConfig) -> ComparisonOutcome:
    """Run (or resume) every backbone of ``config.backbones`` and write the comparison.

    Raises:
        BandError: backbones that lack bands of band sets (each one named).
        ConfigError, FileNotFoundError: as :meth:`BenchRunner.preflight`.
    """
    runners = {name: BenchRunner(config.for_backbone(name)) for name in config.backbones}
    checked = _preflight_all(runners)
    output = config.output
    output.mkdir(parents=True, exist_ok=True)
    files = {"config": output / "config.yaml", "versions": output / "versions.json"}
    write_config(files["config"], config.raw)
    write_versions(files["versions"], {"device": str(resolve_device(config.device))})
    outcome = ComparisonOutcome(output=output)
    for name, runner in runners.items():
        log.info("backbone %s (%s) -> %s", name, config.backbones[name], runner.output)
        result = runner.run(checked[name])
        outcome.per_backbone[name] = result
        outcome.ran.extend(result.ran)
        outcome.skipped.extend(result.skipped)
        outcome.records.extend(result.records)
        task = checked[name].task
        outcome.tables[name] = ReportTable(
            records=result.records,
            band_sets=config.band_sets,
            protocols=list(config.protocols),
            metrics=list(METRICS[task]),
            attrs={
                "weights": str(config.backbones[name]),
                "backbone_sha256": checked[name].backbone.sha256 or "none",
                "data": config.data.class_path,
                "task": task,
            },
        )
    files.update(
        csv=output / "results.csv",
        md=output / "results.md",
        nc=output / "results.nc",
        png=output / "results.png",
    )
    write_comparison_csv(outcome.tables, files["csv"])
    files["md"].write_text(comparison_markdown(outcome.tables))
    write_comparison_netcdf(outcome.tables, files["nc"])
    plot_comparison(outcome.tables, files["png"])
    outcome.files = files
    outcome.markdown = files["md"].read_text()
    return outcome


def write_comparison_csv(tables: Mapping[str, ReportTable], path: Path) -> None:
    """``results.csv`` of a comparison: ``backbone`` + the single-backbone columns."""
    rows = ([name, *row] for name, table in tables.items() for row in csv_rows(table))
    write_csv_rows(path, ("backbone", *CSV_COLUMNS), rows)


def _columns(tables: Mapping[str, ReportTable]) -> list[tuple[str, str]]:
    """(protocol, metric) with a value for some backbone, in configuration order."""
    first = next(iter(tables.values()))
    return [
        (p, m)
        for p in first.protocols
        for m in first.metrics
        if any(r.protocol == p and m in r.metrics for t in tables.values() for r in t.records)
    ]


def _fractions(tables: Mapping[str, ReportTable]) -> list[float]:
    """Every label fraction of any backbone, ascending."""
    return sorted({f for t in tables.values() for f in t.label_fractions})


def comparison_markdown(tables: Mapping[str, ReportTable]) -> str:
    """``results.md`` of a comparison: band set by band set, one row per backbone."""
    first = next(iter(tables.values()))
    columns = _columns(tables)
    seeds = sorted({s for t in tables.values() for s in t.seeds})
    fractions = _fractions(tables)
    several = fractions != [1.0]
    lines = ["# Band-configuration benchmark: backbones compared", ""]
    for name, table in tables.items():
        attrs = table.attrs
        lines.append(
            f"- {name}: {attrs.get('weights')} (sha256 {str(attrs.get('backbone_sha256'))[:12]})"
        )
    lines.append(f"- data: {first.attrs.get('data')} ({first.attrs.get('task')})")
    lines.append(f"- seeds: {', '.join(map(str, seeds))} (mean ± sample std over seeds)")
    header = "| band set | bands | " + ("labels | " if several else "") + "backbone | "
    header += " | ".join(f"{p} {m}" for p, m in columns)
    lines += ["", header + " |", "|" + " --- |" * (3 + several + len(columns))]
    for band_set, bands in first.band_sets.items():
        i = 0
        for fraction in fractions:
            for name, table in tables.items():
                cells = [summarize(table, band_set, p, m, fraction).format() for p, m in columns]
                label = f"{band_set} | {' '.join(bands)}" if i == 0 else " | "
                if several:
                    label += f" | {fraction:g}"
                lines.append(f"| {label} | {name} | " + " | ".join(cells) + " |")
                i += 1
    protocols = list(dict.fromkeys(p for p, _ in columns))
    lines += ["", "Mean seconds per cell (shared feature extraction not included):", ""]
    lines.append("| band set | backbone | " + " | ".join(protocols) + " |")
    lines.append("|" + " --- |" * (2 + len(protocols)))
    for band_set in first.band_sets:
        for i, (name, table) in enumerate(tables.items()):
            cells = []
            for p in protocols:
                secs = [
                    r.seconds for r in table.records if r.band_set == band_set and r.protocol == p
                ]
                cells.append(f"{np.mean(secs):.2f}" if secs else "-")
            lines.append(f"| {band_set if i == 0 else ''} | {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_comparison_netcdf(tables: Mapping[str, ReportTable], path: Path) -> str:
    """``results.nc`` with a ``backbone`` dimension; returns the engine used."""
    names = list(tables)
    datasets = [to_dataset(table) for table in tables.values()]
    combined = xr.concat(
        datasets, dim="backbone", join="outer", combine_attrs="drop_conflicts"
    ).assign_coords(backbone=np.array(names, dtype=object))
    for name, table in tables.items():
        combined.attrs[f"weights_{name}"] = str(table.attrs.get("weights"))
        combined.attrs[f"sha256_{name}"] = str(table.attrs.get("backbone_sha256"))
    engine = netcdf_engine()
    tmp = path.with_name(path.name + ".tmp")
    combined.to_netcdf(tmp, engine=engine)  # type: ignore[call-overload]
    tmp.replace(path)
    return engine


def plot_comparison(tables: Mapping[str, ReportTable], path: Path) -> None:
    """``results.png``: per metric, bars of each backbone x protocol, grouped by band set."""
    first = next(iter(tables.values()))
    columns = _columns(tables)
    metrics = list(dict.fromkeys(m for _, m in columns))
    protocols = list(dict.fromkeys(p for p, _ in columns))
    series = [(f"{name}: {p}", tables[name], p) for name in tables for p in protocols]
    fractions = _fractions(tables)
    fig, handles, labels = bar_panels(
        series,
        list(first.band_sets),
        metrics,
        inches_per_bar=0.3,
        height=4.2,
        capsize=2,
        label_fractions=fractions if fractions != [1.0] else [None],
    )
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(len(handles), 4), fontsize="small")
    fig.suptitle(f"band-configuration benchmark: {', '.join(tables)}")
    rows = -(-len(handles) // 4) if handles else 1
    fig.tight_layout(rect=(0.0, (0.06 + 0.05 * rows) / len(fractions), 1.0, 1.0))
    fig.savefig(path, dpi=120)
