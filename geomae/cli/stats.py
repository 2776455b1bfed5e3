"""``geomae stats``: compute per-band normalization statistics and write them as YAML."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from collections.abc import Sequence

from geomae.cli.common import add_band_pattern_argument
from geomae.compute_stats import compute_stats
from geomae.datasets.scene_folders import open_dataset

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``geomae stats``."""
    parser = argparse.ArgumentParser(
        prog="geomae stats",
        description=(
            "Compute per-band mean, std, p2 and p98 of Sentinel-2 scenes from random "
            "tiles and write them as a stats YAML file (see geomae.compute_stats for the method)."
        ),
    )
    parser.add_argument("paths", nargs="+", help="folders or files with the scenes")
    parser.add_argument(
        "--bands", default="all", help="band set or comma list (default: all 12 L2A bands)"
    )
    parser.add_argument("--num-samples", type=int, default=256, help="random tiles (256)")
    parser.add_argument("--tile-size", type=int, default=64, help="tile size in pixels (64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the tile positions (0)")
    parser.add_argument("--nodata", type=float, default=None, help="raw value of missing pixels")
    parser.add_argument(
        "--offset", type=float, default=0.0, help="subtracted from raw DN first (0)"
    )
    parser.add_argument(
        "--tile-format",
        choices=["auto", "bands", "multiband"],
        default="auto",
        help="per-band files, multi-band GeoTIFFs, or detect (auto)",
    )
    add_band_pattern_argument(parser)
    parser.add_argument("--num-workers", type=int, default=0, help="reader processes (0)")
    parser.add_argument("-o", "--output", required=True, help="stats YAML file to write")
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geomae stats`` with ``argv`` (without the program name).

    Geomae errors (missing files, unknown bands, ...) propagate to the caller, which
    reports them as one line.

    Returns:
        0 on success.
    """
    args = build_parser().parse_args(list(argv))
    dataset = open_dataset(
        args.paths,
        bands=args.bands,
        nodata=args.nodata,
        tile_format=args.tile_format,
        band_pattern=args.band_pattern,
    )
    stats = compute_stats(
        dataset,
        bands=args.bands,
        num_samples=args.num_samples,
        tile_size=args.tile_size,
        seed=args.seed,
        nodata=args.nodata,
        offset=args.offset,
        num_workers=args.num_workers,
    )
    stats.attrs["source"] = [str(p) for p in args.paths]
    stats.attrs["command"] = shlex.join(["geomae", "stats", *argv])
    stats.save(args.output)
    lines = [f"{'band':>4} {'mean':>10} {'std':>10} {'p2':>10} {'p98':>10}"]
    for band, s in stats.bands.items():
        lines.append(f"{band:>4} {s.mean:10.1f} {s.std:10.1f} {s.p2:10.1f} {s.p98:10.1f}")
    sys.stdout.write("\n".join(lines) + f"\nwrote {args.output}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
