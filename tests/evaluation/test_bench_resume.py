"""Re-runs of the benchmark skip finished cells; random init without a weights file."""

from geomae.evaluation import BenchRunner, load_config


def test_rerun_skips_finished_cells_and_reruns_changed_ones(
    tmp_path, eurosat_root, backbone_all, bench
):
    out = tmp_path / "out"
    cfg = bench.eurosat_config(eurosat_root, out, backbone=backbone_all, seeds=[0])
    cfg["band_sets"]["10m"] = "10m"  # the bands of rgbn under another name
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)

    first = BenchRunner(load_config(path))
    outcome = first.run()
    assert len(outcome.ran) == 8 and outcome.skipped == []
    assert first.executions == 6  # 10m takes the results of rgbn
    by_cell = {(r.band_set, r.protocol): r for r in outcome.records}
    for protocol in ("linear", "stats_baseline"):
        assert by_cell[("10m", protocol)].metrics == by_cell[("rgbn", protocol)].metrics
        assert by_cell[("10m", protocol)].info["same_as"] == "rgbn"
    log_before = (out / "cells.jsonl").read_text()

    again = BenchRunner(load_config(path))
    outcome = again.run()
    assert again.executions == 0 and outcome.ran == [] and len(outcome.skipped) == 8
    assert (out / "cells.jsonl").read_text() == log_before
    assert len(bench.read_csv(out / "results.csv")) == 8 * 2

    # more seeds add cells; the report holds every seed
    more = BenchRunner(load_config(path, seeds=[1]))
    more.run()
    assert more.executions == 6
    assert {int(r["seed"]) for r in bench.read_csv(out / "results.csv")} == {0, 1}

    # a changed band set reruns only its cells and the report shows its new bands
    cfg["band_sets"]["custom"] = ["B04", "B08", "B12"]
    path = bench.write_config(tmp_path / "bench.yaml", **cfg)
    changed = BenchRunner(load_config(path))
    outcome = changed.run()
    assert changed.executions == 2
    assert {(c.band_set, c.seed) for c in outcome.ran} == {("custom", 0)}
    rows = bench.read_csv(out / "results.csv")
    assert {r["bands"] for r in rows if r["band_set"] == "custom"} == {"B04,B08,B12"}
    assert {int(r["seed"]) for r in rows if r["band_set"] == "custom"} == {0}


def test_random_init_without_weights_file(tmp_path, eurosat_root, bench):
    out = tmp_path / "out"
    cfg = bench.eurosat_config(
        eurosat_root, out, backbone=None, arch=bench.TINY_ARCH, band_sets={"rgb": "rgb"},
        protocols=["linear", "random_init"], seeds=[0, 1],
    )  # fmt: skip
    outcome = BenchRunner(load_config(bench.write_config(tmp_path / "b.yaml", **cfg))).run()
    by_cell = {(r.protocol, r.seed): r.metrics for r in outcome.records}
    # without weights `linear` probes the random init too: the same numbers
    assert by_cell[("linear", 0)] == by_cell[("random_init", 0)]
    assert by_cell[("linear", 1)] == by_cell[("random_init", 1)]
    assert len(list((out / "features").glob("train-random-s*.npz"))) == 2
