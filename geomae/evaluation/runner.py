"""Run the benchmark grid: pre-flight checks, cells with resume, a progress bar, the report.

Order of work:

1. Pre-flight, before anything is written: the backbone must hold every band of every
   band set (a :class:`~geomae.errors.BandError` lists each band set and its missing
   bands), the DataModule must build for every band set, and its processing level must
   be the backbone's (unless the DataModule has ``allow_level_mismatch``).
2. ``config.yaml`` (the configuration used) and ``versions.json`` go to the output
   folder.
3. The grid is band set x label fraction (:mod:`geomae.evaluation.labels`) x protocol x
   seed. Cells already recorded in ``cells.jsonl`` with the fingerprint the current
   configuration gives them are skipped; the others run band set by band set. Features
   are extracted once per band set and split for all pending cells (and cached); a
   probe cell of a band set with the same bands as one already done (``rgbn`` and
   ``10m``) takes its result. Every finished cell is appended to ``cells.jsonl`` and
   ``results.csv`` is rewritten.
4. The report (csv, md, nc, png) is regenerated from every recorded cell of the
   configured band sets and protocols whose fingerprint matches (any seed, so runs
   with different ``--seeds`` add up).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import (
    Progress,
)

from geomae.backbone import build_backbone, datamodule_tile_size
from geomae.convert import read_weights_metadata
from geomae.errors import BandError, ConfigError
from geomae.evaluation.config import FINETUNE_PROTOCOLS, BenchConfig, Split
from geomae.evaluation.data import (
    NormalizedBatches,
    TaskKind,
    eval_split,
    items_loader,
    make_datamodule,
    split_items,
    split_loader,
)
from geomae.evaluation.features import (
    Extractor,
    FeatureCache,
    SplitFeatures,
    backbone_extractor,
    extract,
    feature_key,
    split_labels,
    stats_extractor,
)
from geomae.evaluation.labels import stratified_subset, tile_strata
from geomae.evaluation.metrics import METRICS
from geomae.evaluation.plot import plot_results
from geomae.evaluation.protocols import (
    CellResult,
    probe_classification,
    probe_segmentation,
    run_finetune,
)
from geomae.evaluation.provenance import file_sha256, write_config, write_versions
from geomae.evaluation.records import Cell, CellLog, CellRecord, fingerprint
from geomae.evaluation.report import ReportTable, write_csv, write_markdown, write_netcdf
from geomae.levels import check_level
from geomae.metadata import GeoMetadata
from geomae.progress import progress_bar
from geomae.stats import BandStats

log = logging.getLogger(__name__)

__all__ = ["BenchOutcome", "BenchRunner", "Preflight", "resolve_device"]

#: Bumped when a protocol's results change meaning (re-runs every cell).
BENCH_VERSION = 1
#: Bumped when the fine-tuning protocols change meaning (LP-FT, val selection: 2).
FINETUNE_VERSION = 2
#: Protocols whose result is fixed by the fingerprint (shared between equal band sets).
_DETERMINISTIC = ("linear", "random_init", "stats_baseline")


@dataclass
class BenchOutcome:
    """What a run did and wrote.

    Attributes:
        output: the output folder.
        ran: cells run now.
        skipped: cells found finished in ``cells.jsonl``.
        records: the records the report was built from.
        files: report name -> path (``csv``, ``md``, ``nc``, ``png``, ``config``, ``versions``).
        markdown: the ``results.md`` text.
    """

    output: Path
    ran: list[Cell] = field(default_factory=list)
    skipped: list[Cell] = field(default_factory=list)
    records: list[CellRecord] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    markdown: str = ""


@dataclass(frozen=True)
class _Backbone:
    """The weights file, its hash and metadata (all None for a random init from ``arch``)."""

    path: Path | None
    sha256: str | None
    meta: GeoMetadata | None


@dataclass
class Preflight:
    """What :meth:`BenchRunner.preflight` checked and built, for :meth:`BenchRunner.run`."""

    backbone: _Backbone
    datamodules: dict[str, Any]
    task: TaskKind


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; other names as given.

    Raises:
        ConfigError: CUDA asked for but not available.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r} asked for but CUDA is not available; use cpu or auto")
    return device


class BenchRunner:
    """The benchmark of one configuration (see the module docstring).

    Args:
        config: the validated configuration.
    """

    def __init__(self, config: BenchConfig) -> None:
        self.config = config
        self.output = config.output
        self.cache = FeatureCache(self.output / "features")
        self.cell_log = CellLog(self.output / "cells.jsonl")
        self.executions = 0  # cells run by this runner (for callers and tests)
        self._train_labels: np.ndarray | None = None  # labels of the train tile list

    # ---- pre-flight ----------------------------------------------------------------------
    def inspect_backbone(self) -> _Backbone:
        """Hash and read the backbone; check that it covers every band set.

        Raises:
            FileNotFoundError: the weights file does not exist.
            BandError: band sets with bands the backbone lacks (all of them listed).
        """
        path = self.config.backbone
        if path is None:
            return _Backbone(None, None, None)
        if not path.is_file():
            raise FileNotFoundError(f"backbone weights {path} do not exist")
        meta, _ = read_weights_metadata(path)  # the header only, for a weight file
        lacking = {
            name: [b for b in bands if b not in meta.bands]
            for name, bands in self.config.band_sets.items()
        }
        lacking = {name: missing for name, missing in lacking.items() if missing}
        if lacking:
            detail = "; ".join(f"band set {n!r} needs {', '.join(m)}" for n, m in lacking.items())
            raise BandError(
                f"{self.config.source}: the backbone {path} was trained on bands "
                f"{', '.join(meta.bands)} and lacks bands of {len(lacking)} band set(s): "
                f"{detail}. Remove those band sets or use a backbone trained on these bands."
            )
        return _Backbone(path, file_sha256(path), meta)

    def _datamodule(self, name: str, backbone: _Backbone) -> Any:
        stats: BandStats | None = backbone.meta.stats if backbone.meta else None
        return make_datamodule(
            self.config.data,
            bands=self.config.band_sets[name],
            stats=stats,
            stats_source=f"backbone {backbone.path}",
        )

    # ---- fingerprints --------------------------------------------------------------------
    def _identity(self, backbone: _Backbone) -> dict[str, Any]:
        cfg = self.config
        return {
            "bench_version": BENCH_VERSION,
            "backbone": backbone.sha256,
            "arch": cfg.arch if backbone.path is None else None,
            "data": cfg.data.identity(),
            "img_size": cfg.img_size,
        }

    def cell_fingerprint(self, cell: Cell, backbone: _Backbone) -> str:
        """Hash of everything that decides a cell's result.

        The label fraction enters only below 1.0, so records of full-label cells
        written before label fractions existed stay valid.
        """
        cfg = self.config
        tuned = cell.protocol in FINETUNE_PROTOCOLS
        settings = cfg.finetune.identity() if tuned else cfg.linear.identity()
        if tuned:
            settings = {**settings, "finetune_version": FINETUNE_VERSION}
        context: dict[str, Any] = {
            **self._identity(backbone),
            "bands": list(cfg.band_sets[cell.band_set]),
            "protocol": cell.protocol,
            "seed": cell.seed,
            "max_samples": cfg.max_samples,
            "settings": settings,
        }
        if cell.label_fraction != 1.0:
            context["label_fraction"] = cell.label_fraction
        return fingerprint(context)

    def _feature_key(
        self, bands: Sequence[str], split: Split, kind: str, backbone: _Backbone
    ) -> str:
        context: dict[str, Any] = {
            **self._identity(backbone),
            "bands": list(bands),
            "split": split,
            "max_samples": self.config.max_samples[split],
            "kind": kind,
        }
        if kind != "stats":
            context["pool"] = self.config.linear.pool
        return feature_key(context)

    # ---- the run -------------------------------------------------------------------------
    def preflight(self) -> Preflight:
        """Every check that needs no output: backbone bands and level, the DataModules.

        Raises:
            FileNotFoundError: the weights file does not exist.
            BandError: band sets with bands the backbone lacks.
            ConfigError: DataModules that disagree on the task, a processing level that
                differs from the backbone's (unless the DataModule allows it).
        """
        cfg = self.config
        backbone = self.inspect_backbone()
        datamodules = {name: self._datamodule(name, backbone) for name in cfg.band_sets}
        kinds = {dm.task for dm in datamodules.values()}
        if len(kinds) != 1:
            raise ConfigError(f"{cfg.source}: the DataModules disagree on the task ({kinds})")
        if backbone.meta is not None:
            dm = next(iter(datamodules.values()))
            check_level(
                data_level=getattr(dm, "processing_level", None),
                weights_level=backbone.meta.processing_level,
                allow=bool(getattr(dm, "allow_level_mismatch", False)),
                data=f"{cfg.source}: {type(dm).__name__}",
                weights=f"the backbone {backbone.path}",
            )
        return Preflight(backbone=backbone, datamodules=datamodules, task=kinds.pop())

    def run(self, preflight: Preflight | None = None) -> BenchOutcome:
        """Pre-flight (unless done), run the pending cells, write the report."""
        cfg = self.config
        checked = preflight if preflight is not None else self.preflight()
        backbone, datamodules, task = checked.backbone, checked.datamodules, checked.task
        device = resolve_device(cfg.device)
        if backbone.meta is not None:
            self._check_offsets(datamodules, backbone)

        self.output.mkdir(parents=True, exist_ok=True)
        files = {
            "config": self.output / "config.yaml",
            "versions": self.output / "versions.json",
        }
        write_config(files["config"], cfg.raw)
        write_versions(files["versions"], {"device": str(device)})

        grid = [
            Cell(b, p, s, f)
            for b in cfg.band_sets
            for f in cfg.label_fractions
            for p in cfg.protocols
            for s in cfg.seeds
        ]
        expected = {cell: self.cell_fingerprint(cell, backbone) for cell in grid}
        latest = CellLog.latest(self.cell_log.load())
        done = [c for c in grid if c in latest and latest[c].fingerprint == expected[c]]
        pending = [c for c in grid if c not in done]
        known = {r.fingerprint: r for r in latest.values()}
        outcome = BenchOutcome(output=self.output, skipped=done)
        if done:
            log.info(
                "%d of %d cells already finished in %s", len(done), len(grid), self.cell_log.path
            )

        with progress_bar(enabled=bool(pending)) as progress:
            bar = progress.add_task("band benchmark", total=len(pending))
            for name in cfg.band_sets:
                cells = [c for c in pending if c.band_set == name]
                if not cells:
                    continue
                records = self._run_band_set(
                    name,
                    cells,
                    datamodules[name],
                    backbone,
                    task,
                    device,
                    expected,
                    known,
                    progress,
                    bar,
                )
                for record in records:
                    outcome.ran.append(record.cell)
                    latest[record.cell] = record
                    self._write_csv(latest, backbone, task)

        table = self._table(latest, backbone, task)
        outcome.records = list(table.records)
        files.update(self._write_report(table))
        outcome.files = files
        outcome.markdown = files["md"].read_text()
        return outcome

    def _check_offsets(self, datamodules: dict[str, Any], backbone: _Backbone) -> None:
        assert backbone.meta is not None
        offsets = {float(getattr(dm, "offset", 0.0)) for dm in datamodules.values()}
        if offsets != {float(backbone.meta.offset)}:
            log.warning(
                "the DataModule subtracts offset %s from raw DN while the pretraining data of "
                "%s used %g; right only if the products differ in processing baseline",
                sorted(offsets),
                backbone.path,
                backbone.meta.offset,
            )

    def _run_band_set(
        self,
        name: str,
        cells: list[Cell],
        dm: Any,
        backbone: _Backbone,
        task: TaskKind,
        device: torch.device,
        expected: dict[Cell, str],
        known: dict[str, CellRecord],
        progress: Progress,
        bar: Any,
    ) -> Iterator[CellRecord]:
        """Extract what the cells need, then run them one by one (a generator).

        A probe cell whose fingerprint matches a finished cell of another band set with
        the same bands (e.g. ``rgbn`` and ``10m``) takes that cell's result (the probes
        are deterministic given the features and the seed); its ``info`` names the
        band set in ``same_as``. Fine-tuning cells always run.
        """
        cfg = self.config
        bands = cfg.band_sets[name]
        scored = eval_split(dm)
        to_run = [c for c in cells if c.protocol not in _DETERMINISTIC or expected[c] not in known]
        kinds = sorted({k for c in to_run if (k := self._feature_kind(c, backbone)) is not None})
        splits: list[Split] = ["train", scored]
        if scored == "test" and len(cfg.linear.C) > 1:
            splits.insert(1, "val")
        features: dict[tuple[str, str], SplitFeatures] = {}
        if kinds:
            progress.update(bar, description=f"{name}: features")
            features = self._features(name, dm, kinds, splits, backbone, task, device)
        for cell in cells:
            twin = known.get(expected[cell]) if cell.protocol in _DETERMINISTIC else None
            if twin is not None:  # the same bands, protocol and seed under another name
                record = replace(
                    twin,
                    band_set=name,
                    info={**twin.info, "same_as": twin.band_set},
                    finished=datetime.now(UTC).isoformat(timespec="seconds"),
                )
                self.cell_log.append(record)
                log.info(
                    "%s %s seed %d labels %g: as band set %r",
                    name,
                    cell.protocol,
                    cell.seed,
                    cell.label_fraction,
                    twin.band_set,
                )
                progress.advance(bar)
                yield record
                continue
            progress.update(
                bar,
                description=f"{name} {cell.protocol} s{cell.seed} f{cell.label_fraction:g}",
            )
            start = time.perf_counter()
            result = self._run_cell(cell, dm, features, scored, backbone, task, device)
            seconds = time.perf_counter() - start
            self.executions += 1
            record = CellRecord(
                band_set=name,
                bands=list(bands),
                protocol=cell.protocol,
                seed=cell.seed,
                metrics=result.metrics,
                seconds=seconds,
                fingerprint=expected[cell],
                eval_split=scored,
                info=result.info,
                finished=datetime.now(UTC).isoformat(timespec="seconds"),
                label_fraction=cell.label_fraction,
            )
            self.cell_log.append(record)
            known[record.fingerprint] = record
            log.info(
                "%s %s seed %d labels %g: %s (%.1f s)",
                name,
                cell.protocol,
                cell.seed,
                cell.label_fraction,
                ", ".join(f"{k} {v:.4f}" for k, v in result.metrics.items()),
                seconds,
            )
            progress.advance(bar)
            yield record

    def _feature_kind(self, cell: Cell, backbone: _Backbone) -> str | None:
        """The feature kind a probe cell reads (None for the fine-tuning protocols)."""
        if cell.protocol == "stats_baseline":
            return "stats"
        if cell.protocol == "linear" and backbone.path is not None:
            return "pretrained"
        if cell.protocol in ("linear", "random_init"):
            return f"random-s{cell.seed}"
        return None  # finetune, finetune_random_init

    def _features(
        self,
        name: str,
        dm: Any,
        kinds: Sequence[str],
        splits: Sequence[Split],
        backbone: _Backbone,
        task: TaskKind,
        device: torch.device,
    ) -> dict[tuple[str, str], SplitFeatures]:
        """Cached or freshly extracted features of each (split, kind)."""
        bands = self.config.band_sets[name]
        out: dict[tuple[str, str], SplitFeatures] = {}
        extractors: dict[str, Extractor] = {}
        for split in splits:
            keys = {kind: self._feature_key(bands, split, kind, backbone) for kind in kinds}
            missing = []
            for kind, key in keys.items():
                cached = self.cache.load(split, kind, key)
                if cached is None:
                    missing.append(kind)
                else:
                    out[(split, kind)] = cached
            if not missing:
                continue
            loader = split_loader(dm, split, max_samples=self.config.max_samples[split])
            for kind in missing:
                if kind not in extractors:
                    extractors[kind] = self._extractor(kind, dm, backbone, task, device)
            start = time.perf_counter()
            fresh = extract(
                dm, loader, {k: extractors[k] for k in missing}, kind=task, device=device
            )
            log.info(
                "%s: extracted %s features of %d %s tiles in %.1f s",
                name,
                "/".join(missing),
                len(next(iter(fresh.values()))),
                split,
                time.perf_counter() - start,
            )
            for kind, feats in fresh.items():
                self.cache.save(split, kind, keys[kind], feats)
                out[(split, kind)] = feats
        return out

    def _extractor(
        self, kind: str, dm: Any, backbone: _Backbone, task: TaskKind, device: torch.device
    ) -> Extractor:
        if kind == "stats":
            return stats_extractor(kind=task)
        if kind.startswith("random-s"):
            torch.manual_seed(int(kind.removeprefix("random-s")))
            pretrained = False
        else:
            pretrained = True
        built = build_backbone(
            backbone=backbone.path,
            pretrained=pretrained,
            arch=self.config.arch if backbone.path is None else None,
            bands=list(dm.bands),
            img_size=self.config.img_size,
            tile_size=datamodule_tile_size(dm),
            drop_path_rate=0.0,
            global_pool=self.config.linear.pool,
        )
        return backbone_extractor(built.model.to(device), kind=task)

    def _run_cell(
        self,
        cell: Cell,
        dm: Any,
        features: dict[tuple[str, str], SplitFeatures],
        scored: Split,
        backbone: _Backbone,
        task: TaskKind,
        device: torch.device,
    ) -> CellResult:
        cfg = self.config
        what = f"band set {cell.band_set!r}, {cell.protocol}, seed {cell.seed}"
        if cell.label_fraction != 1.0:
            what += f", labels {cell.label_fraction:g}"
        if cell.protocol in FINETUNE_PROTOCOLS:
            return self._run_finetune_cell(cell, dm, features, scored, backbone, task, device)
        kind = self._feature_kind(cell, backbone)
        assert kind is not None
        train, test = features[("train", kind)], features[(scored, kind)]
        val = features.get(("val", kind)) if scored == "test" else None
        settings = cfg.linear
        rows: np.ndarray | None = None
        if cell.label_fraction < 1.0:
            # a label-fraction subset is itself the seeded sample: the probe uses all of it
            rows = self._labelled_rows(train.labels, dm, task, cell)
            train = SplitFeatures(
                train.features[rows],
                train.labels[rows],
                None if train.valid is None else train.valid[rows],
            )
            settings = replace(settings, train_fraction=1.0)
        if task == "segmentation":
            result = probe_segmentation(
                train,
                val,
                test,
                num_classes=int(dm.num_classes),
                ignore_index=int(getattr(dm, "ignore_index", 255)),
                settings=settings,
                seed=cell.seed,
                valid_only=cell.protocol == "stats_baseline",
                what=what,
            )
        else:
            result = probe_classification(
                train,
                val,
                test,
                kind=task,
                num_classes=int(dm.num_classes),
                settings=settings,
                seed=cell.seed,
                what=what,
            )
        if rows is not None:
            result.info["train_tiles"] = len(rows)
        return result

    def _labelled_rows(
        self,
        labels: np.ndarray,
        dm: Any,
        task: TaskKind,
        cell: Cell,
        exclude: np.ndarray | None = None,
    ) -> np.ndarray:
        """The cell's stratified, seeded label subset (rows of the train tile list)."""
        strata = tile_strata(
            labels,
            kind=task,
            num_classes=int(dm.num_classes),
            ignore_index=int(getattr(dm, "ignore_index", 255)),
        )
        if exclude is not None:
            strata = strata.copy()
            strata[exclude] = -1
        return stratified_subset(strata, cell.label_fraction, seed=cell.seed)

    def _labels_of_train(
        self,
        dm: Any,
        features: dict[tuple[str, str], SplitFeatures],
        task: TaskKind,
        device: torch.device,
    ) -> np.ndarray:
        """Labels of the train tile list: from extracted features, else one pass (kept)."""
        for (split, _), feats in features.items():
            if split == "train":
                return feats.labels
        if self._train_labels is None:
            loader = split_loader(dm, "train", max_samples=self.config.max_samples["train"])
            self._train_labels = split_labels(dm, loader, kind=task, device=device)
        return self._train_labels

    def _run_finetune_cell(
        self,
        cell: Cell,
        dm: Any,
        features: dict[tuple[str, str], SplitFeatures],
        scored: Split,
        backbone: _Backbone,
        task: TaskKind,
        device: torch.device,
    ) -> CellResult:
        """Fine-tune on the cell's training tiles, select on val, score the scored split.

        Model selection uses the DataModule's val split when the scored split is test;
        without a test split (val is scored) a stratified ``finetune.val_fraction`` of
        the training tiles (seeded with the cell's seed) is held out for it instead.
        """
        cfg = self.config
        fresh = self._datamodule(cell.band_set, backbone)
        loader = split_loader(fresh, scored, max_samples=cfg.max_samples[scored])
        info: dict[str, Any] = {}
        train_loader = None
        held: np.ndarray | None = None
        if scored == "test":
            val_loader = split_loader(fresh, "val", max_samples=cfg.max_samples["val"])
        if scored == "val" or cell.label_fraction < 1.0:
            dataset, items = split_items(fresh, "train", max_samples=cfg.max_samples["train"])
            labels = self._labels_of_train(dm, features, task, device)
            if scored == "val":
                strata = tile_strata(
                    labels,
                    kind=task,
                    num_classes=int(dm.num_classes),
                    ignore_index=int(getattr(dm, "ignore_index", 255)),
                )
                held = stratified_subset(strata, cfg.finetune.val_fraction, seed=cell.seed)
                val_loader = items_loader(fresh, dataset, [items[i] for i in held])
                info["val_tiles"] = len(held)
            rows = self._labelled_rows(labels, dm, task, cell, exclude=held)
            train_loader = items_loader(fresh, dataset, [items[i] for i in rows], shuffle=True)
            info["train_tiles"] = len(rows)
        tag = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{cell.band_set}-{cell.protocol}-s{cell.seed}")
        result = run_finetune(
            fresh,
            NormalizedBatches(fresh, loader),
            backbone=backbone.path,
            arch=cfg.arch,
            img_size=cfg.img_size,
            settings=cfg.finetune,
            seed=cell.seed,
            device=device,
            workdir=self.output,
            val_loader=val_loader,
            train_loader=train_loader,
            pretrained=cell.protocol == "finetune",
            tag=f"{tag}-f{cell.label_fraction:g}",
        )
        result.info.update(info)
        return result

    # ---- report --------------------------------------------------------------------------
    def _table(
        self, latest: dict[Cell, CellRecord], backbone: _Backbone, task: TaskKind
    ) -> ReportTable:
        """Records of the configured band sets and protocols with matching fingerprints."""
        cfg = self.config
        records = [
            r
            for cell, r in latest.items()
            if cell.band_set in cfg.band_sets
            and cell.protocol in cfg.protocols
            and r.fingerprint == self.cell_fingerprint(cell, backbone)
        ]
        splits = sorted({r.eval_split for r in records}) or ["test"]
        attrs = {
            "backbone": str(backbone.path) if backbone.path else f"random init (arch {cfg.arch})",
            "backbone_sha256": backbone.sha256 or "none",
            "data": cfg.data.class_path,
            "task": task,
            "scored_split": ",".join(splits),
        }
        return ReportTable(
            records=records,
            band_sets=cfg.band_sets,
            protocols=list(cfg.protocols),
            metrics=list(METRICS[task]),
            attrs=attrs,
        )

    def _write_csv(
        self, latest: dict[Cell, CellRecord], backbone: _Backbone, task: TaskKind
    ) -> None:
        write_csv(self._table(latest, backbone, task), self.output / "results.csv")

    def _write_report(self, table: ReportTable) -> dict[str, Path]:
        files = {
            "csv": self.output / "results.csv",
            "md": self.output / "results.md",
            "nc": self.output / "results.nc",
            "png": self.output / "results.png",
        }
        write_csv(table, files["csv"])
        write_markdown(table, files["md"])
        write_netcdf(table, files["nc"])
        plot_results(table, files["png"])
        return files
