"""On-disk layout of a geomae tile store and its metadata record.

A tile store is a zarr (format 3) group::

    STORE/
      zarr.json     group metadata; attrs["geomae_tilestore"] is a TileStoreInfo dict
      tiles/        (N, C, T, T) source dtype (uint16 for Sentinel-2 DN, float32 for
                    float sources), chunks (chunk_tiles, C, T, T), blosc-lz4 + shuffle
      valid/        (N, 1, T, T) bool, same chunking; present when the source has a
                    nodata value or is floating point (True = every band finite and
                    not nodata)
      bounds/       (N, 4) float64, (xmin, ymin, xmax, ymax) of each tile in the CRS

Tiles are written in grid order (row by row, scene by scene), so the tiles of one
chunk are spatial neighbours and one chunk is one contiguous compressed block.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from geomae.bands import parse_bands
from geomae.errors import DataError
from geomae.stats import BandStats

__all__ = [
    "ATTRS_KEY",
    "BOUNDS",
    "FORMAT_VERSION",
    "TILES",
    "VALID",
    "TileStoreInfo",
]

#: Key of the metadata record in the zarr group attributes.
ATTRS_KEY = "geomae_tilestore"
#: Version of this layout; bumped on incompatible changes.
FORMAT_VERSION = 1
#: Array names inside the group.
TILES, VALID, BOUNDS = "tiles", "valid", "bounds"

_REQUIRED = (
    "format_version",
    "bands",
    "crs",
    "res",
    "tile_size",
    "stride",
    "dtype",
    "num_tiles",
    "num_skipped",
    "nodata",
    "max_nodata",
    "chunk_tiles",
    "has_valid",
)


@dataclass
class TileStoreInfo:
    """Everything a tile store records about its tiles.

    Attributes:
        bands: canonical band names, in channel order.
        crs: coordinate reference system as WKT, or None if the source had none.
        epsg: EPSG code of ``crs`` where one matches, else None.
        res: pixel size ``(x, y)`` in CRS units.
        tile_size: tile height and width in pixels.
        stride: grid step in pixels between neighbouring tiles.
        dtype: numpy dtype name of ``tiles``.
        num_tiles: tiles written (N).
        num_skipped: grid tiles dropped because their nodata fraction exceeded
            ``max_nodata``.
        nodata: raw value marking missing pixels, or None.
        max_nodata: largest nodata fraction a kept tile may have.
        chunk_tiles: tiles per zarr chunk.
        has_valid: whether the ``valid`` array exists.
        sources: paths (or descriptions) of the data the tiles were cut from.
        stats: band statistics over the valid pixels of the written tiles, or None when
            they could not be computed (no tiles, or a constant band).
        geomae_version: version of geomae that wrote the store.
        offset: DN offset of the tiles' values (subtract before normalizing; the
            statistics describe ``DN - offset``): 1000 for processing baseline 04.00
            products, else 0.
        processing_level: ``L1C`` / ``L2A`` when the source said, else None.
        format_version: layout version, :data:`FORMAT_VERSION`.
    """

    bands: list[str]
    crs: str | None
    res: tuple[float, float]
    tile_size: int
    stride: int
    dtype: str
    num_tiles: int
    num_skipped: int
    nodata: float | None
    max_nodata: float
    chunk_tiles: int
    has_valid: bool
    epsg: int | None = None
    sources: list[str] = field(default_factory=list)
    stats: BandStats | None = None
    geomae_version: str = "0.0.0"
    offset: float = 0.0
    processing_level: str | None = None
    format_version: int = FORMAT_VERSION

    @property
    def num_candidates(self) -> int:
        """Grid tiles considered (written + skipped)."""
        return self.num_tiles + self.num_skipped

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (what goes into the zarr attributes)."""
        return {
            "format_version": self.format_version,
            "bands": list(self.bands),
            "crs": self.crs,
            "epsg": self.epsg,
            "res": [float(self.res[0]), float(self.res[1])],
            "tile_size": int(self.tile_size),
            "stride": int(self.stride),
            "dtype": self.dtype,
            "num_tiles": int(self.num_tiles),
            "num_skipped": int(self.num_skipped),
            "num_candidates": int(self.num_candidates),
            "nodata": None if self.nodata is None else float(self.nodata),
            "max_nodata": float(self.max_nodata),
            "chunk_tiles": int(self.chunk_tiles),
            "has_valid": bool(self.has_valid),
            "sources": [str(s) for s in self.sources],
            "stats": None if self.stats is None else self.stats.to_dict(),
            "geomae_version": self.geomae_version,
            "offset": float(self.offset),
            "processing_level": self.processing_level,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str) -> TileStoreInfo:
        """Inverse of :meth:`to_dict`.

        Args:
            data: the ``geomae_tilestore`` attribute of a store.
            source: the store path, for error messages.

        Raises:
            DataError: naming ``source`` and the missing keys, or the unsupported
                format version, or an invalid band list or statistics.
        """
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise DataError(
                f"tile store {source}: metadata attribute {ATTRS_KEY!r} lacks {missing}; "
                "re-create the store with `geomae prepare`"
            )
        if int(data["format_version"]) != FORMAT_VERSION:
            raise DataError(
                f"tile store {source}: format version {data['format_version']} is not "
                f"supported (this geomae reads version {FORMAT_VERSION})"
            )
        try:
            bands = parse_bands(list(data["bands"]), keep_order=True)
            stats = (
                None
                if data.get("stats") is None
                else BandStats.from_dict(data["stats"], source=f"tile store {source} stats")
            )
        except ValueError as err:
            raise DataError(f"tile store {source}: {err}") from None
        res = data["res"]
        return cls(
            bands=bands,
            crs=data["crs"],
            epsg=None if data.get("epsg") is None else int(data["epsg"]),
            res=(float(res[0]), float(res[1])),
            tile_size=int(data["tile_size"]),
            stride=int(data["stride"]),
            dtype=str(data["dtype"]),
            num_tiles=int(data["num_tiles"]),
            num_skipped=int(data["num_skipped"]),
            nodata=None if data["nodata"] is None else float(data["nodata"]),
            max_nodata=float(data["max_nodata"]),
            chunk_tiles=int(data["chunk_tiles"]),
            has_valid=bool(data["has_valid"]),
            sources=[str(s) for s in data.get("sources", [])],
            stats=stats,
            geomae_version=str(data.get("geomae_version", "unknown")),
            offset=float(data.get("offset") or 0.0),
            processing_level=data.get("processing_level"),
        )
