"""``geomae prepare --workers N`` / ``--scheduler ADDRESS``: cut many scenes on Dask.

The scenes of one store are cut in parallel, each by one task, and assembled into one
zarr store identical tile for tile to the single-process
:func:`~geomae.store.write_tile_store` over the same scenes in the same order:

1. **open** (one task per scene): open each scene and describe it (bands, CRS, dtype,
   grid size), reading no pixel. A scene that cannot be opened (a folder without
   Sentinel-2 files, a SAFE product missing a band, an unopenable file) stops the run
   here, naming it, before any tile is written; so do scenes that disagree in bands,
   resolution, dtype, nodata, DN offset or processing level.
2. **cut** (one task per scene without a finished part): the scene's tiles, valid
   masks, bounds and statistics state go into its own part store under
   ``STORE.parts/`` (:mod:`geomae.store.parts`). Parts never share a file, so the
   tasks cannot conflict; a finished part is a durable marker, and a re-run after a
   kill cuts only the scenes without one. A scene whose read fails is reported with
   its error; the others are still cut, and the store is not assembled (the run ends
   with :class:`ScenesFailedError`; a re-run after fixing resumes).
3. **assemble**: the store is created with its final shape and the same chunking;
   tasks copy the parts' tiles into it, each task a run of whole chunks (so no two
   tasks write the same chunk), then the client writes the bounds, the merged
   statistics (:meth:`StatsAccumulator.merge` in scene order: histograms and pixel
   counts exact, mean / std equal within float64 rounding) and the metadata record
   (last), and removes the parts.

A scene's tile count is only known once it is cut (tiles over ``max_nodata`` are
dropped), so scenes cannot write straight into their final region of one store; the
parts make the cut embarrassingly parallel and resumable, and the assembly is a
chunk-parallel copy of already decoded tiles, much cheaper than decoding and
resampling JP2 files.

Workers of a cluster on several machines must all reach the sources and the store:
a shared filesystem, or an object store URL (:mod:`geomae.store.remote`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from geomae.errors import DataError, ScenesFailedError
from geomae.stats_accumulator import StatsAccumulator
from geomae.store.layout import TileStoreInfo
from geomae.store.parts import (
    PartRecord,
    SceneSpec,
    describe_scene,
    load_part_stats,
    read_part,
    read_part_arrays,
    read_part_bounds,
    write_part,
)
from geomae.store.remote import StoreLocation, check_access
from geomae.store.writer import (
    CutOptions,
    SourceInfo,
    StoreDtype,
    begin_store,
    combine_infos,
    create_tile_arrays,
    finish_store,
    resolve_dtype,
    store_info,
    warn_rounded,
    write_bounds,
)

__all__ = ["PrepareProgress", "ScenesFailedError", "prepare_scenes"]

log = logging.getLogger(__name__)


class PrepareProgress:
    """Receives progress of :func:`prepare_scenes` (no-op; the CLI draws a rich bar)."""

    def start(self, *, total: int, done: int, tiles: int) -> None:
        """``total`` scenes, ``done`` of them already cut (``tiles`` tiles) by earlier runs."""

    def scene_done(self, record: PartRecord) -> None:
        """A scene was cut."""

    def scene_failed(self, source: str, error: BaseException) -> None:
        """A scene could not be cut."""

    def assembling(self, *, tiles: int) -> None:
        """The parts are being copied into the store (``tiles`` tiles)."""


@dataclass(frozen=True)
class _Segment:
    """Tiles ``[start, stop)`` of part ``name`` go to store tiles from ``dest``."""

    name: str
    start: int
    stop: int
    dest: int


@contextmanager
def _client(workers: int, scheduler: str | None, processes: bool) -> Iterator[Any]:
    """A Dask client of the scheduler at ``scheduler``, or of a new local cluster."""
    from dask.distributed import Client, LocalCluster

    if scheduler is not None:
        with Client(scheduler) as client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=processes,
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def _copy_chunks(
    parts: StoreLocation, store: StoreLocation, segments: list[_Segment], lo: int, hi: int
) -> int:
    """Copy store tiles ``[lo, hi)`` (whole chunks, or up to the end) from the parts."""
    group = store.open_group("r+")
    pieces = [read_part_arrays(parts, s.name, s.start, s.stop) for s in segments]
    tiles = np.concatenate([p[0] for p in pieces])  # (hi - lo, C, T, T)
    group["tiles"][lo:hi] = tiles  # type: ignore[index]
    if "valid" in group:
        group["valid"][lo:hi] = np.concatenate([p[1] for p in pieces])  # type: ignore[index, misc]
    return hi - lo


def _segments(names: list[str], counts: list[int], lo: int, hi: int) -> list[_Segment]:
    """The pieces of the parts (in store order) that make up store tiles ``[lo, hi)``."""
    out, offset = [], 0
    for name, count in zip(names, counts, strict=True):
        start, stop = max(lo, offset), min(hi, offset + count)
        if start < stop:
            out.append(_Segment(name, start - offset, stop - offset, start))
        offset += count
    return out


def _raise_first(futures: list[Any], sources: Sequence[str]) -> list[Any]:
    """Results of ``futures`` in order; the first failure is raised as it was."""
    results = []
    for future, source in zip(futures, sources, strict=True):
        error = future.exception()
        if error is not None:
            log.error("cannot open scene %s: %s", source, error)
            raise error
        results.append(future.result())
    return results


def prepare_scenes(
    sources: Sequence[str | Path],
    output: str | Path,
    *,
    options: CutOptions,
    bands: str = "all",
    nodata: float | None = 0.0,
    tile_format: Literal["auto", "bands", "multiband"] = "auto",
    resampling: Literal["nearest", "bilinear"] = "nearest",
    band_pattern: str | None = None,
    dtype: StoreDtype = "auto",
    overwrite: bool = False,
    storage_options: Mapping[str, Any] | None = None,
    workers: int = 2,
    scheduler: str | None = None,
    processes: bool = True,
    progress: PrepareProgress | None = None,
) -> TileStoreInfo:
    """Cut ``sources`` (one scene each) on a Dask cluster into one tile store.

    Args:
        sources: scene folders / files, in store order (a scene may repeat).
        output: the store directory or fsspec URL; parts go to ``<output>.parts``.
        options: tile size, stride, ``max_nodata`` and chunking.
        bands: bands to read (see :func:`geomae.datasets.scene_folders.open_dataset`).
        nodata: raw nodata value (0 for Sentinel-2), or None.
        tile_format: per-band files, multi-band GeoTIFFs, or detect.
        resampling: how coarser bands reach 10 m.
        band_pattern: per-band file name template.
        dtype: store dtype (see :func:`~geomae.store.write_tile_store`).
        overwrite: replace an existing store (finished parts are still reused).
        storage_options: fsspec options of a URL ``output``.
        workers: processes of the local cluster (ignored with ``scheduler``).
        scheduler: address of a running ``dask.distributed`` scheduler.
        processes: local cluster workers as processes (False: threads, for tests).
        progress: receives progress events.

    Returns:
        The metadata record written into the store.

    Raises:
        DataError: naming the scene, if one cannot be opened or scenes disagree; if the
            store exists (without ``overwrite``).
        ScenesFailedError: naming every scene that could not be cut (the store is not
            written; a re-run resumes from the finished parts).
        StorageError: if a URL ``output`` cannot be written.
    """
    if not sources:
        raise DataError("no scenes to prepare")
    if scheduler is None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    progress = progress or PrepareProgress()
    location = StoreLocation.parse(output, storage_options)
    begin_store(location, overwrite=overwrite)  # fail early: an existing store, no bucket
    parts = location.with_suffix(".parts")
    check_access(parts, for_writing=True)
    parts.makedirs()
    specs = [
        SceneSpec(
            source=str(source),
            bands=bands,
            nodata=nodata,
            tile_format=tile_format,
            resampling=resampling,
            band_pattern=band_pattern,
            options=options,
        )
        for source in sources
    ]
    with _client(workers, scheduler, processes) as client:
        start = time.perf_counter()
        opened = [client.submit(describe_scene, spec, pure=False) for spec in specs]
        infos: list[SourceInfo] = _raise_first(opened, [s.source for s in specs])
        combined = combine_infos(infos)
        store_dtype = resolve_dtype(dtype, combined)
        specs = [replace(spec, dtype=store_dtype.name) for spec in specs]
        sizes = {
            spec.part_name: info.num_candidates for spec, info in zip(specs, infos, strict=True)
        }
        log.info("opened %d scenes in %.1f s", len(specs), time.perf_counter() - start)
        start = time.perf_counter()
        records = _cut_all(client, parts, specs, sizes, progress)
        log.info("cut the scenes in %.1f s", time.perf_counter() - start)
        return _assemble(
            client,
            location,
            parts,
            specs,
            records,
            combined,
            options=options,
            store_dtype=store_dtype,
            overwrite=overwrite,
            progress=progress,
        )


def _cut_all(
    client: Any,
    parts: StoreLocation,
    specs: list[SceneSpec],
    sizes: Mapping[str, int],
    progress: PrepareProgress,
) -> dict[str, PartRecord]:
    """Cut every scene without a finished part; the records of all parts by name.

    The scenes with the most grid tiles start first (``sizes``: grid tiles per part),
    so a large scene does not start last and leave the other workers idle.
    """
    from dask.distributed import as_completed

    unique = {spec.part_name: spec for spec in specs}  # a repeated scene is cut once
    present = set(parts.names())
    records: dict[str, PartRecord] = {}
    todo: list[SceneSpec] = []
    for name, spec in unique.items():
        record = read_part(parts, name) if name in present else None
        if record is not None:
            records[name] = record
            continue
        for leftover in (name, name + ".tmp"):
            if leftover in present:
                log.info("removing the unfinished part %s of an earlier run", leftover)
                parts.child(leftover).remove()
        todo.append(spec)
    if records:
        log.info(
            "%d of %d scenes already cut by an earlier run (parts in %s)",
            len(records),
            len(unique),
            parts,
        )
    progress.start(
        total=len(unique), done=len(records), tiles=sum(r.num_tiles for r in records.values())
    )
    futures = {
        client.submit(write_part, parts, spec, pure=False, priority=sizes[spec.part_name]): spec
        for spec in todo
    }
    failures: list[tuple[str, BaseException]] = []
    for future in as_completed(futures):
        spec = futures[future]
        error = future.exception()
        if error is None:
            record = future.result()
            records[record.name] = record
            progress.scene_done(record)
        else:
            log.error("scene %s failed: %s", spec.source, error)
            failures.append((spec.source, error))
            progress.scene_failed(spec.source, error)
    if failures:
        order = {spec.source: i for i, spec in enumerate(specs)}
        failures.sort(key=lambda item: order[item[0]])
        listed = "; ".join(f"{source}: {' '.join(str(err).split())}" for source, err in failures)
        raise ScenesFailedError(
            f"{len(failures)} of {len(unique)} scene(s) could not be cut, so the tile store "
            f"is NOT written: {listed}. The {len(records)} finished scene(s) are kept in "
            f"{parts}; fix (or drop) the failing scene(s) and re-run the same command to "
            "cut only the missing ones"
        )
    return records


def _assemble(
    client: Any,
    location: StoreLocation,
    parts: StoreLocation,
    specs: list[SceneSpec],
    records: dict[str, PartRecord],
    combined: SourceInfo,
    *,
    options: CutOptions,
    store_dtype: np.dtype,
    overwrite: bool,
    progress: PrepareProgress,
) -> TileStoreInfo:
    """Copy the parts, in scene order, into the store; write bounds, stats and metadata."""
    names = [spec.part_name for spec in specs]
    counts = [records[name].num_tiles for name in names]
    total = sum(counts)
    progress.assembling(tiles=total)
    target = begin_store(location, overwrite=overwrite)
    group = target.open_group("w")
    create_tile_arrays(
        group, info=combined, store_dtype=store_dtype, options=options, num_tiles=total
    )
    chunk = options.chunk_tiles
    num_chunks = math.ceil(total / chunk)
    workers = max(1, len(client.scheduler_info().get("workers", {})))
    per_task = max(1, math.ceil(num_chunks / (4 * workers))) * chunk  # tiles per copy task
    copies = [
        client.submit(
            _copy_chunks,
            parts,
            target,
            _segments(names, counts, lo, min(lo + per_task, total)),
            lo,
            min(lo + per_task, total),
            pure=False,
        )
        for lo in range(0, total, per_task)
    ]
    start = time.perf_counter()
    copied = sum(client.gather(copies))
    if copied != total:
        raise DataError(f"assembled {copied} tiles into {location}, expected {total}")
    bounds = [read_part_bounds(parts, name) for name in names]
    write_bounds(group, np.concatenate(bounds) if bounds else np.zeros((0, 4)))
    stats = StatsAccumulator(combined.bands)
    for name in names:
        stats.merge(load_part_stats(parts, name, combined.bands))
    warn_rounded(sum(records[name].rounded for name in names), store_dtype)
    record = store_info(
        combined,
        options=options,
        store_dtype=store_dtype,
        num_tiles=total,
        num_skipped=sum(records[name].num_skipped for name in names),
        stats=stats,
    )
    finish_store(group, target, location, record)
    parts.remove()
    log.info("assembled %d tiles in %.1f s", total, time.perf_counter() - start)
    return record
