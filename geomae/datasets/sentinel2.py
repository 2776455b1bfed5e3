"""Sentinel-2 scenes as torchgeo datasets: per-band files or multi-band GeoTIFF tiles.

Both datasets yield samples ``{"image": (C, H, W) float32 raw DN, "valid": (1, H, W)
bool (only when ``nodata`` is set), "crs", "bounds"}`` with channels in the order of
their ``bands`` attribute (canonical names). Values are not normalized: the GPU band
pipeline (:class:`geomae.transforms.BandPipeline`) does that.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import rasterio
import rasterio.errors
import rasterio.merge
import torch
from rasterio.enums import Resampling
from torch import Tensor
from torchgeo.datasets import DatasetNotFoundError, RasterDataset
from torchgeo.datasets.utils import GeoSlice, array_to_tensor

from geomae.bands import L2A_BANDS, S2_BANDS, parse_bands
from geomae.checks import error_reason
from geomae.datasets.safe import (
    SafeProduct,
    find_product_dir,
    product_metadata,
    read_safe_product,
)
from geomae.errors import BandError, ConfigError, DataError
from geomae.levels import ProcessingLevel

__all__ = ["Sentinel2Scenes", "Sentinel2Tiles", "band_pattern_filters"]

log = logging.getLogger(__name__)

Transform = Callable[[dict[str, Any]], dict[str, Any]]
PathsArg = str | Path | Iterable[str | Path]


def _as_paths(paths: PathsArg) -> list[str]:
    """Normalize ``paths`` to a list of strings."""
    if isinstance(paths, (str, os.PathLike)):
        return [os.fspath(paths)]
    return [os.fspath(p) for p in paths]


#: Placeholder of the band name in a ``band_pattern``.
BAND_FIELD = "{band}"

#: Band whose file indexes a scene (the 10 m grid every band is read on).
INDEX_BAND = "B02"


def band_pattern_filters(band_pattern: str) -> tuple[str, str]:
    """The file glob and regular expression of the B02 files named by ``band_pattern``.

    ``band_pattern`` is a file name (no folder) with ``{band}`` where the band name
    goes; ``*`` matches any run of characters and ``?`` any one character, everything
    else is literal. ``"s2_{band}.jp2"`` gives the glob ``s2_B02.jp2`` and a regex
    matching exactly that name, its ``band`` group on ``B02``.

    Args:
        band_pattern: the file name template, e.g. ``s2_{band}.jp2`` or ``*_{band}.tif``.

    Returns:
        ``(filename_glob, filename_regex)`` for torchgeo's ``RasterDataset``; the regex
        (verbose mode) has a ``band`` group spanning the band name.

    Raises:
        ConfigError: if ``{band}`` is missing or repeated, or the pattern holds a folder
            separator or another ``{...}`` field.
    """
    example = "e.g. 's2_{band}.jp2' or '*_{band}.tif'"
    if band_pattern.count(BAND_FIELD) != 1:
        raise ConfigError(
            f"band_pattern {band_pattern!r} must contain {BAND_FIELD} exactly once, where "
            f"the band name (B02, B8A, ...) goes in the file names, {example}"
        )
    if "/" in band_pattern or os.sep in band_pattern:
        raise ConfigError(
            f"band_pattern {band_pattern!r} must be a file name without folders ({example}); "
            "pass the folders as paths"
        )
    before, after = band_pattern.split(BAND_FIELD)
    if any(c in before + after for c in "{}"):
        raise ConfigError(
            f"band_pattern {band_pattern!r}: only the field {BAND_FIELD} is known, {example}"
        )

    def to_glob(part: str) -> str:
        return part.replace("[", "[[]")  # '[' is literal, only * and ? are wildcards

    def to_regex(part: str) -> str:
        return "".join({"*": ".*", "?": "."}.get(c, re.escape(c)) for c in part)

    filename_glob = to_glob(before) + INDEX_BAND + to_glob(after)
    filename_regex = f"^{to_regex(before)}(?P<band>{INDEX_BAND}){to_regex(after)}$"
    return filename_glob, filename_regex


#: torchgeo >= 0.10: ``RasterDataset._load_warp_file(filepath, crs)``; 0.8: ``(filepath)``.
_WARP_TAKES_CRS = "crs" in inspect.signature(RasterDataset._load_warp_file).parameters


class _Sentinel2Raster(RasterDataset):
    """Shared behaviour: nodata-aware merging, ``valid`` masks, geomae errors."""

    #: Human-readable file name pattern, for error messages.
    file_pattern = "*"

    def _setup(
        self,
        *,
        paths: PathsArg,
        crs: Any,
        res: float | tuple[float, float] | None,
        bands: Sequence[str],
        nodata: float | None,
        resampling: Literal["bilinear", "nearest"] | None,
        transforms: Transform | None,
        cache: bool,
    ) -> None:
        """Index the files (wrapping torchgeo's not-found error in a DataError)."""
        self.nodata = None if nodata is None else float(nodata)
        self._resampling_name = resampling
        self._sample_transforms = transforms
        path_list = _as_paths(paths)
        try:
            super().__init__(path_list, crs, res, list(bands), None, cache)
        except DatasetNotFoundError:
            self._raise_unreadable(indexed=set())
            raise DataError(
                f"no Sentinel-2 files found in {path_list}: expected file names "
                f"matching {self.file_pattern}"
            ) from None
        self._raise_unreadable(indexed={str(f) for f in self.index.filepath})
        self.bands: list[str] = list(bands)

    def _raise_unreadable(self, *, indexed: set[str]) -> None:
        """Refuse files that match the naming pattern but that GDAL cannot open.

        Torchgeo skips such files silently; a corrupt scene would then just be missing
        from training.
        """
        regex = re.compile(self.filename_regex, re.VERBOSE)
        failures = []
        for filepath in self.files:
            if filepath in indexed or regex.match(os.path.basename(filepath)) is None:
                continue
            try:
                with rasterio.open(filepath):
                    pass
            except rasterio.errors.RasterioError as err:
                failures.append(f"{filepath} ({' '.join(str(err).split())})")
        if failures:
            raise DataError(
                f"{len(failures)} file(s) named like Sentinel-2 data cannot be opened: "
                f"{'; '.join(failures[:5])}{' ...' if len(failures) > 5 else ''}. They are "
                "corrupt or not rasters; re-download or remove them"
            )

    def raster_files(self) -> list[str]:
        """Every file a read may touch (for pre-flight checks)."""
        return [str(f) for f in self.index.filepath]

    @property
    def resampling(self) -> Resampling:
        """Bilinear, or nearest neighbour when asked or when ``nodata`` is set.

        Nearest keeps nodata pixels from bleeding into their valid neighbours when
        coarser bands are upsampled to 10 m.
        """
        name = self._resampling_name or ("bilinear" if self.nodata is None else "nearest")
        return Resampling[name]

    def _merge_files(
        self,
        filepaths: Sequence[str],
        query: GeoSlice,
        band_indexes: Sequence[int] | None = None,
    ) -> Tensor:
        """Read and mosaic ``filepaths`` over ``query``; areas without data get ``nodata``."""
        x, y, _ = self._disambiguate_slice(query)
        # torchgeo >= 0.10 asks for the CRS to warp to (the cached opener requires it)
        crs = (self.crs,) if _WARP_TAKES_CRS else ()
        try:
            if self.cache:
                handles = [self._cached_load_warp_file(fp, *crs) for fp in filepaths]
            else:
                handles = [self._load_warp_file(fp, *crs) for fp in filepaths]
            dest, _ = rasterio.merge.merge(
                handles,
                (x.start, y.start, x.stop, y.stop),
                (x.step, y.step),
                indexes=band_indexes,
                nodata=self.nodata,
                resampling=self.resampling,
            )
        except rasterio.errors.RasterioError as err:
            raise DataError(
                f"reading {list(filepaths)} over x={x.start:.10g}..{x.stop:.10g}, "
                f"y={y.start:.10g}..{y.stop:.10g} failed: {error_reason(err)}. A file is "
                "truncated or corrupt; re-download or remove it"
            ) from err
        return array_to_tensor(dest)  # (C, H, W)

    def _merge_or_stack(
        self,
        filepaths: Sequence[str],
        index: GeoSlice,
        band_indexes: Sequence[int] | None = None,
        out_crs: Any = None,
    ) -> Tensor:
        """Read like :meth:`_merge_files` (torchgeo >= 0.10 calls this name instead).

        torchgeo 0.8 reads through ``_merge_files``, 0.10 through ``_merge_or_stack``
        (with ``out_crs``: the dataset's own CRS, the only one geomae reads in).
        """
        if out_crs is not None and out_crs != self.crs:
            raise ConfigError(
                f"{type(self).__name__} reads in its own CRS {self.crs}, not {out_crs}"
            )
        return self._merge_files(filepaths, index, band_indexes)

    def __getitem__(self, query: GeoSlice) -> dict[str, Any]:
        """Read the bands over ``query``.

        Returns:
            ``image`` ``(C, H, W)`` float32 raw DN, ``valid`` ``(1, H, W)`` bool when
            ``nodata`` is set, and torchgeo's ``crs`` / ``bounds``.
        """
        sample = super().__getitem__(query)
        image = sample["image"]  # (C, H, W)
        if self.nodata is not None:
            sample["valid"] = (torch.isfinite(image) & (image != self.nodata)).all(
                dim=0, keepdim=True
            )  # (1, H, W)
        if self._sample_transforms is not None:
            sample = self._sample_transforms(sample)
        return sample


class Sentinel2Scenes(_Sentinel2Raster):
    """Sentinel-2 scenes stored as one file per band, all bands read at one resolution.

    By default finds files named the standard way, ``T33UUU_20170216T102101_B02.jp2``
    (L1C ``IMG_DATA``) or ``T33UUU_20170216T102101_B02_10m.jp2`` in the ``R10m`` folder
    of an L2A granule (other bands then come from ``R20m`` / ``R60m`` at their native
    resolution), as JPEG 2000 or GeoTIFF. Other names are given by ``band_pattern``, a
    file name template such as ``s2_{band}.jp2`` or ``*_{band}.tif`` (see
    :func:`band_pattern_filters`): the files matching it with ``{band}`` = ``B02`` are
    the scenes, and each band's file is that name with the band substituted, in the
    same folder.

    Scenes are indexed by their B02 file, so samples live on B02's 10 m grid and
    bounds; every band is resampled to ``res`` (10 m by default) on read, each file
    placed by its own georeferencing, so 20 m / 60 m files whose bounds differ from
    B02's still land on the right pixels (areas a band does not cover get ``nodata``,
    or 0). B10 (cirrus, L1C only) is not read unless asked for.

    Scenes inside SAFE products (``paths`` may be one product, or a folder of many)
    carry their product's processing level and baseline (:mod:`geomae.datasets.safe`).
    With ``offset=None`` each scene's DN offset comes from its product: 1000 from
    baseline 04.00 on, else 0 (bare band files: 0). Scenes of mixed baselines are
    brought to one offset, the largest, by adding the difference to the valid pixels
    of the others on read (pixels equal to ``nodata``, or 0, the products' NO_DATA
    value, stay as they are); :attr:`offset` is then the one offset to subtract. So
    pre-04.00 scenes read ``DN + 1000`` next to 04.00 scenes: after subtracting
    :attr:`offset` both are ``reflectance * 10000``, and integers stay non-negative.

    Args:
        paths: folders to search recursively, or B02 files.
        bands: bands to read (band-set name, comma string or list), in canonical order.
        band_pattern: file name template with ``{band}`` (``*`` / ``?`` wildcards
            allowed); None for the standard product names.
        crs: CRS to warp to (defaults to that of the first scene).
        res: output resolution in CRS units (metres).
        nodata: raw value marking missing pixels; enables the ``valid`` mask.
        resampling: ``bilinear`` or ``nearest``; default bilinear, nearest when
            ``nodata`` is set.
        transforms: applied to each sample dict after reading.
        cache: keep file handles open between reads.
        offset: DN offset of every scene, overriding the SAFE metadata (a mismatch
            is logged); None reads it per product, as described above.

    Attributes:
        offset: the DN offset every sample carries (subtract it before normalizing).
        processing_level: ``L1C`` / ``L2A`` when the scenes are SAFE products, else
            None.
        products: the SAFE products of the indexed scenes.
        scene_offsets: ``{B02 file: its product's own DN offset}``.

    Raises:
        ConfigError: if ``band_pattern`` lacks ``{band}`` (or is otherwise malformed).
        DataError: if no scene is found (names the paths and the expected file names),
            a scene lacks the file of a requested band (names the file), a product's
            metadata is unreadable, or L1C and L2A products are mixed.
        BandError: on an unknown band name.
    """

    filename_glob = "T*_*_B02*"
    filename_regex = r"""
        ^T(?P<tile>\d{2}[A-Z]{3})
        _(?P<date>\d{8}T\d{6})
        _(?P<band>B02)
        (?:_(?P<resolution>10m))?
        \.(?i:jp2|tif|tiff)$
    """
    date_format = "%Y%m%dT%H%M%S"
    separate_files = True
    all_bands = tuple(S2_BANDS)
    rgb_bands = ("B04", "B03", "B02")
    file_pattern = "T*_*_B02*.jp2|tif (e.g. T33UUU_20170216T102101_B02.jp2 or ..._B02_10m.jp2)"

    def __init__(
        self,
        *,
        paths: PathsArg,
        bands: str | Sequence[str] = "all",
        band_pattern: str | None = None,
        crs: Any = None,
        res: float = 10.0,
        nodata: float | None = None,
        resampling: Literal["bilinear", "nearest"] | None = None,
        transforms: Transform | None = None,
        cache: bool = True,
        offset: float | None = None,
    ) -> None:
        self.band_pattern = band_pattern
        if band_pattern is not None:
            # per instance: torchgeo reads both attributes through self (files, index,
            # and the band substitution on the regex's ``band`` group)
            self.filename_glob, self.filename_regex = band_pattern_filters(band_pattern)
            self.file_pattern = (
                f"{band_pattern} (band_pattern; scenes are indexed by their "
                f"{INDEX_BAND} file, {self.filename_glob})"
            )
        self._setup(
            paths=paths,
            crs=crs,
            res=float(res),
            bands=parse_bands(bands),
            nodata=nodata,
            resampling=resampling,
            transforms=transforms,
            cache=cache,
        )
        self._check_band_files()
        self._read_products(offset)

    def _read_products(self, offset: float | None) -> None:
        """Level, baseline and DN offset of every scene's SAFE product; per-file shifts."""
        by_dir: dict[Path, SafeProduct] = {}
        scene_products: dict[str, SafeProduct | None] = {}
        for filepath in map(str, self.index.filepath):
            product_dir = None if filepath.startswith("/vsi") else find_product_dir(filepath)
            if product_dir is not None and product_dir not in by_dir:
                by_dir[product_dir] = read_safe_product(product_metadata(product_dir))
            scene_products[filepath] = None if product_dir is None else by_dir[product_dir]
        self.products: list[SafeProduct] = list(by_dir.values())
        levels: dict[ProcessingLevel, SafeProduct] = {p.level: p for p in self.products}
        if len(levels) > 1:
            raise DataError(
                f"L1C and L2A products in one dataset ({levels['L1C'].path} and "
                f"{levels['L2A'].path}): their values differ (top-of-atmosphere vs "
                "surface reflectance); read one level at a time"
            )
        self.processing_level: ProcessingLevel | None = next(iter(levels), None)
        self.scene_offsets = {f: 0.0 if p is None else p.offset for f, p in scene_products.items()}
        bare = [f for f, p in scene_products.items() if p is None]
        if offset is not None:
            self.offset = float(offset)
            differ = [p for p in self.products if p.offset != self.offset]
            if differ:
                log.warning(
                    "offset=%g given, but %d SAFE product(s) say otherwise (e.g. %s, "
                    "baseline %s: offset %g); using %g for every scene",
                    self.offset,
                    len(differ),
                    differ[0].path,
                    differ[0].baseline,
                    differ[0].offset,
                    self.offset,
                )
            shifts = dict.fromkeys(self.scene_offsets, 0.0)
        else:
            self.offset = max(self.scene_offsets.values(), default=0.0)
            if bare and self.products and self.offset:
                log.warning(
                    "%d scene(s) outside SAFE products (e.g. %s) are taken as offset 0 "
                    "next to products with offset %g; pass offset= if they have one",
                    len(bare),
                    bare[0],
                    self.offset,
                )
            shifts = {f: self.offset - o for f, o in self.scene_offsets.items()}
        baselines = sorted({p.baseline for p in self.products})
        if len(baselines) > 1 and offset is None:
            log.info(
                "%d SAFE products of processing baselines %s: scenes brought to offset %g",
                len(self.products),
                baselines,
                self.offset,
            )
        #: {band file: value added to its valid pixels on read}, non-zero shifts only
        self._shifts: dict[str, float] = {
            self._update_filepath(band, f): shift
            for f, shift in shifts.items()
            if shift
            for band in self.bands
        }

    def _fill_value(self) -> float:
        """Value of pixels without data after a merge (``nodata``, or 0)."""
        return 0.0 if self.nodata is None else self.nodata

    def _shift(self, data: Tensor, shift: float) -> Tensor:
        """``data + shift`` on pixels with data; fill pixels kept."""
        if not shift:
            return data
        fill = self._fill_value()
        has_data = ~torch.isnan(data) if math.isnan(fill) else data != fill
        return torch.where(has_data, data + shift, data)

    def _merge_files(
        self,
        filepaths: Sequence[str],
        query: GeoSlice,
        band_indexes: Sequence[int] | None = None,
    ) -> Tensor:
        """Mosaic ``filepaths`` over ``query``, each file shifted to the common offset.

        Files of one offset are merged together; when scenes of different offsets
        overlap the query, each file is read alone, shifted, and the mosaic keeps the
        first file's pixels where it has data (rasterio's ``first`` rule).
        """
        if not self._shifts:
            return super()._merge_files(filepaths, query, band_indexes)
        shifts = [self._shifts.get(str(fp), 0.0) for fp in filepaths]
        if len(set(shifts)) == 1:
            return self._shift(super()._merge_files(filepaths, query, band_indexes), shifts[0])
        fill = self._fill_value()
        out: Tensor | None = None
        for filepath, shift in zip(filepaths, shifts, strict=True):
            part = self._shift(super()._merge_files([filepath], query, band_indexes), shift)
            if out is None:
                out = part
            else:
                empty = torch.isnan(out) if math.isnan(fill) else out == fill
                out = torch.where(empty, part, out)  # (C, H, W)
        assert out is not None
        return out

    def _update_filepath(self, band: str, filepath: str) -> str:
        """Path of ``band``'s file in the scene whose B02 file is ``filepath``."""
        directory, filename = os.path.split(filepath)
        match = re.match(self.filename_regex, filename, re.VERBOSE)
        if match is None:  # pragma: no cover - indexed files always match
            return filepath
        start, end = match.span("band")
        filename = filename[:start] + band + filename[end:]
        if match.groupdict().get("resolution"):  # L2A product names (no band_pattern)
            gsd = f"{S2_BANDS[band].gsd_m}m"
            offset = len(band) - (end - start)
            r_start, r_end = (i + offset for i in match.span("resolution"))
            filename = filename[:r_start] + gsd + filename[r_end:]
            parent, subdir = os.path.split(directory)
            if re.fullmatch(r"R\d+m", subdir):
                directory = os.path.join(parent, f"R{gsd}")
        return os.path.join(directory, filename)

    def raster_files(self) -> list[str]:
        """The file of every requested band of every indexed scene."""
        files: list[str] = []
        for filepath in self.index.filepath:
            files.extend(self._update_filepath(band, str(filepath)) for band in self.bands)
        return files

    def _check_band_files(self) -> None:
        """Fail early, naming the file, when a scene lacks one of the requested bands."""
        for filepath in self.index.filepath:
            if str(filepath).startswith("/vsi"):
                continue
            for band in self.bands:
                band_path = self._update_filepath(band, filepath)
                if not os.path.isfile(band_path):
                    named = "" if self.band_pattern is None else f" ({self.band_pattern})"
                    raise DataError(
                        f"scene {filepath}: band {band} file {band_path}{named} does not "
                        f"exist; requested bands are {self.bands}"
                    )


class Sentinel2Tiles(_Sentinel2Raster):
    """Multi-band GeoTIFF tiles whose raster bands are Sentinel-2 bands in a known order.

    Args:
        paths: folders to search recursively for ``*.tif``/``*.tiff``, or files.
        band_order: the Sentinel-2 band of each raster band, in file order (default:
            the 12 L2A bands in canonical order).
        bands: bands to read (default: every band of ``band_order`` except B10),
            returned in canonical order.
        crs: CRS to warp to (defaults to that of the first file).
        res: output resolution (defaults to that of the first file).
        nodata: raw value marking missing pixels; enables the ``valid`` mask.
        resampling: ``bilinear`` or ``nearest``; default bilinear, nearest when
            ``nodata`` is set.
        transforms: applied to each sample dict after reading.
        cache: keep file handles open between reads.

    Raises:
        DataError: if no file is found, or a file's band count differs from
            ``len(band_order)`` (names the file and both counts).
        BandError: on an unknown or duplicated band, or ``bands`` not in ``band_order``.
    """

    filename_glob = "*.tif*"
    filename_regex = r"^.*\.(?i:tif|tiff)$"
    separate_files = False
    file_pattern = "*.tif|*.tiff (multi-band GeoTIFF)"

    def __init__(
        self,
        *,
        paths: PathsArg,
        band_order: Sequence[str] = L2A_BANDS,
        bands: str | Sequence[str] | None = None,
        crs: Any = None,
        res: float | None = None,
        nodata: float | None = None,
        resampling: Literal["bilinear", "nearest"] | None = None,
        transforms: Transform | None = None,
        cache: bool = True,
    ) -> None:
        self.band_order = parse_bands(band_order, keep_order=True)
        self.all_bands = tuple(self.band_order)
        if bands is None:
            wanted = parse_bands([b for b in self.band_order if b != "B10"])
        else:
            wanted = parse_bands(bands)
        absent = [b for b in wanted if b not in self.band_order]
        if absent:
            raise BandError(f"band(s) {absent} are not in the tiles' band_order {self.band_order}")
        self._setup(
            paths=paths,
            crs=crs,
            res=None if res is None else float(res),
            bands=wanted,
            nodata=nodata,
            resampling=resampling,
            transforms=transforms,
            cache=cache,
        )
        self._check_band_counts()

    def _check_band_counts(self) -> None:
        """Every file must hold exactly ``len(band_order)`` bands."""
        for filepath in self.index.filepath:
            with rasterio.open(filepath) as src:
                if src.count != len(self.band_order):
                    raise DataError(
                        f"{filepath} has {src.count} band(s) but band_order lists "
                        f"{len(self.band_order)}: {self.band_order}"
                    )
