"""``geomae prepare`` on Dask: scenes per minute with 1 and 2 worker processes.

The bundled real scenes (``datasets/sentinel2_sample/IMG_DATA``, 1536 x 768 px at 10 m,
and ``datasets/sentinel2_virginia/IMG_DATA``, 1933 x 1947 px) are each linked
``--copies`` times into a temporary folder (symlinks: every copy is a scene of its own
to the prepare; the Virginia files are linked under product names
``T18SVG_20160112T160000_B02.jp2`` so one band pattern reads both), then
:func:`geomae.store.parallel.prepare_scenes` cuts all of them into one store on a
local cluster of 1, then 2 single-threaded worker processes. The cluster is started
and its workers import geomae before the clock starts (start-up is printed apart);
the timed part is the whole prepare: opening the scenes, cutting them into parts, and
assembling the store (the log on stderr gives the time of each phase). ``CPU s`` is
the CPU time the workers and the client spent in the timed part: on a machine shared
with other jobs the wall-clock ratio says how many cores were free, the CPU time
whether the parallel path costs more work. The largest
scenes are cut first, so with 2 workers the two Virginia copies run side by side.
The script prints scenes/min for each worker count and the ratio 2 workers / 1
worker from the same run.

    nice -n 10 python benchmarks/prepare_dask.py [--copies 2] [--tile-size 64] [--json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from geomae.store import TileStore
from geomae.store.parallel import prepare_scenes
from geomae.store.writer import CutOptions

DATASETS = Path(__file__).parents[1] / "datasets"
SAMPLE = DATASETS / "sentinel2_sample" / "IMG_DATA"
VIRGINIA = DATASETS / "sentinel2_virginia" / "IMG_DATA"


def link_scenes(root: Path, copies: int) -> list[str]:
    """``copies`` symlinked copies of each bundled scene under ``root``, interleaved."""
    scenes = []
    for k in range(copies):
        sample = root / f"sample_{k}"
        sample.symlink_to(SAMPLE, target_is_directory=True)
        virginia = root / f"virginia_{k}"
        virginia.mkdir()
        for band_file in sorted(VIRGINIA.glob("s2_B*.jp2")):
            band = band_file.stem.removeprefix("s2_")
            (virginia / f"T18SVG_20160112T160000_{band}.jp2").symlink_to(band_file)
        scenes += [str(sample), str(virginia)]
    return scenes


def _warm_up() -> bool:
    import geomae.store.parts  # noqa: F401  (torch, torchgeo, rasterio)

    return True


def _cpu_seconds() -> float:
    """User + system CPU seconds of this (worker) process so far."""
    times = os.times()
    return times.user + times.system


def time_prepare(scenes: list[str], out: Path, workers: int, tile_size: int) -> dict[str, float]:
    """Start a ``workers``-process cluster, warm it up, then time one prepare."""
    from dask.distributed import Client, LocalCluster

    start = time.perf_counter()
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm_up)
        startup = time.perf_counter() - start
        cpu = sum(client.run(_cpu_seconds).values()) + _cpu_seconds()
        load = os.getloadavg()[0]
        start = time.perf_counter()
        info = prepare_scenes(
            scenes,
            out,
            options=CutOptions(tile_size=tile_size, stride=tile_size),
            scheduler=cluster.scheduler_address,
        )
        seconds = time.perf_counter() - start
        cpu = sum(client.run(_cpu_seconds).values()) + _cpu_seconds() - cpu
    return {
        "workers": workers,
        "scenes": len(scenes),
        "tiles": info.num_tiles,
        "startup_s": round(startup, 1),
        "seconds": round(seconds, 1),
        "scenes_per_min": round(len(scenes) / seconds * 60, 2),
        "cpu_s": round(cpu, 1),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=2, help="copies of each bundled scene")
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("geomae.store.parallel").setLevel(logging.INFO)  # phase times

    with tempfile.TemporaryDirectory() as tmp:
        scenes = link_scenes(Path(tmp), args.copies)
        rows = [
            time_prepare(scenes, Path(tmp) / f"store_{w}.zarr", int(w), args.tile_size)
            for w in args.workers.split(",")
        ]
        stores = [TileStore(Path(tmp) / f"store_{r['workers']}.zarr") for r in rows]
        same = all(np.array_equal(s.bounds, stores[0].bounds) for s in stores)
    ratio = rows[-1]["scenes_per_min"] / rows[0]["scenes_per_min"]
    if args.json:
        print(json.dumps({"rows": rows, "ratio": round(ratio, 2), "same_tiles": same}))
        return
    print(f"{len(scenes)} scenes ({args.copies} x sample + {args.copies} x virginia), ")
    print(f"tile size {args.tile_size}, stores identical across worker counts: {same}")
    print(
        "| workers | scenes | tiles | start-up s | prepare s | scenes/min | CPU s "
        "| load 1-min before / after |"
    )
    print("|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        print(
            f"| {r['workers']} | {r['scenes']} | {r['tiles']} | {r['startup_s']} | "
            f"{r['seconds']} | {r['scenes_per_min']} | {r['cpu_s']} | "
            f"{r['load_before']} / {r['load_after']} |"
        )
    print(f"ratio {rows[-1]['workers']} / {rows[0]['workers']} workers: {ratio:.2f}")


if __name__ == "__main__":
    main()
