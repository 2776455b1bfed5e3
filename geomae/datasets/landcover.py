"""Land-cover segmentation: a Sentinel-2 scene intersected with a land-cover layer.

The labels come from either a vector layer (polygons with a class column, e.g.
OpenStreetMap land use with ``fclass``) rasterized on the fly, or a class raster (e.g.
ESA WorldCover). Both yield ``mask`` ``(H, W)`` int64 class indices into an explicit
``classes`` list; every pixel without a listed class gets ``ignore_index``:

* vector layers: pixels outside every polygon, and polygons whose class is not listed,
  are unlabeled (background is *not* a class: in OSM land use, "no polygon" means
  "not mapped", not "some other land cover");
* class rasters: pixel values not listed in ``class_values``.

:class:`LandCoverSegmentation` intersects the image and the labels (torchgeo's
``IntersectionDataset``), adds ``valid`` from the image and sets ``mask`` to
``ignore_index`` wherever the image has no data.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import pandas as pd
import pyogrio
import torch
from torch import Tensor
from torchgeo.datasets import (
    DatasetNotFoundError,
    GeoDataset,
    IntersectionDataset,
    RasterDataset,
    VectorDataset,
)
from torchgeo.datasets.utils import GeoSlice

from geomae.errors import ConfigError, DataError

__all__ = [
    "VECTOR_SUFFIXES",
    "LabelKind",
    "LandCoverRaster",
    "LandCoverSegmentation",
    "LandCoverVector",
    "open_land_cover",
]

log = logging.getLogger(__name__)

#: ``auto`` picks ``vector`` or ``raster`` from the file suffix.
LabelKind = Literal["auto", "vector", "raster"]
PathsArg = str | Path | Iterable[str | Path]

#: File suffixes read as vector layers by ``kind="auto"``.
VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb", ".gml", ".kml")
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt", ".img")


def _as_paths(paths: PathsArg) -> list[str]:
    """Normalize ``paths`` to a list of strings."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


def _check_ignore_index(ignore_index: int, num_classes: int) -> None:
    """``ignore_index`` must not be a class index."""
    if 0 <= ignore_index < num_classes:
        raise ConfigError(
            f"ignore_index={ignore_index} collides with class index {ignore_index} of "
            f"{num_classes} classes; use a value >= {num_classes} (e.g. 255) or < 0"
        )


class LandCoverVector(VectorDataset):
    """Polygons rasterized into class-index masks by a class column.

    Args:
        paths: vector files (GeoPackage, Shapefile, GeoJSON, FlatGeobuf, ...)
            or folders holding them.
        classes: class names, in index order; ``None`` uses the sorted distinct values
            of ``label_name`` found in the files.
        label_name: column holding each polygon's class.
        layer: layer of a multi-layer file (name or index; default the first).
        ignore_index: mask value of unlabeled pixels.
        crs: CRS to reproject to (defaults to that of the first file).
        res: rasterization resolution in CRS units (an intersection with an image
            replaces it by the image's).

    Raises:
        DataError: if no readable vector file is found, a file lacks ``label_name``, or
            none of ``classes`` occurs in the files.
        ConfigError: if ``classes`` is empty or duplicated, or ``ignore_index`` is a
            class index.
    """

    def __init__(
        self,
        *,
        paths: PathsArg,
        classes: Sequence[str] | None = None,
        label_name: str = "fclass",
        layer: str | int | None = None,
        ignore_index: int = 255,
        crs: Any = None,
        res: float = 10.0,
    ) -> None:
        path_list = _as_paths(paths)
        try:
            super().__init__(path_list, crs, res, None, label_name, "semantic_segmentation", layer)
        except DatasetNotFoundError:
            raise DataError(
                f"no readable vector land-cover file found in {path_list} "
                f"(expected one of {', '.join(VECTOR_SUFFIXES)})"
            ) from None
        self.label_name = label_name
        values = self._column_values(label_name, layer)
        if classes is None:
            classes = sorted(values)
            log.info("classes from column %r of %s: %s", label_name, path_list, classes)
        self.classes: list[str] = _check_classes(classes)
        self.ignore_index = int(ignore_index)
        _check_ignore_index(self.ignore_index, len(self.classes))
        self._lookup = {name: i for i, name in enumerate(self.classes)}
        present = [c for c in self.classes if c in values]
        if not present:
            raise DataError(
                f"none of the classes {self.classes} occurs in column {label_name!r} of "
                f"{path_list}; it holds {sorted(values)}"
            )
        unlisted = sorted(set(values) - set(self.classes))
        if unlisted:
            log.warning(
                "%s: polygons of class(es) %s are not in classes and are treated as "
                "unlabeled (ignore_index=%d)",
                path_list,
                unlisted,
                self.ignore_index,
            )

    def _column_values(self, label_name: str, layer: str | int | None) -> set[str]:
        """Distinct values (as strings) of ``label_name`` over every indexed file."""
        values: set[str] = set()
        for filepath in self.index.filepath:
            fields = list(pyogrio.read_info(filepath, layer=layer)["fields"])
            if label_name not in fields:
                raise DataError(
                    f"vector file {filepath} has no column {label_name!r}; its columns are {fields}"
                )
            column = gpd.read_file(
                filepath, layer=layer, columns=[label_name], ignore_geometry=True
            )[label_name]
            values.update(str(v) for v in column.dropna().unique())
        return values

    def get_label(self, feature: pd.Series) -> int:
        """Class index + 1 of ``feature`` (0, i.e. unlabeled, for unlisted classes)."""
        value = feature[self.label_name]
        if value is None or (isinstance(value, float) and value != value):
            return 0
        return self._lookup.get(str(value), -1) + 1

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """Rasterize the polygons over ``query``.

        Returns:
            ``mask`` ``(H, W)`` int64 class indices (``ignore_index`` where unlabeled)
            and torchgeo's ``crs`` / ``bounds``.
        """
        sample = super().__getitem__(query)
        burned = sample["mask"].long()  # (H, W), 0 = no polygon, k + 1 = class k
        sample["mask"] = torch.where(burned == 0, self.ignore_index, burned - 1)
        return sample


class LandCoverRaster(RasterDataset):
    """A single-band class raster (e.g. ESA WorldCover) as class-index masks.

    Args:
        paths: raster files or folders holding them.
        classes: class names, in index order.
        class_values: raster value of each class (default ``0 .. K-1``); any other
            value (nodata included) becomes ``ignore_index``.
        ignore_index: mask value of unlabeled pixels.
        crs: CRS to warp to (defaults to that of the first file).
        res: resolution (defaults to that of the first file; an intersection with an
            image replaces it by the image's). Resampling is nearest neighbour.

    Raises:
        DataError: if no readable raster is found.
        ConfigError: on empty or duplicated ``classes``/``class_values``, a length
            mismatch, negative values, or an ``ignore_index`` that is a class index.
    """

    is_image = False

    def __init__(
        self,
        *,
        paths: PathsArg,
        classes: Sequence[str],
        class_values: Sequence[int] | None = None,
        ignore_index: int = 255,
        crs: Any = None,
        res: float | None = None,
    ) -> None:
        self.classes: list[str] = _check_classes(classes)
        values = list(range(len(self.classes))) if class_values is None else list(class_values)
        if len(values) != len(self.classes) or len(set(values)) != len(values):
            raise ConfigError(
                f"class_values {values} must give one distinct raster value per class "
                f"of {self.classes}"
            )
        if min(values) < 0:
            raise ConfigError(f"class_values {values} must be >= 0")
        self.class_values = [int(v) for v in values]
        self.ignore_index = int(ignore_index)
        _check_ignore_index(self.ignore_index, len(self.classes))
        lut = torch.full((max(self.class_values) + 1,), self.ignore_index, dtype=torch.long)
        lut[torch.tensor(self.class_values)] = torch.arange(len(self.classes))
        self._lut = lut  # (max value + 1,)
        path_list = _as_paths(paths)
        try:
            super().__init__(path_list, crs, res, None, None, True)
        except DatasetNotFoundError:
            raise DataError(f"no readable land-cover raster found in {path_list}") from None

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """Read the class raster over ``query``.

        Returns:
            ``mask`` ``(H, W)`` int64 class indices (``ignore_index`` for unlisted
            values) and torchgeo's ``crs`` / ``bounds``.
        """
        sample = super().__getitem__(query)
        values = sample["mask"].long()  # (H, W) raw raster values
        known = (values >= 0) & (values < self._lut.numel())
        mask = torch.full_like(values, self.ignore_index)
        mask[known] = self._lut[values[known]]
        sample["mask"] = mask
        return sample


class _MaskInvalid:
    """Sample transform: ``mask`` becomes ``ignore_index`` where ``valid`` is False."""

    def __init__(self, ignore_index: int) -> None:
        self.ignore_index = ignore_index

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        mask: Tensor = sample["mask"]  # (H, W)
        valid = sample.get("valid")  # (1, H, W) bool or None
        if valid is not None:
            sample["mask"] = torch.where(valid[0], mask, self.ignore_index)
        return sample


class LandCoverSegmentation(IntersectionDataset):
    """Image ∩ land-cover labels: samples with ``image``, ``valid`` and ``mask``.

    The image dataset sets the CRS and resolution; the labels are warped or rasterized
    onto its grid. Label layers without dates span all time, so only space matters.

    Args:
        image: a geomae Sentinel-2 dataset (anything yielding ``image`` and optionally
            ``valid``, with a ``bands`` attribute).
        labels: a :class:`LandCoverVector` or :class:`LandCoverRaster`.

    Raises:
        DataError: if the image and the labels do not overlap (names both extents).
    """

    def __init__(self, *, image: GeoDataset, labels: LandCoverVector | LandCoverRaster) -> None:
        try:
            super().__init__(image, labels, transforms=_MaskInvalid(labels.ignore_index))
        except RuntimeError as err:
            raise DataError(
                f"the image ({image.paths}, bounds {image.bounds}) and the land-cover "
                f"labels ({labels.paths}) do not overlap: {err}"
            ) from None
        self.bands: list[str] = list(image.bands)  # type: ignore[attr-defined]
        self.classes: list[str] = list(labels.classes)
        self.ignore_index = labels.ignore_index


def open_land_cover(
    *,
    paths: PathsArg,
    kind: LabelKind = "auto",
    classes: Sequence[str] | None = None,
    label_name: str = "fclass",
    layer: str | int | None = None,
    class_values: Sequence[int] | None = None,
    ignore_index: int = 255,
) -> LandCoverVector | LandCoverRaster:
    """Open a land-cover layer as a vector or raster label dataset.

    Args:
        paths: files or folders of the layer.
        kind: ``vector``, ``raster`` or ``auto`` (from the suffix of the first path).
        classes: class names in index order (required for rasters; for vectors
            ``None`` takes the distinct values of ``label_name``).
        label_name: class column of a vector layer.
        layer: layer of a multi-layer vector file.
        class_values: raster value of each class (rasters only).
        ignore_index: mask value of unlabeled pixels.

    Returns:
        The label dataset.

    Raises:
        DataError: if a path does not exist.
        ConfigError: if ``kind="auto"`` cannot tell the kind, or a raster has no
            ``classes``.
    """
    path_list = _as_paths(paths)
    for path in path_list:
        if not path.startswith("/vsi") and not os.path.exists(path):
            raise DataError(f"land-cover layer {path} does not exist")
    if kind == "auto":
        suffix = Path(path_list[0]).suffix.lower() if path_list else ""
        if suffix in VECTOR_SUFFIXES:
            kind = "vector"
        elif suffix in _RASTER_SUFFIXES:
            kind = "raster"
        else:
            raise ConfigError(
                f"cannot tell whether land-cover layer {path_list} is vector or raster "
                "from its suffix; set label_kind to 'vector' or 'raster'"
            )
    if kind == "vector":
        return LandCoverVector(
            paths=path_list,
            classes=classes,
            label_name=label_name,
            layer=layer,
            ignore_index=ignore_index,
        )
    if kind == "raster":
        if classes is None:
            raise ConfigError(
                f"land-cover raster {path_list} needs `classes` (one name per class value)"
            )
        return LandCoverRaster(
            paths=path_list, classes=classes, class_values=class_values, ignore_index=ignore_index
        )
    raise ConfigError(f"label kind must be 'auto', 'vector' or 'raster', got {kind!r}")


def _check_classes(classes: Sequence[str]) -> list[str]:
    """Class names as strings; non-empty and distinct."""
    names = [str(c) for c in classes]
    if not names:
        raise ConfigError("classes must list at least one class name")
    if len(set(names)) != len(names):
        duplicated = sorted({n for n in names if names.count(n) > 1})
        raise ConfigError(f"duplicated class name(s) {duplicated} in classes {names}")
    return names
