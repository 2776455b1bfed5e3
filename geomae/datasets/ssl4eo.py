"""SSL4EO-S12 Sentinel-2 patches in torchgeo's on-disk layout, season by season.

Torchgeo's ``SSL4EOS12`` (checked against ``torchgeo/datasets/ssl4eo.py``) extracts
the corpus as::

    ROOT/s2c/0000000/20200323T162931_20200323T163750_T15QXA/B1.tif ... B12.tif
    ROOT/s2c/0000000/<three more timestamps>/...
    ROOT/s2c/0000001/...
    ROOT/s2a/...                               (same, without B10.tif)

- split ``s2c``: Level-1C top-of-atmosphere, 13 bands B1 .. B8A, B9, B10, B11, B12;
- split ``s2a``: Level-2A surface reflectance, the same 12 bands without B10;
- one folder per location (7-digit index), holding one folder per timestamp (four
  seasons, named after the Earth Engine product, starting with the sensing time
  ``%Y%m%dT%H%M%S``), holding one single-band GeoTIFF per band, ``B<n>.tif``;
- patches of 264 x 264 px at 10 m; coarser bands may be stored at their own
  resolution and are read onto the 10 m grid (nearest neighbour, as torchgeo does).

Both splits were exported from Earth Engine's *harmonized* collections
(``COPERNICUS/S2_HARMONIZED``, ``COPERNICUS/S2_SR_HARMONIZED``), which already removed
the +1000 DN offset of processing baseline 04.00: their offset is 0 (:data:`SPLITS`).

Seasons are the timestamp folders in date order (0 = earliest). A key selects one
location, one season and a crop window, so sampling decides the season (see
:class:`geomae.samplers.SeasonSampler`) and reading is deterministic.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import rasterio
import rasterio.errors
import torch
from rasterio.crs import CRS
from rasterio.enums import Resampling
from torch.utils.data import Dataset

from geomae.bands import S2_BANDS, parse_bands
from geomae.checks import error_reason
from geomae.errors import BandError, ConfigError, DataError
from geomae.levels import ProcessingLevel

__all__ = [
    "NUM_SEASONS",
    "PATCH_PX",
    "SPLITS",
    "SSL4EOS12Patches",
    "SSL4EOSplit",
    "find_ssl4eo_split",
    "looks_like_ssl4eo",
    "ssl4eo_file_name",
]

log = logging.getLogger(__name__)

Split = Literal["s2c", "s2a"]
#: Side of an SSL4EO-S12 patch at 10 m, in pixels.
PATCH_PX = 264
#: Timestamps (seasons) per location.
NUM_SEASONS = 4
#: Location folders: the 7-digit location index.
_LOCATION = re.compile(r"^\d{7}$")
#: Timestamp folders start with the sensing time.
_SEASON = re.compile(r"^(?P<date>\d{8}T\d{6})")


@dataclass(frozen=True)
class SSL4EOSplit:
    """One Sentinel-2 split of SSL4EO-S12.

    Attributes:
        name: ``s2c`` or ``s2a``.
        level: its processing level.
        bands: canonical names of the bands on disk, in canonical order.
        offset: DN offset of the data (0: harmonized collections).
    """

    name: Split
    level: ProcessingLevel
    bands: tuple[str, ...]
    offset: float = 0.0


SPLITS: dict[str, SSL4EOSplit] = {
    "s2c": SSL4EOSplit("s2c", "L1C", tuple(S2_BANDS)),
    "s2a": SSL4EOSplit("s2a", "L2A", tuple(b for b in S2_BANDS if b != "B10")),
}


def ssl4eo_file_name(band: str) -> str:
    """File name of a canonical band in SSL4EO-S12: ``B02`` -> ``B2.tif``, ``B8A.tif``."""
    return f"B{band[1:].lstrip('0')}.tif"


def _is_location(path: Path) -> bool:
    return _LOCATION.match(path.name) is not None and path.is_dir()


def looks_like_ssl4eo(path: str | os.PathLike[str]) -> bool:
    """True for an SSL4EO-S12 root (``s2c`` / ``s2a`` inside) or split folder.

    Looks at one location folder only: a 7-digit folder holding a timestamp folder.
    """
    path = Path(path)
    if not path.is_dir():
        return False
    for folder in [path / name for name in SPLITS] + [path]:
        if not folder.is_dir():
            continue
        with os.scandir(folder) as entries:
            location = next((e for e in entries if e.is_dir() and _LOCATION.match(e.name)), None)
        if location is not None:
            with os.scandir(location.path) as entries:
                return any(e.is_dir() and _SEASON.match(e.name) for e in entries)
    return False


def find_ssl4eo_split(path: str | os.PathLike[str], split: str | None = None) -> tuple[Path, Split]:
    """The split folder and split name of an SSL4EO-S12 tree.

    Args:
        path: the dataset root (holding ``s2c`` / ``s2a``) or a split folder itself.
        split: ``s2c`` or ``s2a``; None to infer it (from the folder name, the only
            split under the root, or the presence of ``B10.tif``).

    Raises:
        ConfigError: on an unknown split, or several splits under ``path`` without
            ``split``.
        DataError: if ``path`` holds no SSL4EO-S12 location folders.
    """
    if split is not None and split not in SPLITS:
        raise ConfigError(
            f"SSL4EO-S12 split {split!r} is not a Sentinel-2 split; use one of {list(SPLITS)}"
        )
    path = Path(path)
    if split is not None and (path / split).is_dir():
        return path / split, split  # type: ignore[return-value]
    if split is None:
        present = [name for name in SPLITS if (path / name).is_dir()]
        if len(present) > 1:
            raise ConfigError(
                f"{path} holds the SSL4EO-S12 splits {present}; choose one (split: s2c "
                "for L1C, s2a for L2A) or pass the split folder"
            )
        if present:
            return path / present[0], present[0]  # type: ignore[return-value]
    first = (
        next((p for p in sorted(path.iterdir()) if _is_location(p)), None)
        if path.is_dir()
        else None
    )
    if first is None:
        raise DataError(
            f"{path} is not an SSL4EO-S12 Sentinel-2 folder: expected ROOT/s2c or ROOT/s2a "
            "holding 7-digit location folders (0000000/<timestamp>/B1.tif ...)"
        )
    if split is None:
        if path.name in SPLITS:
            split = path.name
        else:
            season = next((p for p in sorted(first.iterdir()) if p.is_dir()), first)
            split = "s2c" if (season / "B10.tif").is_file() else "s2a"
    return path, split  # type: ignore[return-value]


class SSL4EOS12Patches(Dataset[dict[str, Any]]):
    """Sentinel-2 patches of SSL4EO-S12, one location, one season, one window per key.

    A key is ``(location, season)`` or ``(location, season, y0, x0)``: ``location``
    indexes :attr:`locations`, ``season`` is the position of the timestamp folder in
    date order (0 .. 3), and ``(y0, x0)`` is the top-left pixel of a ``patch_size``
    window (default: the centred one). An ``int`` key means ``(location, 0)``.

    Args:
        root: dataset root (holding ``s2c`` / ``s2a``) or the split folder.
        split: ``s2c`` (L1C, 13 bands) or ``s2a`` (L2A, 12 bands); None infers it.
        bands: bands to read (band-set name, comma string or list; default: the 12
            non-cirrus bands); B10 only from ``s2c``.
        patch_size: window side in pixels (default: the whole patch).
        locations: location folder names to use (default: all, sorted).
        transforms: applied to each sample dict after reading.

    Attributes:
        split: the :class:`SSL4EOSplit`.
        size: side of the patches on the 10 m grid (264 for the real data), taken from
            the first location.
        locations: the location folder names, sorted.

    Raises:
        ConfigError: on an unknown split, or ``patch_size`` larger than the patches.
        BandError: on an unknown band or one the split lacks (B10 in ``s2a``).
        DataError: if the folder is no SSL4EO-S12 split, or its first location has
            no timestamp folder or other band files than the split's (13 vs 12).
    """

    def __init__(
        self,
        *,
        root: str | os.PathLike[str],
        split: Split | None = None,
        bands: str | Sequence[str] | None = None,
        patch_size: int | None = None,
        locations: Sequence[str] | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        self.root, name = find_ssl4eo_split(root, split)
        self.split = SPLITS[name]
        self.bands = parse_bands("all" if bands is None else bands)
        absent = [b for b in self.bands if b not in self.split.bands]
        if absent:
            raise BandError(
                f"band(s) {absent} are not in SSL4EO-S12 {name} ({self.split.level}); it has "
                f"{list(self.split.bands)}"
            )
        if locations is None:
            with os.scandir(self.root) as entries:
                names = [e.name for e in entries if e.is_dir() and _LOCATION.match(e.name)]
            self.locations = sorted(names)
        else:
            self.locations = [str(n) for n in locations]
        if not self.locations:
            raise DataError(f"{self.root}: no SSL4EO-S12 location folders (0000000, ...)")
        self.transforms = transforms
        self.size = self._preflight(self.locations[0])
        self.patch_size = self.size if patch_size is None else int(patch_size)
        if not 0 < self.patch_size <= self.size:
            raise ConfigError(
                f"patch_size={patch_size} must be between 1 and the SSL4EO-S12 patch size "
                f"{self.size} px"
            )
        self._season_cache: dict[str, tuple[Path, ...]] = {}

    # ---- layout --------------------------------------------------------------------
    def _list_seasons(self, location: str) -> tuple[Path, ...]:
        """Timestamp folders of ``location`` in date order."""
        folder = self.root / location
        try:
            seasons = [p for p in folder.iterdir() if p.is_dir() and _SEASON.match(p.name)]
        except OSError as err:
            raise DataError(f"SSL4EO-S12 location {folder} cannot be listed: {err}") from None
        if not seasons:
            raise DataError(
                f"SSL4EO-S12 location {folder} has no timestamp folder "
                "(<YYYYMMDDTHHMMSS>_..._T<tile>/B1.tif ...)"
            )
        return tuple(sorted(seasons, key=lambda p: p.name))

    def seasons(self, index: int) -> tuple[Path, ...]:
        """Timestamp folders of location ``index``, earliest first (cached)."""
        location = self.locations[index]
        found = self._season_cache.get(location)
        if found is None:
            if len(self._season_cache) >= 65536:
                self._season_cache.clear()
            found = self._season_cache[location] = self._list_seasons(location)
        return found

    def _preflight(self, location: str) -> int:
        """Check the first location's band files against the split; its grid size."""
        season = self._list_seasons(location)[0]
        on_disk = {p.name for p in season.glob("B*.tif")}
        expected = {ssl4eo_file_name(b) for b in self.split.bands}
        if on_disk != expected:
            other = "s2a" if self.split.name == "s2c" else "s2c"
            raise DataError(
                f"{season}: band files {sorted(on_disk)} are not those of SSL4EO-S12 "
                f"{self.split.name} ({len(expected)} bands: {sorted(expected)}); is it the "
                f"{other} split?"
            )
        with rasterio.open(season / ssl4eo_file_name("B02")) as src:
            return int(max(src.height, src.width))

    # ---- reading -------------------------------------------------------------------
    def read(self, index: int, season: int) -> tuple[np.ndarray, CRS, tuple[float, ...]]:
        """All selected bands of one location and season on the 10 m grid.

        Returns:
            ``(image, crs, bounds)``: ``image`` ``(C, S, S)`` in the files' dtype,
            the patch CRS and ``(xmin, ymin, xmax, ymax)``.

        Raises:
            DataError: naming the folder or file, on a missing season or band file or
                an unreadable file.
        """
        folders = self.seasons(index)
        if not 0 <= season < len(folders):
            raise DataError(
                f"SSL4EO-S12 location {self.root / self.locations[index]} has "
                f"{len(folders)} timestamp folder(s); season {season} does not exist "
                f"(seasons are 0..{NUM_SEASONS - 1} in date order)"
            )
        folder = folders[season]
        out = []
        crs, bounds = None, None
        for band in self.bands:
            path = folder / ssl4eo_file_name(band)
            if not path.is_file():
                raise DataError(
                    f"SSL4EO-S12 {self.split.name}: band {band} file {path} does not exist "
                    f"(a {self.split.name} timestamp folder holds {len(self.split.bands)} "
                    "files B1.tif ...)"
                )
            try:
                with rasterio.open(path) as src:
                    out.append(
                        src.read(1, out_shape=(self.size, self.size), resampling=Resampling.nearest)
                    )
                    if band == "B02" or crs is None:
                        crs, b = src.crs, src.bounds
                        bounds = (b.left, b.bottom, b.right, b.top)
            except rasterio.errors.RasterioError as err:
                raise DataError(f"reading {path} failed: {error_reason(err)}") from err
        return np.stack(out), crs, bounds  # type: ignore[return-value]  # (C, S, S)

    def _window(self, key: Any) -> tuple[int, int, int, int]:
        """``(location, season, y0, x0)`` of a key."""
        if isinstance(key, (int, np.integer)):
            key = (int(key), 0)
        if len(key) == 2:
            centre = (self.size - self.patch_size) // 2
            key = (*key, centre, centre)
        location, season, y0, x0 = (int(k) for k in key)
        if not (0 <= y0 <= self.size - self.patch_size and 0 <= x0 <= self.size - self.patch_size):
            raise IndexError(
                f"window ({y0}, {x0}) + {self.patch_size} px is outside the {self.size} px patch"
            )
        return location, season, y0, x0

    def __getitem__(self, key: Any) -> dict[str, Any]:
        """One window of one location and season.

        Returns:
            ``image`` ``(C, P, P)`` float32 raw DN, ``location`` and ``season`` ``()``
            int64 (the season's position in date order), plus ``crs`` and ``bounds``
            (``(xmin, ymin, xmax, ymax)`` of the window).
        """
        location, season, y0, x0 = self._window(key)
        image, crs, (xmin, ymin, xmax, ymax) = self.read(location, season)
        p = self.patch_size
        window = image[:, y0 : y0 + p, x0 : x0 + p].astype(np.float32)  # (C, P, P)
        res_x, res_y = (xmax - xmin) / self.size, (ymax - ymin) / self.size
        sample = {
            "image": torch.from_numpy(window),
            "location": torch.tensor(location),
            "season": torch.tensor(season),
            "crs": crs,
            "bounds": (
                xmin + x0 * res_x,
                ymax - (y0 + p) * res_y,
                xmin + (x0 + p) * res_x,
                ymax - y0 * res_y,
            ),
        }
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample

    def __len__(self) -> int:
        """Number of locations."""
        return len(self.locations)

    # ---- for the tile store ----------------------------------------------------------
    @property
    def res(self) -> tuple[float, float]:
        """Pixel size of the 10 m grid."""
        return (10.0, 10.0)

    @property
    def dtype(self) -> np.dtype:
        """Dtype of the band files (of the first location)."""
        season = self.seasons(0)[0]
        with rasterio.open(season / ssl4eo_file_name(self.bands[0])) as src:
            return np.dtype(src.dtypes[0])

    def iter_patches(
        self, seasons: Sequence[int] | None = None
    ) -> Iterator[tuple[np.ndarray, CRS, tuple[float, ...], str]]:
        """Every (location, season) patch, location by location.

        Args:
            seasons: season positions to yield (default: all of each location's).

        Yields:
            ``(image (C, S, S), crs, bounds, source)``, ``source`` naming the folder.
        """
        for index in range(len(self.locations)):
            folders = self.seasons(index)
            for season in range(len(folders)) if seasons is None else seasons:
                image, crs, bounds = self.read(index, season)
                yield image, crs, bounds, str(folders[season])

    def __repr__(self) -> str:
        """Split, root, size and bands."""
        return (
            f"SSL4EOS12Patches({self.split.name}, {self.root}, {len(self)} locations, "
            f"{self.size} px, bands={self.bands})"
        )
