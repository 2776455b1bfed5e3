"""The benchmark's tables: ``results.csv``, ``results.md`` and ``results.nc``.

All are regenerated from the cell records (:mod:`geomae.evaluation.records`):

- ``results.csv``: one row per band set x protocol x label fraction x seed x metric,
  columns ``band_set, bands, protocol, label_fraction, seed, metric, value, seconds``;
- ``results.md``: mean ± sample standard deviation over seeds, rows band sets (and,
  with several label fractions, one row per band set and fraction, column
  ``labels``), columns protocol / metric, then the mean seconds per cell;
- ``results.nc``: an xarray Dataset with dims ``band_set``, ``label_fraction``,
  ``protocol``, ``seed``, one variable per metric plus ``seconds`` (NaN where a cell is
  missing); the bands of
  each band set are the attributes ``bands_<name>`` (comma-joined), written with the
  first available of the h5netcdf (needs h5py), netCDF4 and scipy engines.
"""

from __future__ import annotations

import csv
import importlib.util
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from geomae.evaluation.records import CellRecord

__all__ = [
    "ReportTable",
    "Summary",
    "csv_rows",
    "markdown",
    "netcdf_engine",
    "summarize",
    "to_dataset",
    "write_csv",
    "write_csv_rows",
    "write_markdown",
    "write_netcdf",
]

#: xarray NetCDF engines in order of preference, with the modules each needs.
_ENGINES = (("h5netcdf", ("h5netcdf", "h5py")), ("netcdf4", ("netCDF4",)), ("scipy", ("scipy",)))
CSV_COLUMNS = (
    "band_set",
    "bands",
    "protocol",
    "label_fraction",
    "seed",
    "metric",
    "value",
    "seconds",
)


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (0 for one seed) and number of seeds."""

    mean: float
    std: float
    n: int

    def format(self, digits: int = 3) -> str:
        """``0.912 ± 0.004`` (only the mean for a single seed, ``-`` when missing)."""
        if self.n == 0 or math.isnan(self.mean):
            return "-"
        if self.n == 1:
            return f"{self.mean:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {self.std:.{digits}f}"


@dataclass(frozen=True)
class ReportTable:
    """The records of one benchmark and the order to show them in.

    Attributes:
        records: one record per cell.
        band_sets: band-set name -> bands, in configuration order.
        protocols: protocols in configuration order.
        metrics: metric names in report order.
        attrs: provenance shown in the headers (backbone, data, split...).
    """

    records: Sequence[CellRecord]
    band_sets: Mapping[str, Sequence[str]]
    protocols: Sequence[str]
    metrics: Sequence[str]
    attrs: Mapping[str, Any]

    @property
    def seeds(self) -> list[int]:
        """Every seed with a record, sorted."""
        return sorted({r.seed for r in self.records})

    @property
    def label_fractions(self) -> list[float]:
        """Every label fraction with a record, ascending (``[1.0]`` without records)."""
        return sorted({float(r.label_fraction) for r in self.records}) or [1.0]

    def ordered(self) -> list[CellRecord]:
        """Records by band set, protocol (configuration order), label fraction and seed."""
        bs = {name: i for i, name in enumerate(self.band_sets)}
        pr = {name: i for i, name in enumerate(self.protocols)}
        return sorted(
            self.records,
            key=lambda r: (
                bs.get(r.band_set, len(bs)),
                pr.get(r.protocol, len(pr)),
                r.label_fraction,
                r.seed,
            ),
        )


def summarize(
    table: ReportTable,
    band_set: str,
    protocol: str,
    metric: str,
    label_fraction: float | None = None,
) -> Summary:
    """Mean ± std over seeds of one band set, protocol, metric (and label fraction).

    Args:
        table: the records.
        band_set: band-set name.
        protocol: protocol name.
        metric: metric name.
        label_fraction: only records of this label fraction (None: every record).
    """
    values = [
        r.metrics[metric]
        for r in table.records
        if r.band_set == band_set
        and r.protocol == protocol
        and metric in r.metrics
        and (label_fraction is None or r.label_fraction == label_fraction)
    ]
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return Summary(float("nan"), float("nan"), 0)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return Summary(float(np.mean(values)), std, len(values))


def csv_rows(table: ReportTable) -> Iterator[list[str | int]]:
    """The data rows of ``results.csv``, in :data:`CSV_COLUMNS` order.

    Args:
        table: the records and their order.

    Yields:
        One row per record and metric it has: band set, comma-joined bands, protocol,
        label fraction, seed, metric, value (``repr`` of the float) and seconds (3
        decimals).
    """
    for record in table.ordered():
        for metric in table.metrics:
            if metric not in record.metrics:
                continue
            yield [
                record.band_set,
                ",".join(record.bands),
                record.protocol,
                f"{record.label_fraction:g}",
                record.seed,
                metric,
                repr(float(record.metrics[metric])),
                f"{record.seconds:.3f}",
            ]


def write_csv_rows(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Write a CSV file through a ``.tmp`` sibling, replaced into place at the end.

    Args:
        path: the CSV file.
        header: the column names.
        rows: the data rows.
    """
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    tmp.replace(path)


def write_csv(table: ReportTable, path: Path) -> None:
    """Write ``results.csv`` (see the module docstring)."""
    write_csv_rows(path, CSV_COLUMNS, csv_rows(table))


def _protocol_metrics(table: ReportTable) -> list[tuple[str, str]]:
    """(protocol, metric) columns that have at least one value."""
    return [
        (p, m)
        for p in table.protocols
        for m in table.metrics
        if any(r.protocol == p and m in r.metrics for r in table.records)
    ]


def markdown(table: ReportTable) -> str:
    """The ``results.md`` text: metric table, then seconds per cell."""
    columns = _protocol_metrics(table)
    seeds = table.seeds
    fractions = table.label_fractions
    several = fractions != [1.0]
    lines = ["# Band-configuration benchmark", ""]
    for key, value in table.attrs.items():
        lines.append(f"- {key}: {value}")
    lines.append(f"- seeds: {', '.join(map(str, seeds))} (mean ± sample std over seeds)")
    if several:
        lines.append(
            f"- labels: share of the training tiles (stratified per class, seeded): "
            f"{', '.join(f'{f:g}' for f in fractions)}"
        )
    head = "| band set | bands | " + ("labels | " if several else "")
    lines += ["", head + " | ".join(f"{p} {m}" for p, m in columns) + " |"]
    lines.append("|" + " --- |" * (2 + several + len(columns)))
    for name, bands in table.band_sets.items():
        for fraction in fractions:
            cells = [summarize(table, name, p, m, fraction).format() for p, m in columns]
            label = f"{fraction:g} | " if several else ""
            lines.append(f"| {name} | {' '.join(bands)} | {label}" + " | ".join(cells) + " |")
    protocols = [p for p in table.protocols if any(r.protocol == p for r in table.records)]
    lines += ["", "Mean seconds per cell (shared feature extraction not included):", ""]
    lines.append("| band set | " + ("labels | " if several else "") + " | ".join(protocols) + " |")
    lines.append("|" + " --- |" * (1 + several + len(protocols)))
    for name in table.band_sets:
        for fraction in fractions:
            cells = []
            for p in protocols:
                secs = [
                    r.seconds
                    for r in table.records
                    if r.band_set == name and r.protocol == p and r.label_fraction == fraction
                ]
                cells.append(f"{np.mean(secs):.2f}" if secs else "-")
            label = f"{fraction:g} | " if several else ""
            lines.append(f"| {name} | {label}" + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def to_dataset(table: ReportTable) -> xr.Dataset:
    """The records as an xarray Dataset (see the module docstring)."""
    band_sets, protocols, seeds = list(table.band_sets), list(table.protocols), table.seeds
    fractions = table.label_fractions
    shape = (len(band_sets), len(fractions), len(protocols), len(seeds))
    arrays = {name: np.full(shape, np.nan) for name in [*table.metrics, "seconds"]}
    bi = {n: i for i, n in enumerate(band_sets)}
    fi = {f: i for i, f in enumerate(fractions)}
    pi = {n: i for i, n in enumerate(protocols)}
    si = {n: i for i, n in enumerate(seeds)}
    for r in table.records:
        if r.band_set not in bi or r.protocol not in pi:
            continue
        at = (bi[r.band_set], fi[float(r.label_fraction)], pi[r.protocol], si[r.seed])
        arrays["seconds"][at] = r.seconds
        for metric, value in r.metrics.items():
            if metric in arrays:
                arrays[metric][at] = value
    dims = ("band_set", "label_fraction", "protocol", "seed")
    data_vars = {name: (dims, values) for name, values in arrays.items()}
    attrs: dict[str, Any] = {str(k): str(v) for k, v in table.attrs.items()}
    for name, bands in table.band_sets.items():
        attrs[f"bands_{name}"] = ",".join(bands)
    dataset = xr.Dataset(
        data_vars,
        coords={
            "band_set": np.array(band_sets, dtype=object),
            "label_fraction": np.array(fractions, dtype=np.float64),
            "protocol": np.array(protocols, dtype=object),
            "seed": np.array(seeds, dtype=np.int64),
        },
        attrs=attrs,
    )
    dataset["seconds"].attrs["units"] = "s"
    dataset["label_fraction"].attrs["long_name"] = "share of the training tiles with labels"
    return dataset


def netcdf_engine() -> str:
    """The first usable xarray NetCDF writer: h5netcdf (with h5py), netcdf4, scipy."""
    for engine, modules in _ENGINES:
        if all(importlib.util.find_spec(m) is not None for m in modules):
            return engine
    raise ImportError(
        "no NetCDF writer for results.nc: install h5netcdf with h5py, netCDF4 or scipy"
    )


def write_netcdf(table: ReportTable, path: Path) -> str:
    """Write ``results.nc`` with :func:`netcdf_engine`; returns the engine used."""
    engine = netcdf_engine()
    tmp = path.with_name(path.name + ".tmp")
    to_dataset(table).to_netcdf(tmp, engine=engine)  # type: ignore[call-overload]
    tmp.replace(path)
    return engine


def write_markdown(table: ReportTable, path: Path) -> None:
    """Write ``results.md``."""
    path.write_text(markdown(table))
