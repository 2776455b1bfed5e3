"""Peak memory of `geomae predict-scene`: the bundled scene vs a 4x larger 2x2 mosaic of it.

Writes, in a temporary folder, every band of the scene as a GeoTIFF (same grid, same
file names with ``.tif``) and a 2x2 mosaic of it (each band tiled twice in x and y,
the transform extended from the same corner), then runs ``geomae predict-scene`` on the
bundled scene as shipped (JPEG 2000), on the GeoTIFF copy and on the mosaic, each in
its own process, and reports each process's peak RSS (``os.wait4``'s ``ru_maxrss``).
A process that only imports geomae and loads the model gives the fixed cost. The ratio
that matters is mosaic / GeoTIFF copy (same format, 4x the pixels). A 2x1 mosaic (twice
as tall, as wide) shows what the height costs: the row band spans the width only.

    python benchmarks/predict_scene_memory.py \
        --ckpt runs/predict_check/version_0/checkpoints/BEST.ckpt
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio

SCENE = Path(__file__).parents[1] / "datasets" / "sentinel2_sample" / "IMG_DATA"


def write_copy(scene: Path, out: Path, *, tiles: tuple[int, int]) -> tuple[int, int]:
    """Every band file of ``scene`` as a GeoTIFF in ``out``, repeated ``(rows, columns)`` times."""
    out.mkdir(parents=True)
    size = (0, 0)
    for path in sorted(scene.glob("*_B*.jp2")):
        with rasterio.open(path) as src:
            data = np.tile(src.read(), (1, *tiles))  # (1, rows H, columns W)
            profile = {
                "driver": "GTiff",
                "width": data.shape[2],
                "height": data.shape[1],
                "count": 1,
                "dtype": data.dtype.name,
                "crs": src.crs,
                "transform": src.transform,  # same corner, same pixel size: extended grid
                "tiled": True,
                "blockxsize": 256,
                "blockysize": 256,
            }
            if src.nodata is not None:
                profile["nodata"] = src.nodata
        with rasterio.open(out / f"{path.stem}.tif", "w", **profile) as dst:
            dst.write(data)
        if path.stem.endswith("_B02"):
            size = (data.shape[2], data.shape[1])
    return size


def peak_rss(command: list[str]) -> tuple[float, float]:
    """Run ``command``; its peak RSS in MiB and wall seconds."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.stderr.write(err.decode(errors="replace"))
        raise SystemExit(f"{' '.join(command)} failed ({proc.returncode})")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="SegmentationTask checkpoint")
    parser.add_argument("--scene", type=Path, default=SCENE)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="predict_scene_memory_") as tmp:
        root = Path(tmp)
        with rasterio.open(next(args.scene.glob("*_B02.jp2"))) as src:
            shipped = (src.width, src.height)
        scenes = {
            "bundled (JP2)": (args.scene, shipped),
            "GeoTIFF copy": (root / "copy", write_copy(args.scene, root / "copy", tiles=(1, 1))),
            "2x2 mosaic": (root / "mosaic", write_copy(args.scene, root / "mosaic", tiles=(2, 2))),
            "2x1 (twice as tall)": (
                root / "tall",
                write_copy(args.scene, root / "tall", tiles=(2, 1)),
            ),
        }
        load_only = [
            sys.executable,
            "-c",
            "import sys; from geomae.inference import load_predictor; "
            "load_predictor(sys.argv[1], device='cpu')",
            args.ckpt,
        ]
        base, _ = peak_rss(load_only)
        rows = []
        for name, (folder, (width, height)) in scenes.items():
            command = [
                sys.executable,
                "-m",
                "geomae.main",
                "predict-scene",
                args.ckpt,
                str(folder),
                "-o",
                str(root / f"{folder.name}.tif"),
                "--device",
                "cpu",
                "--batch-size",
                str(args.batch_size),
                "--no-progress",
            ]
            rss, seconds = peak_rss(command)
            rows.append((name, width, height, rss, seconds))
    print(f"fixed cost (import geomae + load the checkpoint): peak RSS {base:.0f} MiB")
    print("| scene | px | peak RSS MiB | above fixed cost MiB | wall s |")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, width, height, rss, seconds in rows:
        print(f"| {name} | {width} x {height} | {rss:.0f} | {rss - base:.0f} | {seconds:.1f} |")
    copy, mosaic = rows[1][3], rows[2][3]
    print(f"ratio mosaic / GeoTIFF copy (4x the pixels): {mosaic / copy:.3f} (peak RSS)")
    print(f"  above the fixed cost: {(mosaic - base) / max(copy - base, 1e-9):.3f}")
    print(f"ratio mosaic / bundled JP2: {mosaic / rows[0][3]:.3f}")


if __name__ == "__main__":
    main()
