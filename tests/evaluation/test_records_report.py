"""cells.jsonl records and the csv / md / nc / png report."""

import csv
import math

import numpy as np
import pytest
import xarray as xr

from geomae.errors import DataError
from geomae.evaluation.plot import plot_results
from geomae.evaluation.records import Cell, CellLog, CellRecord
from geomae.evaluation.report import (
    ReportTable,
    markdown,
    netcdf_engine,
    summarize,
    write_csv,
    write_netcdf,
)

BAND_SETS = {"rgb": ("B02", "B03", "B04"), "custom": ("B04", "B08", "B11")}


def record(band_set, protocol, seed, oa, f1=0.5, seconds=1.0):
    return CellRecord(
        band_set=band_set,
        bands=list(BAND_SETS[band_set]),
        protocol=protocol,
        seed=seed,
        metrics={"OA": oa, "F1_macro": f1},
        seconds=seconds,
        fingerprint="f" * 16,
    )


@pytest.fixture
def table():
    records = [
        record("rgb", "linear", 0, 0.80),
        record("rgb", "linear", 1, 0.90),
        record("rgb", "stats_baseline", 0, 0.50),
        record("custom", "linear", 1, 0.70),  # one seed only
    ]
    return ReportTable(
        records=records,
        band_sets=BAND_SETS,
        protocols=["linear", "stats_baseline"],
        metrics=["OA", "F1_macro"],
        attrs={"backbone": "w.safetensors", "task": "multiclass"},
    )


def test_cell_log_round_trip_and_cut_off_line(tmp_path):
    log = CellLog(tmp_path / "cells.jsonl")
    assert log.load() == []
    first, second = record("rgb", "linear", 0, 0.8), record("rgb", "linear", 0, 0.9)
    log.append(first)
    with log.path.open("a") as f:
        f.write('{"band_set": "rgb", "bands": [')  # a run killed mid-write
    assert log.load() == [first]
    log.append(second)  # starts on a new line
    assert log.load() == [first, second]
    assert CellLog.latest(log.load()) == {Cell("rgb", "linear", 0): second}


def test_malformed_line_in_the_middle_is_an_error(tmp_path):
    path = tmp_path / "cells.jsonl"
    path.write_text("not json\n" + record("rgb", "linear", 0, 0.8).to_json() + "\n")
    with pytest.raises(DataError, match=f"{path}:1: not a benchmark cell record"):
        CellLog(path).load()


def test_summary_is_mean_and_sample_std(table):
    s = summarize(table, "rgb", "linear", "OA")
    assert (s.n, s.mean) == (2, pytest.approx(0.85))
    assert s.std == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert s.format() == "0.850 ± 0.071"
    assert summarize(table, "custom", "linear", "OA").format() == "0.700"
    assert summarize(table, "custom", "stats_baseline", "OA").format() == "-"


def test_csv_has_one_row_per_cell_and_metric(table, tmp_path):
    path = tmp_path / "results.csv"
    write_csv(table, path)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "band_set", "bands", "protocol", "label_fraction", "seed", "metric", "value", "seconds"
    ]  # fmt: skip
    assert len(rows) == 4 * 2
    assert rows[0] == {
        "band_set": "rgb", "bands": "B02,B03,B04", "protocol": "linear", "label_fraction": "1",
        "seed": "0", "metric": "OA", "value": "0.8", "seconds": "1.000",
    }  # fmt: skip
    assert [r["band_set"] for r in rows[-2:]] == ["custom", "custom"]


def test_markdown_rows_are_band_sets_and_columns_protocol_metrics(table):
    text = markdown(table)
    header = next(line for line in text.splitlines() if line.startswith("| band set | bands"))
    assert header == (
        "| band set | bands | linear OA | linear F1_macro | stats_baseline OA "
        "| stats_baseline F1_macro |"
    )
    assert "| rgb | B02 B03 B04 | 0.850 ± 0.071 | 0.500 ± 0.000 | 0.500 | 0.500 |" in text
    assert "| custom | B04 B08 B11 | 0.700 | 0.500 | - | - |" in text
    assert "- backbone: w.safetensors" in text


def test_netcdf_round_trips_with_dims_and_band_attrs(table, tmp_path):
    path = tmp_path / "results.nc"
    engine = write_netcdf(table, path)
    assert engine == netcdf_engine()
    with xr.open_dataset(path, engine=engine) as ds:
        ds.load()
    assert ds["OA"].dims == ("band_set", "label_fraction", "protocol", "seed")
    assert list(ds["band_set"].values) == ["rgb", "custom"]
    assert list(ds["protocol"].values) == ["linear", "stats_baseline"]
    assert list(ds["seed"].values) == [0, 1]
    assert set(ds.data_vars) == {"OA", "F1_macro", "seconds"}
    assert ds["OA"].sel(band_set="rgb", protocol="linear", seed=1, label_fraction=1.0) == 0.9  # noqa: E501
    assert math.isnan(ds["OA"].sel(band_set="custom", protocol="linear", seed=0, label_fraction=1))
    assert ds.attrs["bands_rgb"] == "B02,B03,B04"
    assert ds.attrs["bands_custom"] == "B04,B08,B11"
    assert ds.attrs["task"] == "multiclass"


def test_plot_writes_a_png(table, tmp_path):
    path = tmp_path / "results.png"
    plot_results(table, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
