"""Writers of finished output rows: a COG class map (+ probabilities) and a zarr cube.

Both take rows top to bottom (:class:`~geomae.inference.accumulator.FinishedRows`) and
never hold more than the rows they are given.

- :class:`ClassMapWriter`: rows go into a striped, uncompressed GeoTIFF beside the
  output (windowed writes); :meth:`~ClassMapWriter.close` copies it into a
  Cloud-Optimized GeoTIFF (GDAL's ``COG`` driver: tiled, DEFLATE, overviews by
  ``mode`` for classes and ``average`` for probabilities) and renames it into place,
  so an interrupted run leaves no half-written map. Classes are uint8 with nodata 255
  where no band has data; class names are in the tags (``class_names`` as JSON, and
  ``CLASS_<i>``) and a colour table. Probabilities are uint8 ``round(255 p)``, one
  band per class (described by the class name), with a mask of the pixels with data.
- :class:`EmbeddingCubeWriter`: an xarray Dataset ``embedding (y, x, feature)``
  float32 (NaN where a patch has no data) and ``valid_fraction (y, x)``, coordinates
  at the patch centres in the scene CRS, appended to a zarr store along ``y``. The CRS
  (WKT) and transform (the affine 6-tuple ``a, b, c, d, e, f``) are dataset attrs, and
  a CF-style ``spatial_ref`` coordinate (``crs_wkt``, GDAL ``GeoTransform``) lets GDAL
  and rioxarray place it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from rasterio.windows import Window

from geomae.errors import ConfigError
from geomae.inference.accumulator import FinishedRows
from geomae.inference.scene import SceneGrid

__all__ = [
    "CLASS_NODATA",
    "ClassMapWriter",
    "EmbeddingCubeWriter",
    "check_output",
    "overview_count",
]

log = logging.getLogger(__name__)

#: Class-map value of pixels without data.
CLASS_NODATA = 255
#: GDAL's block cache while copying into the COG (MB): bounded, whatever the scene.
_GDAL_CACHE_MB = 256
#: A qualitative colour table (RGB) for the classes, repeated past its length.
_PALETTE = (
    (31, 119, 180), (44, 160, 44), (188, 189, 34), (152, 223, 138), (214, 39, 40),
    (140, 86, 75), (23, 190, 207), (148, 103, 189), (255, 127, 14), (227, 119, 194),
    (127, 127, 127), (174, 199, 232),
)  # fmt: skip


def check_output(path: str | Path, *, overwrite: bool, what: str = "output") -> Path:
    """Refuse an existing ``path`` unless ``overwrite``; create its folder if needed.

    Raises:
        ConfigError: the path exists and ``overwrite`` is False, or its folder cannot
            be created (a file of that name, no permission).
    """
    out = Path(path)
    if out.exists() and not overwrite:
        raise ConfigError(f"{what} {out} exists; pass --overwrite to replace it")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ConfigError(f"{what} {out}: folder {out.parent} cannot be created ({err})") from err
    return out


def overview_count(width: int, height: int, *, min_side: int = 16) -> int:
    """Overview levels (factors 2, 4, ...) while the smaller side keeps ``min_side`` px."""
    count, side = 0, min(width, height)
    while side // 2 ** (count + 1) >= min_side:
        count += 1
    return count


def _partial(path: Path, tag: str) -> Path:
    return path.with_name(f".{path.name}.{tag}.partial")


class ClassMapWriter:
    """Write blended class probabilities as a uint8 class-map COG (and probabilities).

    Args:
        path: the class map to write (``.tif``).
        grid: the scene grid (CRS, transform, width, height).
        class_names: one name per class (None or empty: ``class_<i>``).
        channels: number of classes (at most 255: 255 is nodata).
        probabilities: also write per-class probabilities to this ``.tif``.
        blocksize: COG tile side (a multiple of 16).
        tags: extra tags for both files (model, bands, ...).

    Raises:
        ConfigError: more than 255 classes, or a bad block size.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        grid: SceneGrid,
        channels: int,
        class_names: Sequence[str] | None = None,
        probabilities: str | Path | None = None,
        blocksize: int = 512,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        if not 1 <= channels <= CLASS_NODATA:
            raise ConfigError(f"a uint8 class map holds 1..255 classes, got {channels}")
        if blocksize < 16 or blocksize % 16:
            raise ConfigError(f"COG block size must be a multiple of 16, got {blocksize}")
        self.path, self.grid, self.channels = Path(path), grid, channels
        names = list(class_names or [])
        self.class_names = (
            names if len(names) == channels else [f"class_{i}" for i in range(channels)]
        )
        self.probabilities = None if probabilities is None else Path(probabilities)
        self.blocksize = blocksize
        self.tags = {
            "class_names": json.dumps(self.class_names),
            **{f"CLASS_{i}": name for i, name in enumerate(self.class_names)},
            **{str(k): str(v) for k, v in (tags or {}).items()},
        }
        self._rows_written = 0
        profile = {
            "driver": "GTiff",
            "width": grid.width,
            "height": grid.height,
            "crs": grid.crs,
            "transform": grid.transform,
            "tiled": False,
            "blockysize": 1,
        }
        self._classes_tmp = _partial(self.path, "classes")
        self._classes = rasterio.open(
            self._classes_tmp, "w", count=1, dtype="uint8", nodata=CLASS_NODATA, **profile
        )
        # a colour table must precede the pixels of a striped GeoTIFF
        self._classes.write_colormap(
            1, {i: (*_PALETTE[i % len(_PALETTE)], 255) for i in range(channels)}
        )
        self._probs_tmp: Path | None = None
        self._probs: Any = None
        if self.probabilities is not None:
            self._probs_tmp = _partial(self.probabilities, "probabilities")
            with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
                self._probs = rasterio.open(
                    self._probs_tmp, "w", count=channels, dtype="uint8", **profile
                )

    def write(self, rows: FinishedRows) -> None:
        """Write finished rows (the next ones, top to bottom).

        Args:
            rows: ``values`` ``(K, n, W)`` blended probabilities, ``coverage`` ``(n, W)``.
        """
        values, n = rows.values, rows.values.shape[1]
        if rows.row != self._rows_written:
            raise ConfigError(
                f"rows must come in order: got row {rows.row}, expected {self._rows_written}"
            )
        empty = (rows.coverage <= 0) | np.isnan(values).any(axis=0)  # (n, W)
        classes = np.nan_to_num(values, nan=-1.0).argmax(axis=0).astype(np.uint8)  # (n, W)
        classes[empty] = CLASS_NODATA
        window = Window(0, rows.row, self.grid.width, n)
        self._classes.write(classes[None], window=window)
        if self._probs is not None:
            probs = np.rint(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * 255.0)
            probs = probs.astype(np.uint8)  # (K, n, W)
            probs[:, empty] = 0
            self._probs.write(probs, window=window)
            self._probs.write_mask(np.where(empty, 0, 255).astype(np.uint8), window=window)
        self._rows_written += n

    def close(self) -> list[Path]:
        """Turn the written rows into COGs at their paths.

        Returns:
            The files written: the class map, then the probabilities if asked.

        Raises:
            ConfigError: fewer rows were written than the grid has.
        """
        if self._rows_written != self.grid.height:
            self.abort()
            raise ConfigError(
                f"{self.path}: {self._rows_written} of {self.grid.height} rows were written"
            )
        self._classes.update_tags(**self.tags)
        self._classes.set_band_description(1, "class")
        self._classes.close()
        written = [self._to_cog(self._classes_tmp, self.path, resampling="MODE")]
        if self._probs is not None and self._probs_tmp is not None and self.probabilities:
            self._probs.update_tags(**self.tags, scale=str(1 / 255))
            for i, name in enumerate(self.class_names):
                self._probs.set_band_description(i + 1, name)
            self._probs.close()
            written.append(self._to_cog(self._probs_tmp, self.probabilities, resampling="AVERAGE"))
        return written

    def abort(self) -> None:
        """Close and delete the partial files (after an error)."""
        for handle in (self._classes, self._probs):
            if handle is not None and not handle.closed:
                handle.close()
        for tmp in (self._classes_tmp, self._probs_tmp):
            if tmp is not None:
                tmp.unlink(missing_ok=True)

    def _to_cog(self, source: Path, target: Path, *, resampling: str) -> Path:
        """Copy ``source`` into a COG at ``target`` (atomically), delete ``source``."""
        staged = _partial(target, "cog")
        levels = overview_count(self.grid.width, self.grid.height)
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB):
            rasterio.shutil.copy(
                source,
                staged,
                driver="COG",
                BLOCKSIZE=self.blocksize,
                COMPRESS="DEFLATE",
                OVERVIEW_RESAMPLING=resampling,
                OVERVIEW_COUNT=levels,
                OVERVIEWS="AUTO" if levels else "NONE",
            )
        os.replace(staged, target)
        source.unlink(missing_ok=True)
        log.info(
            "wrote %s (%d x %d px, %d overviews)", target, self.grid.width, self.grid.height, levels
        )
        return target


class EmbeddingCubeWriter:
    """Append finished rows of patch embeddings to a zarr datacube.

    Args:
        path: the zarr store to write (a folder, ``.zarr``).
        grid: the patch grid (one pixel per patch).
        channels: embedding features ``D``.
        attrs: extra dataset attributes (bands, model, patch size, ...).
        overwrite: replace an existing store at :meth:`close`.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        grid: SceneGrid,
        channels: int,
        attrs: Mapping[str, Any] | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path, self.grid, self.channels = Path(path), grid, channels
        self.overwrite = overwrite
        t = grid.transform
        self.attrs: dict[str, Any] = {
            "crs": grid.crs.to_wkt(),
            "transform": [float(v) for v in (t.a, t.b, t.c, t.d, t.e, t.f)],
            **dict(attrs or {}),
        }
        self._tmp = _partial(self.path, "zarr")
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self._rows_written = 0

    def write(self, rows: FinishedRows) -> None:
        """Append finished rows (the next ones, top to bottom).

        Args:
            rows: ``values`` ``(D, n, W)`` blended embeddings, ``coverage`` ``(n, W)``.
        """
        if rows.row != self._rows_written:
            raise ConfigError(
                f"rows must come in order: got row {rows.row}, expected {self._rows_written}"
            )
        values = np.moveaxis(rows.values, 0, -1).astype(np.float32)  # (n, W, D)
        values[rows.coverage <= 0] = np.nan
        n = values.shape[0]
        t = self.grid.transform
        y = t.f + (np.arange(rows.row, rows.row + n) + 0.5) * t.e  # (n,) patch centres
        data = {
            "embedding": xr.Variable(
                ("y", "x", "feature"), values, {"grid_mapping": "spatial_ref"}
            ),
            "valid_fraction": xr.Variable(("y", "x"), rows.coverage.astype(np.float32)),
        }
        first = self._rows_written == 0
        coords: dict[str, Any] = {"y": ("y", y, {"units": "m", "long_name": "patch centre y"})}
        if first:
            x = t.c + (np.arange(self.grid.width) + 0.5) * t.a  # (W,) patch centres
            coords["x"] = ("x", x, {"units": "m", "long_name": "patch centre x"})
            coords["feature"] = ("feature", np.arange(self.channels))
            coords["spatial_ref"] = xr.Variable((), np.int32(0), self._spatial_ref())
        ds = xr.Dataset(data, coords=coords, attrs=self.attrs)
        if first:
            chunks = (max(1, n), min(self.grid.width, 256), self.channels)
            ds.to_zarr(
                self._tmp,
                mode="w",
                zarr_format=2,
                consolidated=True,
                encoding={"embedding": {"chunks": chunks}},
            )
        else:
            ds.to_zarr(self._tmp, append_dim="y", zarr_format=2, consolidated=True)
        self._rows_written += n

    def _spatial_ref(self) -> dict[str, Any]:
        """CF grid-mapping attributes (WKT and GDAL's GeoTransform)."""
        t = self.grid.transform
        wkt = self.grid.crs.to_wkt()
        return {
            "crs_wkt": wkt,
            "spatial_ref": wkt,
            "GeoTransform": " ".join(f"{v:.17g}" for v in (t.c, t.a, t.b, t.f, t.d, t.e)),
        }

    def close(self) -> list[Path]:
        """Move the finished store to its path.

        Returns:
            ``[path]``.

        Raises:
            ConfigError: fewer rows were written than the grid has, or the path exists
                and ``overwrite`` is False.
        """
        if self._rows_written != self.grid.height:
            self.abort()
            raise ConfigError(
                f"{self.path}: {self._rows_written} of {self.grid.height} rows were written"
            )
        if self.path.exists():
            check_output(self.path, overwrite=self.overwrite, what="embedding cube")
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        os.replace(self._tmp, self.path)
        log.info(
            "wrote %s (%d x %d patches, %d features)",
            self.path,
            self.grid.width,
            self.grid.height,
            self.channels,
        )
        return [self.path]

    def abort(self) -> None:
        """Delete the partial store (after an error)."""
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
