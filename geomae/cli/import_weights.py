"""``geomae import``: published ViT weights -> geomae weights with band metadata."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from geomae.bands import parse_bands
from geomae.importers import PRESETS, SOURCES, ImportOptions, import_weights
from geomae.levels import PROCESSING_LEVELS

__all__ = ["build_parser", "main"]

log = logging.getLogger(__name__)


def _groups(text: str) -> list[list[str]]:
    """``B02,B03,B04,B08;B05,B06,B07,B8A;B11,B12`` -> lists of bands."""
    return [parse_bands(part, keep_order=True) for part in text.split(";") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of ``geomae import``."""
    parser = argparse.ArgumentParser(
        prog="geomae import",
        description=(
            "Import published ViT weights into a geomae .safetensors file (plus JSON "
            "sidecar) that records the bands, wavelengths, groups, normalization, "
            "processing level, image and patch size, the source and its SHA-256. Load "
            "the result with geomae.load_backbone, the fine-tuning tasks or bench-bands."
        ),
        epilog="presets: " + ", ".join(PRESETS),
    )
    parser.add_argument(
        "source",
        help=f"one of {', '.join(SOURCES)}, or a preset (listed below)",
    )
    parser.add_argument("weights", help="the published weight file (.pth, .pt, .safetensors)")
    parser.add_argument(
        "-o", "--output", required=True, help="weights file to write, ending in .safetensors"
    )
    parser.add_argument(
        "--bands",
        default=None,
        help="input bands in channel order, e.g. B01,B02,...,B12 or a band set (timm-vit)",
    )
    parser.add_argument(
        "--normalization",
        default=None,
        help="zscore:STATS.yaml, scale:10000 or none: what the weights' inputs were",
    )
    parser.add_argument(
        "--level",
        default=None,
        choices=[*PROCESSING_LEVELS, *(lvl.lower() for lvl in PROCESSING_LEVELS)],
        help="processing level of the pretraining data",
    )
    parser.add_argument(
        "--img-size", type=int, default=None, help="image size of the result (resamples)"
    )
    parser.add_argument(
        "--arch",
        default=None,
        help="timm model name, e.g. vit_small_patch16_224 (default: read from the shapes)",
    )
    parser.add_argument(
        "--num-heads", type=int, default=None, help="attention heads (default: width / 64)"
    )
    parser.add_argument(
        "--prefix",
        default=None,
        help="key prefix of the encoder in the file, e.g. module.base_encoder. (default: found)",
    )
    parser.add_argument(
        "--offset",
        type=float,
        default=None,
        help="DN offset the pretraining data had subtracted before normalization (default 0)",
    )
    parser.add_argument(
        "--groups",
        type=_groups,
        default=None,
        help="band groups of a satmae checkpoint, ';'-separated (default SatMAE's three)",
    )
    return parser


def main(argv: Sequence[str]) -> int:
    """Run ``geomae import`` with ``argv`` (without the program name).

    Geomae errors propagate to the caller, which reports them as one line.

    Returns:
        0 on success.
    """
    args = build_parser().parse_args(list(argv))
    options = ImportOptions(
        bands=args.bands,
        normalization=args.normalization,
        level=args.level,
        img_size=args.img_size,
        arch=args.arch,
        num_heads=args.num_heads,
        prefix=args.prefix,
        offset=args.offset,
        groups=args.groups,
    )
    import_weights(args.source, args.weights, args.output, options)
    return 0
