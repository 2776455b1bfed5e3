"""Pretraining DataModule: random tiles from Sentinel-2 scenes, a spatially held-out val strip."""

from __future__ import annotations

import logging
from typing import Any, Literal

import shapely
from torchgeo.datamodules import GeoDataModule
from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

from geomae.bands import parse_bands
from geomae.checks import check_rasters
from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.loaders import LoaderSpec, collate_tensors
from geomae.datamodules.nodata import NodataFilter, collate_kept
from geomae.datasets.sentinel2 import Sentinel2Scenes, Sentinel2Tiles
from geomae.errors import ConfigError
from geomae.levels import parse_level
from geomae.transforms import AugmentKind

__all__ = ["Sentinel2PretrainDataModule", "split_extent"]

log = logging.getLogger(__name__)

Box = tuple[float, float, float, float]  # (xmin, ymin, xmax, ymax)


def split_extent(
    bounds: Box,
    *,
    res: tuple[float, float],
    patch_size: int,
    val_fraction: float,
    val_stride: int,
) -> tuple[Box, Box]:
    """Split an extent into a train region and a held-out val strip.

    The strip is cut off the end of the longer axis (right edge or bottom edge). Its
    size is rounded so that a grid of ``patch_size`` tiles at ``val_stride`` covers it
    exactly, so no val tile reaches into the train region or past the data.

    Args:
        bounds: ``(xmin, ymin, xmax, ymax)`` of the data in CRS units.
        res: ``(xres, yres)`` pixel size in CRS units.
        patch_size: tile size in pixels.
        val_fraction: share of the longer axis given to validation, in ``(0, 1)``.
        val_stride: val grid stride in pixels (``<= patch_size``).

    Returns:
        ``(train_box, val_box)``, each ``(xmin, ymin, xmax, ymax)``.

    Raises:
        ConfigError: if the extent cannot hold one train and one val tile.
    """
    xmin, ymin, xmax, ymax = bounds
    width = round((xmax - xmin) / res[0])  # pixels
    height = round((ymax - ymin) / res[1])
    split_x = width >= height
    along, across = (width, height) if split_x else (height, width)

    def fit(n: int) -> int:
        """Largest size <= n covered exactly by a grid of patch_size at val_stride."""
        return patch_size + (n - patch_size) // val_stride * val_stride

    val_len = fit(max(patch_size, round(val_fraction * along)))
    if along - val_len < patch_size:
        raise ConfigError(
            f"the data is {width}x{height} px: too small to hold a train region and a "
            f"val strip of {val_len} px (val_fraction={val_fraction}) with "
            f"patch_size={patch_size}; lower patch_size or val_fraction"
        )
    val_across = fit(across)
    if split_x:
        cut = xmax - val_len * res[0]
        train = (xmin, ymin, cut, ymax)
        val = (cut, ymax - val_across * res[1], xmax, ymax)
    else:
        cut = ymin + val_len * res[1]
        train = (xmin, cut, xmax, ymax)
        val = (xmin, ymin, xmin + val_across * res[0], cut)
    return train, val


class Sentinel2PretrainDataModule(GeomaeDataModule, GeoDataModule):
    """Random Sentinel-2 tiles for MAE pretraining, with a spatially disjoint val strip.

    Training draws ``length`` random ``patch_size`` tiles per epoch
    (:class:`~torchgeo.samplers.RandomGeoSampler`) from the train region; validation
    reads a regular grid (:class:`~torchgeo.samplers.GridGeoSampler`) over a strip cut
    off the end of the data's longer axis (``val_fraction`` of it), so val tiles never
    overlap train tiles. The split uses the bounds of all files together. Only the
    selected bands are read from disk; the band pipeline then offsets, normalizes and
    (train only) augments each batch on its device.

    Args:
        paths: folders or files with the scenes (see ``tile_format``).
        bands: bands the model sees (band-set name, comma string or list).
        band_pattern: per-band file name template with ``{band}`` such as
            ``s2_{band}.jp2`` (``bands`` tile format only; see
            :class:`~geomae.datasets.sentinel2.Sentinel2Scenes`); None for the standard
            product names.
        patch_size: tile size in pixels.
        batch_size: samples per batch.
        length: training samples per epoch (default: about one pass over the region).
        val_fraction: share of the longer axis held out for validation, in ``(0, 1)``.
        val_stride: val grid stride in pixels (default ``patch_size``, no overlap).
        num_workers: DataLoader worker processes.
        stats: band statistics (YAML path or dict); None uses approximate defaults.
        offset: value subtracted from raw DN before normalization (1000 for
            processing baseline 04.00 and later). None: from the SAFE metadata of
            each product, scenes of mixed baselines brought to one offset (see
            :class:`~geomae.datasets.sentinel2.Sentinel2Scenes`); 0 for bare band
            files and multi-band tiles.
        nodata: raw value marking missing pixels.
        augment: training augmentation, see :class:`geomae.transforms.SpatialAugment`.
        crop_scale: crop area range for ``augment="full"``.
        tile_format: ``bands``: one file per band (:class:`Sentinel2Scenes`);
            ``multiband``: multi-band GeoTIFFs (:class:`Sentinel2Tiles`).
        band_order: band of each raster band of ``multiband`` tiles (default: the 12
            L2A bands in canonical order).
        res: resolution to read at (default: 10 m for ``bands``, the files' own for
            ``multiband``).
        pin_memory: pin batches in page-locked memory (only when CUDA is available).
        persistent_workers: keep workers between epochs (default: ``num_workers > 0``).
        max_nodata_fraction: tiles with a larger share of nodata / non-finite pixels
            are skipped: redrawn in training, left out of validation batches (see
            :mod:`geomae.datamodules.nodata`); 1 keeps every tile.
        check_files: before training, open every file and decode a small window of it
            (see :func:`geomae.checks.check_rasters`).
        processing_level: the data's processing level, ``L1C`` or ``L2A`` (None:
            that of the SAFE products, else unknown and not checked); recorded in
            pretrained weights, and weights of the other level are refused unless
            ``allow_level_mismatch``.
        allow_level_mismatch: run weights of the other processing level anyway (a
            warning instead of an error).

    Raises:
        DataError: if no files match ``paths``, or a file is unreadable, has the wrong
            band count or data type, or (without ``res``) another resolution.
        BandError: on an unknown band, or a band missing from ``stats``.
        ConfigError: if ``patch_size`` exceeds the data or the split leaves no room,
            or ``band_pattern`` is malformed or given with ``multiband`` tiles.
    """

    def __init__(
        self,
        *,
        paths: str | list[str],
        bands: str | list[str] = "all",
        band_pattern: str | None = None,
        patch_size: int = 64,
        batch_size: int = 32,
        length: int | None = None,
        val_fraction: float = 0.2,
        val_stride: int | None = None,
        num_workers: int = 0,
        stats: str | dict[str, Any] | None = None,
        offset: float | None = None,
        nodata: float | None = None,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
        tile_format: Literal["bands", "multiband"] = "bands",
        band_order: list[str] | None = None,
        res: float | None = None,
        pin_memory: bool = True,
        persistent_workers: bool | None = None,
        max_nodata_fraction: float = 0.5,
        check_files: bool = True,
        processing_level: Literal["L1C", "L2A"] | None = None,
        allow_level_mismatch: bool = False,
    ) -> None:
        self.processing_level = parse_level(processing_level, what="processing_level")
        self.allow_level_mismatch = bool(allow_level_mismatch)
        if tile_format not in ("bands", "multiband"):
            raise ConfigError(f"tile_format={tile_format!r} must be 'bands' or 'multiband'")
        if band_pattern is not None and tile_format != "bands":
            raise ConfigError(
                f"band_pattern={band_pattern!r} names per-band files; it needs "
                f"tile_format='bands' (got {tile_format!r})"
            )
        if not 0.0 < val_fraction < 1.0:
            raise ConfigError(f"val_fraction={val_fraction} must be between 0 and 1")
        if not 0.0 <= max_nodata_fraction <= 1.0:
            raise ConfigError(f"max_nodata_fraction={max_nodata_fraction} must be in [0, 1]")
        if patch_size < 1 or (val_stride is not None and not 0 < val_stride <= patch_size):
            raise ConfigError(
                f"need patch_size >= 1 and 0 < val_stride <= patch_size "
                f"(got patch_size={patch_size}, val_stride={val_stride})"
            )
        super().__init__(
            Sentinel2Scenes if tile_format == "bands" else Sentinel2Tiles,
            batch_size=batch_size,
            patch_size=patch_size,
            length=length,
            num_workers=num_workers,
        )
        self.save_hyperparameters()
        selected = parse_bands(bands)
        self.bands = selected
        self._offset_arg = offset
        self.paths = [paths] if isinstance(paths, str) else list(paths)
        self.tile_format = tile_format
        self.band_pattern = band_pattern
        self.val_fraction = float(val_fraction)
        self.val_stride = int(val_stride or patch_size)
        self.pin_memory = bool(pin_memory)
        self.persistent_workers = (
            num_workers > 0 if persistent_workers is None else bool(persistent_workers)
        )
        self.patch_px = int(patch_size)
        self.max_nodata_fraction = float(max_nodata_fraction)
        self.geo_dataset = self._make_dataset(band_order=band_order, res=res, nodata=nodata)
        self.dataset = self.geo_dataset
        self._adopt_product_level()
        self._init_band_pipeline(
            source_bands=selected,
            bands=selected,
            stats=stats,
            offset=getattr(self.geo_dataset, "offset", 0.0) if offset is None else offset,
            nodata=nodata,
            augment=augment,
            crop_scale=crop_scale,
        )
        self.train_roi, self.val_roi = self._split()
        if check_files:
            check_rasters(
                self.geo_dataset.raster_files(),
                band_count=1 if tile_format == "bands" else None,
                res=self.geo_dataset.res[0] if tile_format == "bands" or res else None,
                patch_size=self.patch_px,
            )

    def _adopt_product_level(self) -> None:
        """Take the SAFE products' processing level, or check the declared one against it.

        Raises:
            ConfigError: the declared ``processing_level`` is not the products' level.
        """
        found = getattr(self.geo_dataset, "processing_level", None)
        if found is None:
            return
        if self.processing_level is None:
            log.info("processing level %s, from the SAFE product metadata", found)
            self.processing_level = found
        elif self.processing_level != found:
            product = self.geo_dataset.products[0].metadata  # type: ignore[union-attr]
            raise ConfigError(
                f"processing_level={self.processing_level} but the scenes in {self.paths} "
                f"are {found} products ({product}); fix processing_level or the paths"
            )

    def _make_dataset(
        self, *, band_order: list[str] | None, res: float | None, nodata: float | None
    ) -> Sentinel2Scenes | Sentinel2Tiles:
        """Index the files, reading only the selected bands."""
        if self.tile_format == "bands":
            return Sentinel2Scenes(
                paths=self.paths,
                bands=self.bands,
                band_pattern=self.band_pattern,
                res=10.0 if res is None else res,
                nodata=nodata,
                offset=self._offset_arg,
            )
        kwargs: dict[str, Any] = {} if band_order is None else {"band_order": band_order}
        return Sentinel2Tiles(paths=self.paths, bands=self.bands, res=res, nodata=nodata, **kwargs)

    def _split(self) -> tuple[shapely.Polygon, shapely.Polygon]:
        """Check ``patch_size`` against the data and cut the train / val regions."""
        x, y, _ = self.geo_dataset.bounds
        res = self.geo_dataset.res
        width = round((x.stop - x.start) / res[0])
        height = round((y.stop - y.start) / res[1])
        patch = self.patch_px
        if patch > min(width, height):
            raise ConfigError(
                f"patch_size={patch} px is larger than the data in {self.paths} "
                f"({width}x{height} px at {res[0]:g} m)"
            )
        train, val = split_extent(
            (x.start, y.start, x.stop, y.stop),
            res=res,
            patch_size=patch,
            val_fraction=self.val_fraction,
            val_stride=self.val_stride,
        )
        log.info("train region %s, val region %s (CRS units)", train, val)
        return shapely.box(*train), shapely.box(*val)

    def setup(self, stage: str) -> None:
        """Build the samplers (the dataset is indexed once, in ``__init__``).

        Args:
            stage: ``fit``, ``validate``, ``test`` or ``predict``.
        """
        if stage == "fit":
            self.train_sampler = RandomGeoSampler(
                self.geo_dataset, self.patch_px, self.length, roi=self.train_roi
            )
            if not self.train_sampler.bounds:
                raise ConfigError(
                    f"no file in {self.paths} holds a {self.patch_px} px tile inside the "
                    "train region; lower patch_size or val_fraction"
                )
            self.train_dataset = NodataFilter(
                self.geo_dataset,
                max_nodata_fraction=self.max_nodata_fraction,
                redraw_from=self.train_sampler,
            )
        if stage in ("fit", "validate"):
            self.val_dataset = NodataFilter(
                self.geo_dataset, max_nodata_fraction=self.max_nodata_fraction
            )
            self.val_sampler = GridGeoSampler(
                self.geo_dataset, self.patch_px, self.val_stride, roi=self.val_roi
            )
        if stage in ("test", "predict"):
            raise ConfigError(f"{type(self).__name__} has no {stage} split; use fit or validate")

    def _loader_spec(self, split: str) -> LoaderSpec:
        """``split``'s sampler over its dataset; val batches keep only the kept tiles."""
        return LoaderSpec(
            self._valid_attribute(f"{split}_dataset"),
            sampler=self._valid_attribute(f"{split}_sampler"),
            drop_last=split == "train",
            collate_fn=collate_tensors if split == "train" else collate_kept,
        )
