"""``geomae predict-scene``: a checkpoint or encoder over whole scenes -> COG map / zarr cube.

With a SegmentationTask checkpoint the output is a uint8 class map (Cloud-Optimized
GeoTIFF on the scene's 10 m grid, nodata 255 where no band has data), optionally with
per-class probabilities (``--probabilities``); a ClassificationTask checkpoint gives
the same map at window resolution (each window's scores, blended). Encoder weights
(``.safetensors``, or an MAE ``.ckpt``) give an embedding datacube (zarr): one vector
per patch. See :mod:`geomae.inference`.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import get_args

from geomae.cli.common import add_band_pattern_argument
from geomae.errors import ConfigError
from geomae.inference.predictor import Device, WindowPredictor, load_predictor
from geomae.inference.run import predict_scene
from geomae.inference.scene import SceneReader
from geomae.inference.windows import BLEND_KINDS
from geomae.inference.writers import ClassMapWriter, EmbeddingCubeWriter, check_output
from geomae.levels import check_level

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``geomae predict-scene``."""
    parser = argparse.ArgumentParser(
        prog="geomae predict-scene",
        description=(
            "Run a fine-tuned SegmentationTask / ClassificationTask checkpoint or encoder "
            "weights over whole Sentinel-2 scenes in overlapping windows, blended without "
            "seams, one row of windows at a time. Writes a class-map COG (checkpoints) "
            "or a zarr embedding cube (encoder weights). Bands, statistics and offset "
            "come from the model file."
        ),
    )
    parser.add_argument("model", help="a task checkpoint (.ckpt) or encoder weights (.safetensors)")
    parser.add_argument(
        "scenes", nargs="+", help="Sentinel-2 scene folders (searched recursively) or B02 files"
    )
    parser.add_argument(
        "-o", "--output", required=True, help="class map (.tif) or embedding cube (.zarr)"
    )
    parser.add_argument(
        "--probabilities",
        default=None,
        help="also write per-class probabilities (uint8, 255 = 1) to this .tif",
    )
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="window side in px (default: the model's training image size)",
    )
    parser.add_argument(
        "--overlap",
        type=int,
        default=None,
        help="px shared by neighbouring windows (default: a quarter of the window, "
        "rounded down to the patch size for embeddings)",
    )
    parser.add_argument(
        "--blend", choices=list(BLEND_KINDS), default="cosine", help="overlap blending weight"
    )
    parser.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    parser.add_argument("--device", choices=list(get_args(Device)), default="auto")
    parser.add_argument(
        "--processing-level",
        choices=["L1C", "L2A"],
        default=None,
        help="the scenes' level (default: from their SAFE products; unknown for bare files)",
    )
    parser.add_argument(
        "--allow-level-mismatch",
        action="store_true",
        help="run weights of one processing level on scenes of the other (a warning)",
    )
    parser.add_argument(
        "--offset",
        type=float,
        default=None,
        help="DN offset of the scenes (default: their SAFE products', else the model's)",
    )
    parser.add_argument(
        "--nodata", type=float, default=0.0, help="raw nodata value of the scenes (default 0)"
    )
    parser.add_argument("--res", type=float, default=10.0, help="output pixel size (m)")
    parser.add_argument(
        "--bands",
        default=None,
        help="encoder weights only: a subset of their bands (band-set name or B02,B03,...)",
    )
    add_band_pattern_argument(parser)
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def _offset(args: argparse.Namespace, predictor: WindowPredictor, reader: SceneReader) -> float:
    """The offset to subtract: given, the products', else the one the model was fed."""
    if args.offset is not None:
        return float(args.offset)
    if reader.from_products:
        if reader.offset != predictor.metadata.offset:
            log.info(
                "the scenes' products declare DN offset %g (the model's data had %g); "
                "each side removes its own",
                reader.offset,
                predictor.metadata.offset,
            )
        return reader.offset
    return float(predictor.metadata.offset)


def main(argv: Sequence[str]) -> int:
    """Run ``geomae predict-scene`` with ``argv`` (without the program name).

    Returns:
        0 on success (the written paths are printed, one a line).

    Raises:
        ConfigError: an existing output without ``--overwrite``, an output suffix that
            does not fit the model, a bad window or overlap.
        CheckpointError: a model file that is neither a checkpoint nor weights.
        BandError: a band the model needs is missing from a scene.
    """
    args = build_parser().parse_args(list(argv))
    output = check_output(args.output, overwrite=args.overwrite)
    probabilities = (
        None
        if args.probabilities is None
        else check_output(args.probabilities, overwrite=args.overwrite, what="probabilities")
    )
    bands = None if args.bands is None else args.bands
    predictor = load_predictor(args.model, window=args.window, device=args.device, bands=bands)
    embedding = predictor.kind == "embedding"
    suffix = ".zarr" if embedding else ".tif"
    if output.suffix.lower() not in ((".zarr",) if embedding else (".tif", ".tiff")):
        raise ConfigError(
            f"{args.model} is a {predictor.kind} model: its output must end in {suffix}, "
            f"got {output}"
        )
    if embedding and probabilities is not None:
        raise ConfigError("--probabilities needs a segmentation or classification checkpoint")
    reader = SceneReader(
        paths=args.scenes,
        bands=predictor.bands,
        band_pattern=args.band_pattern,
        processing_level=args.processing_level,
        res=args.res,
        nodata=args.nodata,
        needed_by=f"model {args.model}",
    )
    check_level(
        data_level=reader.processing_level,
        weights_level=predictor.metadata.processing_level,
        allow=args.allow_level_mismatch,
        data=f"the scenes {args.scenes}",
        weights=f"the weights of {args.model}",
    )
    predictor.configure_input(offset=_offset(args, predictor, reader), nodata=args.nodata)
    overlap = args.overlap
    if overlap is None:
        overlap = predictor.window // 4 // predictor.scale * predictor.scale
    tags = {"model": Path(args.model).name, "bands": ",".join(predictor.bands)}
    sink: ClassMapWriter | EmbeddingCubeWriter
    if embedding:
        sink = EmbeddingCubeWriter(
            output,
            grid=reader.grid.coarsened(predictor.scale),
            channels=predictor.channels,
            attrs={**tags, "patch_size": predictor.scale, "res": reader.grid.res},
            overwrite=args.overwrite,
        )
    else:
        sink = ClassMapWriter(
            output,
            grid=reader.grid,
            channels=predictor.channels,
            class_names=predictor.class_names,
            probabilities=probabilities,
            tags={**tags, "kind": predictor.kind},
        )
    try:
        predict_scene(
            predictor,
            reader,
            sink,
            overlap=overlap,
            batch_size=args.batch_size,
            blend=args.blend,
            progress=not args.no_progress,
        )
        written = sink.close()
    except BaseException:
        sink.abort()
        raise
    for path in written:
        sys.stdout.write(f"{path}\n")
    return 0
