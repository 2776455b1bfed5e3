"""Loader throughput: torchgeo random GeoSampling vs the geomae tile store, side by side.

Both paths are what a user trains with: ``Sentinel2PretrainDataModule`` (torchgeo
``RandomGeoSampler`` over the bundled JP2 scene, every sample a windowed, resampled
read of 12 band files) and ``TileStoreDataModule`` over a store that ``geomae prepare``
writes from the same scene (same tile size, same bands). Each round times both train
loaders (A B A B ..., warm-up batch excluded so worker start-up does not count) for 0
and 2 workers, and the script prints samples/s and the ratio store / torchgeo.

    python benchmarks/loader.py [--tile-size 64] [--batch-size 32] [--samples 256] [--rounds 2]
    python benchmarks/loader.py --json   # one JSON object
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from geomae.datamodules import Sentinel2PretrainDataModule, TileStoreDataModule
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.store import write_tile_store

SCENE = Path(__file__).parents[1] / "datasets" / "sentinel2_sample" / "IMG_DATA"
STATS = SCENE.parent / "stats.yaml"


def samples_per_second(loader, samples: int) -> float:
    """Iterate ``loader`` (re-starting epochs as needed) and time ``samples`` tiles."""
    it = iter(loader)
    next(it)  # warm-up: worker start-up and first reads are not timed
    seen, start = 0, time.perf_counter()
    while seen < samples:
        try:
            batch = next(it)
        except StopIteration:
            it = iter(loader)
            continue
        seen += batch["image"].shape[0]
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--samples", type=int, default=256, help="timed samples per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", default="0,2")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "sample.zarr"
        start = time.perf_counter()
        info = write_tile_store(
            Sentinel2Scenes(paths=str(SCENE), bands="all"), store, tile_size=args.tile_size
        )
        prepare_s = time.perf_counter() - start
        results: dict[int, dict[str, list[float]]] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            geo = Sentinel2PretrainDataModule(
                paths=str(SCENE),
                stats=str(STATS),
                patch_size=args.tile_size,
                batch_size=args.batch_size,
                length=args.samples + args.batch_size,
                num_workers=workers,
                pin_memory=False,
            )
            tiles = TileStoreDataModule(
                path=str(store),
                batch_size=args.batch_size,
                num_workers=workers,
                pin_memory=False,
            )
            geo.setup("fit")
            tiles.setup("fit")
            runs = results.setdefault(workers, {"torchgeo": [], "store": []})
            for _ in range(args.rounds):
                runs["torchgeo"].append(samples_per_second(geo.train_dataloader(), args.samples))
                runs["store"].append(samples_per_second(tiles.train_dataloader(), args.samples))

    table = []
    for workers, runs in results.items():
        geo_s, store_s = statistics.median(runs["torchgeo"]), statistics.median(runs["store"])
        table.append(
            {
                "workers": workers,
                "torchgeo_samples_s": round(geo_s, 1),
                "store_samples_s": round(store_s, 1),
                "ratio": round(store_s / geo_s, 1),
            }
        )
    if args.json:
        print(
            json.dumps(
                {
                    "tile_size": args.tile_size,
                    "batch_size": args.batch_size,
                    "store_tiles": info.num_tiles,
                    "prepare_s": round(prepare_s, 1),
                    "results": table,
                }
            )
        )
        return
    print(f"store: {info.num_tiles} tiles of {args.tile_size} px written in {prepare_s:.1f} s")
    print(f"{'workers':>7} | {'torchgeo samples/s':>18} | {'store samples/s':>15} | ratio")
    for row in table:
        print(
            f"{row['workers']:>7} | {row['torchgeo_samples_s']:>18} | "
            f"{row['store_samples_s']:>15} | {row['ratio']}x"
        )


if __name__ == "__main__":
    main()
