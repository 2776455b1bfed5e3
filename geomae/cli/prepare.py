"""``geomae prepare``: cut scenes or a datacube into a zarr tile store for fast training."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from rich.progress import (
    TaskID,
)

from geomae.cli.common import add_band_pattern_argument
from geomae.datasets.scene_folders import open_dataset
from geomae.datasets.ssl4eo import SSL4EOS12Patches, looks_like_ssl4eo
from geomae.errors import ConfigError
from geomae.progress import progress_bar
from geomae.store.parallel import PrepareProgress, prepare_scenes
from geomae.store.parts import PartRecord
from geomae.store.remote import parse_storage_options
from geomae.store.writer import CutOptions, write_tile_store

__all__ = ["build_parser", "is_zarr_path", "main"]

log = logging.getLogger(__name__)

#: Raw value of missing pixels in Sentinel-2 products (the NO_DATA special value).
S2_NODATA = 0.0


def is_zarr_path(path: str | Path) -> bool:
    """True if ``path`` is a zarr store (v2 or v3 metadata, or a ``.zarr`` name)."""
    path = Path(path)
    markers = ("zarr.json", ".zgroup", ".zarray", ".zmetadata")
    return path.suffix == ".zarr" or any((path / m).is_file() for m in markers)


def _nodata(text: str) -> float | None | str:
    if text.lower() == "auto":
        return "auto"
    if text.lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--nodata must be a number, 'auto' or 'none' (got {text!r})"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``geomae prepare``."""
    parser = argparse.ArgumentParser(
        prog="geomae prepare",
        description=(
            "Cut Sentinel-2 scenes (per-band JP2/GeoTIFF files or multi-band GeoTIFFs) or "
            "a zarr datacube into square tiles once and write them to a zarr tile store, "
            "with band statistics, for fast training (TileStoreDataModule)."
        ),
    )
    parser.add_argument(
        "sources",
        nargs="+",
        metavar="SRC",
        help="scene folders / files (each tiled in its own CRS), or one zarr datacube",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        help="tile store directory to create, or an fsspec URL (s3://bucket/key.zarr)",
    )
    parser.add_argument(
        "--bands",
        default=None,
        help="band set or comma list (default: the 12 L2A bands of scenes, all of a cube's)",
    )
    parser.add_argument("--tile-size", type=int, default=64, help="tile size in pixels (64)")
    parser.add_argument("--stride", type=int, default=None, help="grid step (tile size)")
    parser.add_argument(
        "--max-nodata",
        type=float,
        default=0.5,
        help="skip tiles with a larger fraction of nodata pixels (0.5)",
    )
    parser.add_argument(
        "--nodata",
        type=_nodata,
        default="auto",
        help="raw nodata value, 'none', or 'auto': 0 for scenes, the cube's _FillValue (auto)",
    )
    parser.add_argument(
        "--format",
        dest="tile_format",
        choices=["auto", "bands", "multiband"],
        default="auto",
        help="scenes as per-band files, multi-band GeoTIFFs, or detect (auto)",
    )
    add_band_pattern_argument(parser)
    parser.add_argument(
        "--resampling",
        choices=["nearest", "bilinear"],
        default="nearest",
        help="how 20 m / 60 m bands reach 10 m; nearest keeps the raw DNs (nearest)",
    )
    parser.add_argument("--chunk-tiles", type=int, default=16, help="tiles per zarr chunk (16)")
    parser.add_argument(
        "--dtype",
        choices=["auto", "uint16", "float32"],
        default="auto",
        help="stored dtype; auto keeps the files' integer dtype (auto)",
    )
    parser.add_argument(
        "--num-workers",
        type=int,
        default=0,
        help="DataLoader reader processes of the in-process path (0)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help=(
            "cut scenes in parallel on a local Dask cluster of N single-threaded worker "
            "processes, resumably (parts in OUTPUT.parts); 0: in this process (0)"
        ),
    )
    parser.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="cut scenes on the running dask.distributed scheduler at ADDRESS (tcp://...)",
    )
    parser.add_argument(
        "--storage-option",
        dest="storage_options",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "fsspec option of an -o URL such as s3://bucket/x.zarr (repeatable; e.g. "
            "endpoint_url=http://..., key=..., secret=..., anon=true)"
        ),
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing store")
    return parser


class _RichProgress(PrepareProgress):
    """A rich progress bar: scenes cut / total and tiles written."""

    def __init__(self) -> None:
        self.bar = progress_bar(counted="scenes, {task.fields[tiles]} tiles")
        self.task: TaskID | None = None
        self.tiles = 0

    def start(self, *, total: int, done: int, tiles: int) -> None:
        """Show the bar with the scenes earlier runs already cut."""
        self.tiles = tiles
        self.bar.start()
        self.task = self.bar.add_task("cutting", total=total, completed=done, tiles=tiles)

    def scene_done(self, record: PartRecord) -> None:
        """Advance by one scene."""
        self.tiles += record.num_tiles
        if self.task is not None:
            self.bar.update(self.task, advance=1, tiles=self.tiles)

    def scene_failed(self, source: str, error: BaseException) -> None:
        """Name the failed scene above the bar."""
        self.bar.console.print(f"[red]scene {source} failed[/red]: {error}")

    def assembling(self, *, tiles: int) -> None:
        """Say the parts are being assembled."""
        if self.task is not None:
            self.bar.update(self.task, description="assembling")

    def stop(self) -> None:
        """Remove the bar's live display."""
        self.bar.stop()


def main(argv: Sequence[str]) -> int:
    """Run ``geomae prepare`` with ``argv`` (without the program name).

    Geomae errors (missing files, unknown bands, an existing store, ...) propagate to
    the caller, which reports them as one line.

    Returns:
        0 on success.

    With ``--workers N`` (N >= 1) or ``--scheduler``, scene folders are cut on Dask
    (:func:`geomae.store.parallel.prepare_scenes`): resumable, with a progress bar.

    Raises:
        ConfigError: if several sources are given and one is a zarr datacube, or
            ``--band-pattern`` is given with a datacube, or ``--workers`` with one.
        ScenesFailedError: (a DataError: exit status 2) naming the scenes a Dask
            prepare could not cut; the store is not written, a re-run resumes.
    """
    args = build_parser().parse_args(list(argv))
    storage_options = parse_storage_options(args.storage_options)
    cubes = [s for s in args.sources if is_zarr_path(s)]
    if cubes and len(args.sources) > 1:
        raise ConfigError(
            f"a zarr datacube ({cubes[0]}) must be the only source; got {args.sources}"
        )
    if cubes and args.band_pattern is not None:
        raise ConfigError(
            f"--band-pattern names per-band scene files; {cubes[0]} is a zarr datacube"
        )
    common = {
        "tile_size": args.tile_size,
        "stride": args.stride,
        "max_nodata": args.max_nodata,
        "chunk_tiles": args.chunk_tiles,
        "dtype": args.dtype,
        "overwrite": args.overwrite,
        "storage_options": storage_options,
    }
    ssl4eo = [s for s in args.sources if looks_like_ssl4eo(s)]
    if ssl4eo and (len(args.sources) > 1 or args.band_pattern is not None):
        raise ConfigError(f"an SSL4EO-S12 folder ({ssl4eo[0]}) must be the only source")
    if (cubes or ssl4eo) and (args.workers > 0 or args.scheduler is not None):
        raise ConfigError(
            f"--workers / --scheduler cut scene folders in parallel; {(cubes or ssl4eo)[0]} "
            "is written in this process (drop --workers / --scheduler)"
        )
    if cubes:
        info = write_tile_store(
            cubes[0], args.output, bands=args.bands, nodata=args.nodata, **common
        )
    elif ssl4eo:
        patches = SSL4EOS12Patches(root=ssl4eo[0], bands=args.bands)
        info = write_tile_store(patches, args.output, nodata=None, **common)
    elif args.workers > 0 or args.scheduler is not None:
        progress = _RichProgress()
        try:
            info = prepare_scenes(
                args.sources,
                args.output,
                options=CutOptions(
                    tile_size=args.tile_size,
                    stride=args.tile_size if args.stride is None else args.stride,
                    max_nodata=args.max_nodata,
                    chunk_tiles=args.chunk_tiles,
                ),
                bands=args.bands or "all",
                nodata=S2_NODATA if args.nodata == "auto" else args.nodata,
                tile_format=args.tile_format,
                resampling=args.resampling,
                band_pattern=args.band_pattern,
                dtype=args.dtype,
                overwrite=args.overwrite,
                storage_options=storage_options,
                workers=max(args.workers, 1),
                scheduler=args.scheduler,
                progress=progress,
            )
        finally:
            progress.stop()
    else:
        nodata = S2_NODATA if args.nodata == "auto" else args.nodata
        # Each source is tiled on its own grid in its own CRS (scenes of several UTM
        # zones are not warped into the first one's).
        datasets = [
            open_dataset(
                source,
                bands=args.bands or "all",
                nodata=nodata,
                tile_format=args.tile_format,
                resampling=args.resampling,
                band_pattern=args.band_pattern,
            )
            for source in args.sources
        ]
        info = write_tile_store(
            datasets, args.output, nodata=nodata, num_workers=args.num_workers, **common
        )
    sys.stdout.write(
        f"wrote {info.num_tiles} tiles of {info.tile_size} px ({info.num_skipped} of "
        f"{info.num_candidates} skipped with more than {info.max_nodata:.0%} nodata), "
        f"bands {','.join(info.bands)}, dtype {info.dtype}, to {args.output}\n"
    )
    return 0
