"""Part stores: one scene's tiles, cut by one task, waiting to be assembled.

``geomae prepare --workers N`` (:mod:`geomae.store.parallel`) cuts every scene into its
own part store under ``STORE.parts/``::

    STORE.parts/
      <scene-name>-<key>.zarr/   zarr group, attrs["geomae_part"] = PartRecord
        tiles/ valid/ bounds/    as in a tile store (geomae.store.layout), this scene only
        stats/                   the scene's StatsAccumulator.state() arrays

``<key>`` hashes the scene's path and every setting that changes its tiles (bands,
tile size, stride, nodata, ...), so a part is reused by a re-run only when it holds
exactly the tiles that run would cut, a scene listed twice is cut once, and removing
a failing scene from the list keeps the other parts usable.

A part is complete once its record is in the group attributes, written last. A local
part is also written under ``NAME.zarr.tmp`` and renamed, so a folder at the final name
is a finished part; on object storage (no atomic rename) it is written in place and the
record alone marks it finished. Anything else (a ``.tmp`` folder, a group without the
record) is an unfinished part of a killed run: it is removed and cut again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import zarr

from geomae.datasets.scene_folders import open_dataset
from geomae.stats_accumulator import StatsAccumulator
from geomae.store.layout import BOUNDS, FORMAT_VERSION, TILES, VALID
from geomae.store.remote import StoreLocation
from geomae.store.writer import (
    CutOptions,
    SourceInfo,
    create_tile_arrays,
    cut_tiles,
    geo_source,
    write_bounds,
)

__all__ = [
    "PART_KEY",
    "PartRecord",
    "SceneSpec",
    "describe_scene",
    "load_part_stats",
    "read_part",
    "write_part",
]

log = logging.getLogger(__name__)

#: Key of a part's record in its zarr group attributes.
PART_KEY = "geomae_part"
#: Subgroup holding a part's statistics state.
STATS = "stats"


@dataclass(frozen=True)
class SceneSpec:
    """One scene to cut, and how to open and cut it (picklable: sent to Dask workers).

    Attributes:
        source: the scene folder or file, as given on the command line.
        bands: bands to read (band set or comma list, or ``all``).
        nodata: raw nodata value, or None.
        tile_format: ``auto``, ``bands`` or ``multiband`` (see :func:`open_dataset`).
        resampling: how coarser bands reach 10 m.
        band_pattern: per-band file name template, or None.
        options: tile size, stride, ``max_nodata``, chunking.
        dtype: the store dtype name (resolved, e.g. ``uint16``).
    """

    source: str
    bands: str
    nodata: float | None
    tile_format: Literal["auto", "bands", "multiband"]
    resampling: Literal["nearest", "bilinear"]
    band_pattern: str | None
    options: CutOptions
    dtype: str = "auto"

    @property
    def key(self) -> str:
        """Hash of the scene's absolute path and of every setting that changes its tiles."""
        settings = asdict(self)
        settings["source"] = str(Path(self.source).absolute())
        settings["format_version"] = FORMAT_VERSION
        text = json.dumps(settings, sort_keys=True, default=str)
        return hashlib.sha1(text.encode()).hexdigest()[:12]

    @property
    def part_name(self) -> str:
        """``<scene-name>-<key>.zarr``: the part store's name under ``STORE.parts/``."""
        parts = Path(self.source).absolute().parts[-2:]
        slug = re.sub(r"[^A-Za-z0-9._-]+", "_", "-".join(parts)).strip("._-")[-80:]
        return f"{slug or 'scene'}-{self.key}.zarr"

    @property
    def seed(self) -> int:
        """Seed of the scene's statistics reservoir (differs between scenes)."""
        return int(self.key[:8], 16)

    def open(self) -> Any:
        """The scene as a torchgeo dataset (:func:`geomae.datasets.scene_folders.open_dataset`).

        Raises:
            DataError: naming the folder / file when no scene is found, a band file is
                missing or cannot be opened.
        """
        return open_dataset(
            self.source,
            bands=self.bands,
            nodata=self.nodata,
            tile_format=self.tile_format,
            resampling=self.resampling,
            band_pattern=self.band_pattern,
        )


@dataclass(frozen=True)
class PartRecord:
    """What a finished part holds.

    Attributes:
        name: the part store's name (:attr:`SceneSpec.part_name`).
        source: the scene it was cut from.
        num_tiles: tiles written.
        num_skipped: grid tiles dropped over ``max_nodata``.
        rounded: valid values rounded to the store dtype.
    """

    name: str
    source: str
    num_tiles: int
    num_skipped: int
    rounded: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dictionary (the group attribute)."""
        return asdict(self)


def describe_scene(scene: SceneSpec) -> SourceInfo:
    """Open ``scene`` and describe it (bands, CRS, dtype, grid size), reading no pixel.

    Raises:
        DataError: naming the folder / file and band when the scene cannot be opened.
        BandError: on unknown bands.
    """
    src = geo_source(
        scene.open(), bands=None, options=scene.options, num_workers=0, nodata=scene.nodata
    )
    return src.info


def write_part(parts: StoreLocation, scene: SceneSpec) -> PartRecord:
    """Cut ``scene`` into its part store under ``parts``; the record is written last.

    Returns:
        The record of the finished part.

    Raises:
        DataError: naming the files when a read fails (a truncated or corrupt file).
    """
    final = parts.child(scene.part_name)
    target = final.with_suffix(".tmp") if final.is_local else final
    target.remove()
    src = geo_source(
        scene.open(), bands=None, options=scene.options, num_workers=0, nodata=scene.nodata
    )
    info = src.info
    store_dtype = np.dtype(scene.dtype)
    group = target.open_group("w")
    tiles, valid = create_tile_arrays(
        group, info=info, store_dtype=store_dtype, options=scene.options
    )
    cut = cut_tiles(
        src.batches,
        tiles,
        valid,
        info=info,
        store_dtype=store_dtype,
        options=scene.options,
        seed=scene.seed,
    )
    write_bounds(group, cut.bounds)
    stats = group.create_group(STATS)
    for name, values in cut.stats.state().items():
        stats.create_array(name.replace("/", "."), data=values)
    record = PartRecord(
        name=scene.part_name,
        source=scene.source,
        num_tiles=cut.num_tiles,
        num_skipped=cut.num_skipped,
        rounded=cut.rounded,
    )
    group.attrs[PART_KEY] = record.to_dict()
    if target != final:
        target.rename(final)
    log.info("cut %s: %d tiles (%d skipped)", scene.source, cut.num_tiles, cut.num_skipped)
    return record


def read_part(parts: StoreLocation, name: str) -> PartRecord | None:
    """The record of the finished part ``name``, or None if it is absent or unfinished."""
    location = parts.child(name)
    if not location.has_file("zarr.json"):
        return None
    try:
        record = dict(location.open_group("r").attrs).get(PART_KEY)
    except Exception as err:  # a truncated zarr.json of a killed write
        log.info("part %s is unreadable (%s); it is cut again", location, err)
        return None
    if not isinstance(record, dict):
        return None
    return PartRecord(**record)


def open_part(parts: StoreLocation, name: str) -> zarr.Group:
    """The group of a finished part, read-only."""
    return parts.child(name).open_group("r")


def load_part_stats(parts: StoreLocation, name: str, bands: list[str]) -> StatsAccumulator:
    """The statistics of a finished part's tiles."""
    group = open_part(parts, name)[STATS]
    state = {key.replace(".", "/"): np.asarray(arr[:]) for key, arr in group.arrays()}  # type: ignore[union-attr]
    return StatsAccumulator.from_state(bands, state)


def read_part_arrays(
    parts: StoreLocation, name: str, start: int, stop: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Tiles ``[start, stop)`` of a part: ``(K, C, T, T)`` and ``(K, 1, T, T)`` or None."""
    group = open_part(parts, name)
    tiles = np.asarray(group[TILES][start:stop])  # type: ignore[index]
    valid = np.asarray(group[VALID][start:stop]) if VALID in group else None  # type: ignore[index]
    return tiles, valid


def read_part_bounds(parts: StoreLocation, name: str) -> np.ndarray:
    """``(K, 4)`` bounds of a part's tiles."""
    return np.asarray(open_part(parts, name)[BOUNDS][:], dtype=np.float64)  # type: ignore[index]
