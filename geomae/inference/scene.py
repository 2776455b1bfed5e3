"""A Sentinel-2 scene on its 10 m grid, read one band of rows at a time.

The scene is opened with :class:`~geomae.datasets.sentinel2.Sentinel2Scenes`, the same
reader the DataModules use: every band is resampled to ``res`` on read (nearest
neighbour while ``nodata`` is set, as in training), files are placed by their own
georeferencing, several scenes are mosaicked, and the DN offset comes from the SAFE
product when there is one. The output grid is the dataset's bounds at ``res``: for one
scene, exactly the grid of its B02 file (CRS, transform, width, height).

Reads past the right or bottom edge (the padding of a scene smaller than one window,
or of the last partial patch) come back as ``nodata``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS

from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import BandError, DataError
from geomae.levels import ProcessingLevel, parse_level

__all__ = ["SceneGrid", "SceneReader"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SceneGrid:
    """The pixel grid predictions are written on.

    Attributes:
        crs: the scene's CRS.
        transform: affine transform of the grid's top-left corner (north up).
        width: columns.
        height: rows.
    """

    crs: CRS
    transform: Affine
    width: int
    height: int

    @property
    def res(self) -> float:
        """Pixel size in CRS units."""
        return float(self.transform.a)

    def coarsened(self, factor: int) -> SceneGrid:
        """The grid of ``factor`` x ``factor`` blocks (the last partial block included)."""
        t = self.transform
        return SceneGrid(
            crs=self.crs,
            transform=Affine(t.a * factor, t.b, t.c, t.d, t.e * factor, t.f),
            width=-(-self.width // factor),
            height=-(-self.height // factor),
        )


class SceneReader:
    """Read the bands of Sentinel-2 scene folders over full-width bands of rows.

    Args:
        paths: scene folders (searched recursively) or B02 files, as the DataModules
            take them.
        bands: bands to read, in the model's channel order.
        band_pattern: per-band file name template with ``{band}`` (None: product
            names).
        processing_level: the scenes' level (``L1C`` / ``L2A``), or None to take it
            from their SAFE products (unknown for bare band files).
        res: pixel size in CRS units every band is resampled to.
        nodata: raw value marking missing pixels (0 in Sentinel-2 products).
        needed_by: who needs the bands (for the error message), e.g. the checkpoint.

    Attributes:
        grid: the output grid (:class:`SceneGrid`).
        bands: the bands read, in channel order.
        offset: the DN offset the scenes' products declare (0 for bare files).
        processing_level: ``processing_level`` if given, else the products' level.
        from_products: True when the scenes lie in SAFE products (the offset is
            theirs, not a default).

    Raises:
        BandError: a band the model needs has no file in a scene (names the band, the
            file and ``needed_by``).
        DataError: no scene found, or unreadable files.
    """

    def __init__(
        self,
        *,
        paths: str | Path | Sequence[str | Path],
        bands: Sequence[str],
        band_pattern: str | None = None,
        processing_level: str | None = None,
        res: float = 10.0,
        nodata: float | None = 0.0,
        needed_by: str = "the model",
    ) -> None:
        path_list = [paths] if isinstance(paths, (str, Path)) else list(paths)
        self.bands = list(bands)
        try:
            self.dataset = Sentinel2Scenes(
                paths=path_list,
                bands=self.bands,
                band_pattern=band_pattern,
                res=float(res),
                nodata=nodata,
            )
        except DataError as err:
            if "does not exist" not in str(err):
                raise
            raise BandError(f"{needed_by} needs bands {self.bands}, but {err}") from err
        # Sentinel2Scenes returns bands in canonical order; the model's order may differ
        read = list(self.dataset.bands)
        self._order = [read.index(b) for b in self.bands]
        self.nodata = nodata
        self.offset = float(self.dataset.offset)
        self.from_products = bool(self.dataset.products)
        given = parse_level(processing_level, what="processing_level")
        self.processing_level: ProcessingLevel | None = given or self.dataset.processing_level
        x, y, _ = self.dataset.bounds
        res_x = float(self.dataset.res[0]) if isinstance(self.dataset.res, Sequence) else res
        self._left, self._top, self._res = float(x.start), float(y.stop), res_x
        self.grid = SceneGrid(
            crs=CRS.from_user_input(self.dataset.crs),
            transform=Affine(res_x, 0.0, self._left, 0.0, -res_x, self._top),
            width=int(round((float(x.stop) - float(x.start)) / res_x)),
            height=int(round((float(y.stop) - float(y.start)) / res_x)),
        )
        log.info(
            "scene %s: %d x %d px at %g m (%s), bands %s, offset %g",
            [str(p) for p in path_list],
            self.grid.width,
            self.grid.height,
            res_x,
            self.grid.crs.to_string(),
            ",".join(self.bands),
            self.offset,
        )

    def read(self, row: int, height: int, col: int = 0, width: int | None = None) -> np.ndarray:
        """Raw DN of the pixels ``[row, row + height) x [col, col + width)`` of the grid.

        Args:
            row: first grid row (may extend past the bottom edge: padding).
            height: rows to read.
            col: first grid column.
            width: columns to read (default: to the grid's right edge).

        Returns:
            ``(C, height, width)`` float32 raw digital numbers in :attr:`bands` order;
            ``nodata`` (or 0) outside the scenes.
        """
        width = self.grid.width - col if width is None else width
        r = self._res
        x0, y1 = self._left + col * r, self._top - row * r
        query: Any = (slice(x0, x0 + width * r, r), slice(y1 - height * r, y1, r))
        sample = self.dataset[query]
        image = sample["image"].numpy()  # (C, h, w) float32, canonical band order
        if image.shape[1:] != (height, width):
            raise DataError(
                f"reading rows {row}..{row + height - 1}, columns {col}..{col + width - 1} "
                f"of {self.dataset.paths} gave {image.shape[1:]} px"
            )
        if self._order != list(range(len(self._order))):
            image = image[self._order]
        return np.ascontiguousarray(image, dtype=np.float32)

    def has_data(self, image: np.ndarray) -> np.ndarray:
        """``(..., H, W)`` bool: a band of ``image`` ``(..., C, H, W)`` holds data.

        A pixel that is ``nodata`` (or not finite) in every band has none.
        """
        data = np.isfinite(image)
        if self.nodata is not None:
            data &= image != self.nodata
        return data.any(axis=-3)
