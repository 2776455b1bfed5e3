"""Open what a user points at: per-band Sentinel-2 scenes or multi-band tiles."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from geomae.datasets.sentinel2 import Sentinel2Scenes, Sentinel2Tiles
from geomae.errors import ConfigError, DataError

__all__ = ["open_dataset"]


def open_dataset(
    paths: str | Path | Sequence[str | Path],
    *,
    bands: str | Sequence[str] = "all",
    nodata: float | None = None,
    tile_format: Literal["auto", "bands", "multiband"] = "auto",
    resampling: Literal["bilinear", "nearest"] = "nearest",
    band_pattern: str | None = None,
) -> Sentinel2Scenes | Sentinel2Tiles:
    """Open per-band scenes or multi-band tiles under ``paths``.

    Args:
        paths: folders or files.
        bands: bands to read.
        nodata: raw value marking missing pixels.
        tile_format: ``bands`` (:class:`Sentinel2Scenes`), ``multiband``
            (:class:`Sentinel2Tiles`, 12 L2A bands in canonical order) or ``auto``
            (per-band files if any are found, else multi-band tiles).
        resampling: how coarser bands are brought to 10 m; ``nearest`` (default)
            keeps the original integer DNs, so percentiles stay exact.
        band_pattern: per-band file name template such as ``s2_{band}.jp2`` (see
            :class:`Sentinel2Scenes`); implies per-band files (``auto`` then does not
            fall back to multi-band tiles).

    Raises:
        ConfigError: if ``band_pattern`` is malformed or given with ``multiband``.
        DataError: if nothing matching is found (names the paths and patterns).
    """
    path_list = [paths] if isinstance(paths, (str, Path)) else list(paths)
    if band_pattern is not None:
        if tile_format == "multiband":
            raise ConfigError(
                f"band_pattern={band_pattern!r} names per-band files; it cannot be used "
                "with tile_format='multiband'"
            )
        tile_format = "bands"
    if tile_format in ("auto", "bands"):
        try:
            return Sentinel2Scenes(
                paths=path_list,
                bands=bands,
                band_pattern=band_pattern,
                nodata=nodata,
                resampling=resampling,
            )
        except DataError as err:
            if tile_format == "bands" or "no Sentinel-2 files found" not in str(err):
                raise
            scenes_error = err
    try:
        return Sentinel2Tiles(paths=path_list, bands=bands, nodata=nodata, resampling=resampling)
    except DataError as err:
        if tile_format == "multiband" or "no Sentinel-2 files found" not in str(err):
            raise
        raise DataError(f"{scenes_error}; nor multi-band tiles: {err}") from None
