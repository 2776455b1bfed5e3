"""Pre-flight checks: fail before training, naming the file, band or folder at fault.

:func:`check_rasters` opens every raster a DataModule indexed, reads its header and one
small window in its bottom-right corner (the end of the file, where a truncated
download or copy is cut off) and checks band count, data type, resolution, CRS and size
against what training needs. :func:`check_writable_dir` proves that an output folder
accepts files. Both raise :mod:`geomae.errors` exceptions whose message says what was
found and what was expected.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import rasterio
from rasterio.errors import RasterioError
from rasterio.windows import Window

from geomae.errors import ConfigError, DataError

__all__ = [
    "DN_DTYPES",
    "RasterInfo",
    "check_rasters",
    "check_writable_dir",
    "error_reason",
    "inspect_raster",
]

log = logging.getLogger(__name__)

#: Raster data types accepted as Sentinel-2 digital numbers or reflectances. 8-bit data
#: is a rendered product (e.g. the TCI true-colour image), complex data is not imagery.
DN_DTYPES: tuple[str, ...] = ("uint16", "int16", "uint32", "int32", "float32", "float64")

#: Side in pixels of the window read from each file.
PROBE_PX = 8


@dataclass(frozen=True)
class RasterInfo:
    """Header facts of one raster file.

    Attributes:
        path: the file.
        crs: its CRS as a string (``EPSG:32632`` or WKT), None if it has none.
        res: ``(xres, yres)`` pixel size in CRS units.
        width: width in pixels.
        height: height in pixels.
        count: number of raster bands.
        dtypes: data type of each raster band.
    """

    path: str
    crs: str | None
    res: tuple[float, float]
    width: int
    height: int
    count: int
    dtypes: tuple[str, ...]


def error_reason(err: BaseException) -> str:
    """One line with the messages of ``err`` and the exceptions that caused it."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        text = " ".join(str(current).split())
        if text and not text.startswith("Read failed. See previous exception"):
            parts.append(text)
        current = current.__cause__ or current.__context__
    return "; ".join(parts) or type(err).__name__


def inspect_raster(path: str | os.PathLike[str], *, read: bool = True) -> RasterInfo:
    """Open ``path``, read its header and (``read=True``) its bottom-right window.

    Args:
        path: a raster file (GeoTIFF, JPEG 2000, any GDAL format).
        read: also decode a ``PROBE_PX`` square of every band at the end of the file.

    Returns:
        The file's :class:`RasterInfo`.

    Raises:
        DataError: if GDAL cannot open or decode the file (names it and GDAL's reason).
    """
    name = os.fspath(path)
    try:
        with rasterio.open(name) as src:
            info = RasterInfo(
                path=name,
                crs=None if src.crs is None else src.crs.to_string(),
                res=(float(src.res[0]), float(src.res[1])),
                width=int(src.width),
                height=int(src.height),
                count=int(src.count),
                dtypes=tuple(str(d) for d in src.dtypes),
            )
            if read and src.width > 0 and src.height > 0:
                w, h = min(PROBE_PX, src.width), min(PROBE_PX, src.height)
                src.read(window=Window(src.width - w, src.height - h, w, h))
    except (RasterioError, OSError) as err:
        raise DataError(
            f"{name} cannot be read: {error_reason(err)}. The file is truncated or "
            "corrupt (or not a raster); re-download or re-export it, or remove it"
        ) from err
    return info


def _log_reprojection(infos: Sequence[RasterInfo]) -> None:
    by_crs: dict[str | None, list[str]] = {}
    for info in infos:
        by_crs.setdefault(info.crs, []).append(info.path)
    if len(by_crs) > 1:
        first = infos[0].crs
        others = {crs: paths for crs, paths in by_crs.items() if crs != first}
        log.warning(
            "the files use %d CRSs: every file is reprojected on read to %s (the CRS of "
            "%s); files in other CRSs: %s",
            len(by_crs),
            first,
            infos[0].path,
            {crs: paths[:3] + (["..."] if len(paths) > 3 else []) for crs, paths in others.items()},
        )


def check_rasters(
    paths: Iterable[str | os.PathLike[str]],
    *,
    band_count: int | None = None,
    dtypes: Sequence[str] = DN_DTYPES,
    res: float | None = None,
    patch_size: int | None = None,
    read: bool = True,
) -> list[RasterInfo]:
    """Check that every raster is readable and fits the training configuration.

    Rules (the catalogue in ``docs/errors.md``):

    * every file opens and its bottom-right window decodes (else the file is truncated
      or corrupt);
    * every band has a data type in ``dtypes``;
    * every file has ``band_count`` bands, when given;
    * with ``res=None`` all files must share one resolution; files of other
      resolutions are only resampled when ``res`` is given explicitly;
    * files in different CRSs are reprojected to the first file's CRS (logged);
    * files smaller than ``patch_size`` pixels (at ``res``) are never sampled (logged);
      if every file is, that is an error.

    Args:
        paths: the files.
        band_count: expected number of raster bands per file.
        dtypes: accepted data types.
        res: the resolution the data is read at (CRS units), None for the files' own.
        patch_size: tile size in pixels.
        read: decode a small window of every file (not only the header).

    Returns:
        The :class:`RasterInfo` of each file, in order.

    Raises:
        DataError: on an unreadable file, a wrong band count or data type, or mixed
            resolutions with ``res=None``.
        ConfigError: if every file is smaller than ``patch_size``.
    """
    start = time.perf_counter()
    infos = [inspect_raster(p, read=read) for p in paths]
    for info in infos:
        bad = sorted({d for d in info.dtypes if d not in dtypes})
        if bad:
            raise DataError(
                f"{info.path} has data type {', '.join(bad)}; expected Sentinel-2 digital "
                f"numbers or reflectances as one of {', '.join(dtypes)} (8-bit files are "
                "rendered images such as TCI, not measurements)"
            )
        if band_count is not None and info.count != band_count:
            raise DataError(
                f"{info.path} has {info.count} band(s); expected {band_count} (one per entry "
                "of band_order)"
            )
    if infos and res is None:
        first = infos[0]
        for info in infos[1:]:
            pairs = zip(info.res, first.res, strict=True)
            if any(abs(a - b) > 1e-6 * max(abs(a), 1.0) for a, b in pairs):
                raise DataError(
                    f"{info.path} has resolution {info.res[0]:g} x {info.res[1]:g} but "
                    f"{first.path} has {first.res[0]:g} x {first.res[1]:g}; geomae does not "
                    "resample silently: pass res=<metres> to read every file at one "
                    "resolution, or convert the files"
                )
    _log_reprojection(infos)
    if patch_size is not None and infos:
        too_small = []
        for info in infos:
            scale_x = info.res[0] / (res if res is not None else info.res[0])
            scale_y = info.res[1] / (res if res is not None else info.res[1])
            if min(info.width * scale_x, info.height * scale_y) < patch_size - 1e-6:
                too_small.append(info)
        if len(too_small) == len(infos):
            info = too_small[0]
            raise ConfigError(
                f"every file is smaller than patch_size={patch_size} px, e.g. {info.path} "
                f"({info.width}x{info.height} px at {info.res[0]:g}); lower patch_size"
            )
        if too_small:
            log.warning(
                "%d of %d files are smaller than patch_size=%d px and are never sampled, e.g. %s",
                len(too_small),
                len(infos),
                patch_size,
                too_small[0].path,
            )
    log.info("checked %d raster file(s) in %.2f s", len(infos), time.perf_counter() - start)
    return infos


def check_writable_dir(path: str | os.PathLike[str], *, what: str = "output folder") -> Path:
    """Prove that files can be written into ``path`` (or created there), without side effects.

    A probe file is created and removed in ``path``, or, while ``path`` does not exist
    yet, in its nearest existing ancestor (which must be a folder).

    Args:
        path: a folder.
        what: what the folder is for, for the message (e.g. ``checkpoint folder``).

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    Raises:
        ConfigError: naming the folder and the operating system's reason.
    """
    folder = Path(path)
    probe_dir = folder.absolute()
    while not probe_dir.exists() and probe_dir != probe_dir.parent:
        probe_dir = probe_dir.parent
    try:
        if not probe_dir.is_dir():
            raise NotADirectoryError(20, "Not a directory", str(probe_dir))
        fd, probe = tempfile.mkstemp(prefix=".geomae-write-probe-", dir=probe_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        where = "" if probe_dir == folder.absolute() else f" ({probe_dir} cannot hold it)"
        raise ConfigError(
            f"{what} {folder} is not writable{where}: {err.strerror or err}. Choose another "
            "folder or fix its permissions"
        ) from err
    return folder
