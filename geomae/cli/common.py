"""Arguments shared by several ``geomae`` subcommands."""

from __future__ import annotations

import argparse

__all__ = ["add_band_pattern_argument"]


def add_band_pattern_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--band-pattern``: the per-band file name template of scene folders."""
    parser.add_argument(
        "--band-pattern",
        default=None,
        help=(
            "per-band file name template with {band}, e.g. 's2_{band}.jp2' or "
            "'*_{band}.tif' (default: standard product names T*_B02.jp2)"
        ),
    )
