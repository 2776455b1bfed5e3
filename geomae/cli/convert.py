"""``geomae convert``: MAE checkpoint -> ViT weights (``.safetensors`` + JSON sidecar)."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path

from geomae.convert import export_weights
from geomae.weights import WEIGHTS_SUFFIX

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``geomae convert``."""
    parser = argparse.ArgumentParser(
        prog="geomae convert",
        description=(
            "Convert a MAE checkpoint written by `geomae fit` (MAETask) into ViT encoder "
            "weights: a .safetensors file whose header carries the bands, wavelengths, "
            "groups, normalization statistics, patch and image size and architecture, "
            "and the same metadata in a JSON sidecar. Load the result with "
            "geomae.load_backbone, or, for the timm target, with plain timm."
        ),
    )
    parser.add_argument("checkpoint", help="MAE checkpoint (.ckpt) to convert")
    parser.add_argument(
        "-o",
        "--output",
        default=None,
        help=(
            "weights file to write, ending in .safetensors (default: the checkpoint's "
            "name with .safetensors, beside it); NAME.json is written next to it"
        ),
    )
    parser.add_argument(
        "--target",
        choices=["auto", "geomae", "timm"],
        default="auto",
        help=(
            "parameter names: timm = stock timm VisionTransformer (one band group only), "
            "geomae = ChannelViT, auto = timm for one band group, else geomae (auto)"
        ),
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geomae convert`` with ``argv`` (without the program name).

    Geomae errors (missing, truncated or foreign checkpoints, ...) propagate to the
    caller, which reports them as one line.

    Returns:
        0 on success.
    """
    args = build_parser().parse_args(list(argv))
    checkpoint = Path(args.checkpoint)
    output = (
        Path(args.output) if args.output is not None else checkpoint.with_suffix(WEIGHTS_SUFFIX)
    )
    export_weights(checkpoint, output, target=args.target)
    return 0
