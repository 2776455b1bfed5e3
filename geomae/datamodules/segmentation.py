"""Land-cover segmentation: Sentinel-2 scenes ∩ a land-cover raster or vector layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal, cast

import shapely
from shapely.geometry import Polygon
from torchgeo.datamodules import GeoDataModule
from torchgeo.datasets import roi_split
from torchgeo.samplers import RandomBatchGeoSampler

from geomae.bands import parse_bands
from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import require_local
from geomae.datasets.landcover import LabelKind, LandCoverSegmentation, open_land_cover
from geomae.datasets.sentinel2 import Sentinel2Scenes, band_pattern_filters
from geomae.errors import ConfigError
from geomae.levels import parse_level
from geomae.samplers import InsideGridGeoSampler
from geomae.stats import BandStats
from geomae.transforms import AugmentKind

__all__ = [
    "LandCoverSegmentationDataModule",
    "SplitAxis",
    "spatial_split_rois",
]

#: ``auto`` splits along the longer side of the labelled area.
SplitAxis = Literal["auto", "x", "y"]


def spatial_split_rois(
    bounds: tuple[float, float, float, float],
    fractions: Sequence[float],
    *,
    axis: SplitAxis = "auto",
) -> list[Polygon]:
    """Cut a box into adjacent strips, one per split.

    Args:
        bounds: ``(minx, miny, maxx, maxy)`` in CRS units.
        fractions: share of the box of each strip, in order along the axis (e.g.
            train, val, test); must be positive and sum to 1.
        axis: ``x`` cuts along x (strips side by side, west to east), ``y`` along y
            (south to north), ``auto`` along the longer side.

    Returns:
        One box per fraction; neighbouring boxes share an edge but no area.

    Raises:
        ConfigError: if a fraction is not positive or they do not sum to 1.
    """
    _check_fractions(fractions)
    minx, miny, maxx, maxy = bounds
    if axis == "auto":
        axis = "x" if maxx - minx >= maxy - miny else "y"
    low, high = (minx, maxx) if axis == "x" else (miny, maxy)
    edges = [low]
    for fraction in fractions:
        edges.append(edges[-1] + fraction * (high - low))
    edges[-1] = high
    if axis == "x":
        return [shapely.box(a, miny, b, maxy) for a, b in pairwise(edges)]
    return [shapely.box(minx, a, maxx, b) for a, b in pairwise(edges)]


def _check_fractions(fractions: Sequence[float]) -> None:
    """Split shares must be positive and sum to 1."""
    if any(f <= 0 for f in fractions) or not math.isclose(sum(fractions), 1.0):
        raise ConfigError(f"split_fractions {list(fractions)} must be positive and sum to 1")


class LandCoverSegmentationDataModule(GeomaeDataModule, GeoDataModule):
    """Semantic segmentation of Sentinel-2 scenes with land-cover labels.

    The image is read by :class:`~geomae.datasets.sentinel2.Sentinel2Scenes` (one file
    per band, resampled to ``res``), the labels by
    :func:`~geomae.datasets.landcover.open_land_cover` (a class raster, or polygons
    rasterized by ``label_name``); pixels without a listed class, or where the image
    has no data, are ``ignore_index``. The labelled area is split into adjacent strips
    (train, val, test by ``split_fractions``) so that no pixel serves two splits;
    training draws random patches, validation and testing walk a grid that stays inside
    their strip (:class:`InsideGridGeoSampler`).

    Batches after ``on_after_batch_transfer``: ``image`` ``(B, C, P, P)`` float32
    normalized, ``valid`` ``(B, 1, P, P)`` bool, ``mask`` ``(B, P, P)`` int64.

    Args:
        paths: Sentinel-2 scene folders (searched recursively) or B02 files.
        label_paths: land-cover raster or vector files (or folders).
        band_pattern: per-band file name template with ``{band}`` such as
            ``s2_{band}.jp2`` (see :class:`~geomae.datasets.sentinel2.Sentinel2Scenes`);
            None for the standard product names.
        classes: class names in index order; for vector layers None takes the sorted
            distinct values of ``label_name``.
        label_kind: ``vector``, ``raster`` or ``auto`` (by file suffix).
        label_name: class column of a vector layer (e.g. ``fclass`` for OSM land use).
        layer: layer of a multi-layer vector file.
        class_values: raster value of each class (rasters; default ``0 .. K-1``).
        ignore_index: mask value of unlabeled pixels (must not be a class index).
        bands: bands the model sees (band-set name, comma string or list).
        res: pixel size in CRS units (metres) that every band is resampled to.
        patch_size: patch side in pixels.
        batch_size: patches per batch.
        length: training patches per epoch (None: as many as fit the training strip).
        split_fractions: shares of the train, val and test strips.
        split_axis: direction of the split (see :func:`spatial_split_rois`).
        num_workers: loader worker processes.
        pin_memory: pin batches in page-locked memory.
        download: must stay False; geomae never downloads.
        stats: normalization statistics (BandStats, dict or YAML path); None takes the
            backbone's through :meth:`set_stats`, else approximate defaults.
        offset: value subtracted from raw DN before normalization.
        nodata: raw value marking missing image pixels (0 in Sentinel-2 products).
        augment: augmentation of training batches (applied to image, valid and mask).
        crop_scale: crop area range for ``augment="full"``.
        processing_level: the data's processing level, ``L1C`` or ``L2A`` (None:
            unknown, not checked); recorded in pretrained weights, and weights of the
            other level are refused unless ``allow_level_mismatch``.
        allow_level_mismatch: run weights of the other processing level anyway (a
            warning instead of an error).

    Raises:
        ConfigError: if ``download`` is True, the split or patch size does not fit, or
            ``band_pattern`` is malformed.
        DataError: if a path does not exist or the label layer is unusable.
    """

    task: Literal["multiclass", "multilabel", "segmentation"] = "segmentation"
    patch_size: int

    def __init__(
        self,
        *,
        paths: str | Path | list[str | Path],
        label_paths: str | Path | list[str | Path],
        band_pattern: str | None = None,
        classes: list[str] | None = None,
        label_kind: LabelKind = "auto",
        label_name: str = "fclass",
        layer: str | int | None = None,
        class_values: list[int] | None = None,
        ignore_index: int = 255,
        bands: str | list[str] = "all",
        res: float = 10.0,
        patch_size: int = 64,
        batch_size: int = 8,
        length: int | None = None,
        split_fractions: tuple[float, float, float] = (0.7, 0.15, 0.15),
        split_axis: SplitAxis = "auto",
        num_workers: int = 0,
        pin_memory: bool = False,
        download: bool = False,
        stats: str | Path | dict[str, Any] | BandStats | None = None,
        offset: float = 0.0,
        nodata: float | None = 0.0,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        processing_level: Literal["L1C", "L2A"] | None = None,
        allow_level_mismatch: bool = False,
    ) -> None:
        self.processing_level = parse_level(processing_level, what="processing_level")
        self.allow_level_mismatch = bool(allow_level_mismatch)
        image_paths = [paths] if isinstance(paths, (str, Path)) else list(paths)
        label_list = [label_paths] if isinstance(label_paths, (str, Path)) else list(label_paths)
        for path in image_paths:
            require_local(path, download=download, what="Sentinel-2 scene")
        for path in label_list:
            require_local(path, download=download, what="land-cover layer")
        if len(split_fractions) != 3:
            raise ConfigError(
                f"split_fractions must give (train, val, test) shares, got {split_fractions}"
            )
        _check_fractions(split_fractions)
        selected = parse_bands(bands)
        super().__init__(
            LandCoverSegmentation,
            batch_size=batch_size,
            patch_size=patch_size,
            length=length,
            num_workers=num_workers,
        )
        self.labels = open_land_cover(
            paths=label_list,
            kind=label_kind,
            classes=classes,
            label_name=label_name,
            layer=layer,
            class_values=class_values,
            ignore_index=ignore_index,
        )
        self.image_paths = image_paths
        if band_pattern is not None:
            band_pattern_filters(band_pattern)  # refuse a malformed pattern now, not at setup
        self.band_pattern = band_pattern
        self.res = float(res)
        self.nodata = nodata
        self.split_fractions = tuple(float(f) for f in split_fractions)
        self.split_axis: SplitAxis = split_axis
        self.pin_memory = pin_memory
        self.class_names: list[str] = list(self.labels.classes)
        self.num_classes = len(self.class_names)
        self.ignore_index = self.labels.ignore_index
        self._splits: list[LandCoverSegmentation] | None = None
        self._init_band_pipeline(
            source_bands=selected,
            bands=selected,
            stats=stats,
            offset=offset,
            nodata=nodata,
            augment=augment,
            crop_scale=crop_scale,
        )

    def _split_datasets(self) -> list[LandCoverSegmentation]:
        """Open image ∩ labels once and cut it into train, val and test strips."""
        if self._splits is None:
            image = Sentinel2Scenes(
                paths=self.image_paths,
                bands=self.source_bands,
                band_pattern=self.band_pattern,
                res=self.res,
                nodata=self.nodata,
            )
            dataset = LandCoverSegmentation(image=image, labels=self.labels)
            x, y, _ = dataset.bounds
            rois = spatial_split_rois(
                (x.start, y.start, x.stop, y.stop), self.split_fractions, axis=self.split_axis
            )
            side = self.patch_size * self.res
            for name, roi in zip(("train", "val", "test"), rois, strict=True):
                minx, miny, maxx, maxy = roi.bounds
                if min(maxx - minx, maxy - miny) < side:
                    raise ConfigError(
                        f"the {name} strip of the labelled area is {maxx - minx:g} x "
                        f"{maxy - miny:g} CRS units, smaller than one {self.patch_size}-px "
                        f"patch at res {self.res:g} ({side:g}); lower patch_size or "
                        "change split_fractions / split_axis"
                    )
            self._splits = cast(list[LandCoverSegmentation], roi_split(dataset, rois))
        return self._splits

    def setup(self, stage: str) -> None:
        """Build the split datasets and samplers for ``stage``.

        Args:
            stage: ``fit``, ``validate`` or ``test``.
        """
        train, val, test = self._split_datasets()
        if stage == "fit":
            self.train_dataset = train
            self.train_batch_sampler = RandomBatchGeoSampler(
                train, self.patch_size, self.batch_size, self.length
            )
        if stage in ("fit", "validate"):
            self.val_dataset = val
            self.val_sampler = InsideGridGeoSampler(val, self.patch_size, self.patch_size)
        if stage == "test":
            self.test_dataset = test
            self.test_sampler = InsideGridGeoSampler(test, self.patch_size, self.patch_size)
