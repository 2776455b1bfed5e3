#!/usr/bin/env python3
"""Re-encode the Virginia Sentinel-2 scene losslessly as JPEG 2000, and prove it lossless.

Usage::

    python datasets/sentinel2_virginia/reencode.py SRC_DIR [-o OUT_DIR] [--verify-only]

``SRC_DIR`` is the scene folder as distributed (holding ``IMG_DATA/``) or its
``IMG_DATA`` folder. Every ``s2_B??.jp2`` band file is written under ``OUT_DIR``
(default: ``IMG_DATA`` beside this script) with the same name, as JPEG 2000 through
GDAL's JP2OpenJPEG driver with the reversible 5/3 wavelet (``REVERSIBLE=YES``,
``QUALITY=100``: lossless), keeping CRS, geotransform (so each band's own bounds, 10-40 m
off the 10 m grid for the 20 m / 60 m bands), size, data type (uint16) and nodata.

The distributed files are uncompressed GeoTIFFs despite their ``.jp2`` names; GDAL
opens both by content, so readers do not notice the change of container.

After writing, each output is read back and compared with its source: pixel arrays
(``numpy.array_equal``), dtype, size, band count, CRS, transform, bounds and nodata. Any
difference is logged and the script exits with status 1. ``--verify-only`` runs just
that comparison against an existing ``OUT_DIR``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import rasterio

logger = logging.getLogger("reencode")

#: File names of the 13 band files.
PATTERN = "s2_B??.jp2"

#: Creation options: lossless JPEG 2000 (reversible wavelet), GDAL's default 1024 px
#: tiles; GDAL writes the georeferencing as GeoJP2 and GMLJP2 boxes.
JP2_OPTIONS: dict[str, str] = {"CODEC": "JP2", "QUALITY": "100", "REVERSIBLE": "YES"}


def image_dir(folder: Path) -> Path:
    """``folder/IMG_DATA`` when it exists, else ``folder``."""
    return folder / "IMG_DATA" if (folder / "IMG_DATA").is_dir() else folder


def band_files(folder: Path) -> list[Path]:
    """The band files in ``folder`` (sorted); exits if there are none."""
    files = sorted(folder.glob(PATTERN))
    if not files:
        raise SystemExit(f"no {PATTERN} files in {folder}")
    return files


def encode(src_path: Path, dst_path: Path) -> None:
    """Write ``src_path``'s pixels and georeferencing to ``dst_path`` as lossless JP2."""
    with rasterio.open(src_path) as src:
        data = src.read()
        profile = {
            "driver": "JP2OpenJPEG",
            "width": src.width,
            "height": src.height,
            "count": src.count,
            "dtype": src.dtypes[0],
            "crs": src.crs,
            "transform": src.transform,
            **JP2_OPTIONS,
        }
        if src.nodata is not None:
            profile["nodata"] = src.nodata
    tmp = dst_path.with_suffix(".tmp.jp2")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
    for aux in (tmp, dst_path):  # no side-car files: everything is in the JP2 boxes
        aux.with_name(aux.name + ".aux.xml").unlink(missing_ok=True)
    os.replace(tmp, dst_path)


def differences(src_path: Path, dst_path: Path) -> list[str]:
    """What differs between the two rasters (empty when bit-identical)."""
    with rasterio.open(src_path) as a, rasterio.open(dst_path) as b:
        found = []
        for name in ("width", "height", "count", "dtypes", "transform", "bounds", "nodata"):
            if getattr(a, name) != getattr(b, name):
                found.append(f"{name}: {getattr(a, name)} != {getattr(b, name)}")
        if a.crs != b.crs or a.crs.to_epsg() != b.crs.to_epsg():
            found.append(f"crs: {a.crs} != {b.crs}")
        if not found:
            x, y = a.read(), b.read()
            if x.dtype != y.dtype or not np.array_equal(x, y):
                found.append(f"pixels: {int((x != y).sum())} of {x.size} differ")
    return found


def main(argv: Sequence[str]) -> int:
    """Re-encode (unless ``--verify-only``) and verify every band file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="scene folder (with IMG_DATA/) or IMG_DATA")
    parser.add_argument(
        "-o",
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent / "IMG_DATA",
        help="output folder (default: IMG_DATA beside this script)",
    )
    parser.add_argument(
        "--verify-only", action="store_true", help="only compare existing outputs with SRC"
    )
    args = parser.parse_args(list(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    src_dir, out_dir = image_dir(args.src), args.out
    if src_dir.resolve() == out_dir.resolve():
        raise SystemExit(f"source and output are the same folder ({out_dir})")
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    src_total = out_total = 0
    for src_path in band_files(src_dir):
        dst_path = out_dir / src_path.name
        if not args.verify_only:
            encode(src_path, dst_path)
        found = differences(src_path, dst_path)
        src_size, out_size = src_path.stat().st_size, dst_path.stat().st_size
        src_total += src_size
        out_total += out_size
        if found:
            failed += 1
            logger.error("%s DIFFERS: %s", dst_path, "; ".join(found))
        else:
            logger.info(
                "%s: %.2f MB -> %.2f MB, bit-identical",
                src_path.name,
                src_size / 1e6,
                out_size / 1e6,
            )
    logger.info("total %.2f MB -> %.2f MB in %s", src_total / 1e6, out_total / 1e6, out_dir)
    if failed:
        logger.error("%d file(s) differ from their source", failed)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
