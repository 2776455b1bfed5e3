"""The band-benchmark configuration: parse and validate the YAML of ``geomae bench-bands``.

A configuration names one backbone, one DataModule, the band sets to compare, the
protocols and the seeds::

    backbone: runs/quickstart/weights.safetensors   # null: random init from `arch`
    data:
      class_path: geomae.datamodules.EuroSATDataModule
      init_args: {root: data/eurosat, batch_size: 64}
    band_sets: {rgb: rgb, rgbn: rgbn, all: all, custom: [B04, B08, B11]}
    protocols: [linear, stats_baseline]             # also finetune, random_init
    seeds: [0, 1, 2]
    output: results/bench_eurosat

Several backbones are compared with ``backbones`` instead of ``backbone``, a mapping
name -> weights file (each band set of each backbone; every backbone must cover every
band set)::

    backbones:
      ssl4eo: runs/ssl4eo_mae.safetensors    # geomae import ssl4eo-s12-vit-small-...
      ours: runs/quickstart/weights.safetensors

Each backbone's cells live in ``output/<name>/`` (the single-backbone layout, resumed
as usual) and ``output/`` gets the comparison (:mod:`geomae.evaluation.compare`).

Optional sections: ``arch`` (a random-init backbone when ``backbone`` is null),
``img_size``, ``device``, ``max_samples`` (per split), ``label_fractions`` (the
label-efficiency axis, default ``[1.0]``; see :mod:`geomae.evaluation.labels`), ``linear``
(probe settings) and ``finetune`` (training budget, model selection). Everything is
checked here, before any data is read; band coverage by the backbone is checked by the
runner before any cell runs.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast, get_args

import yaml

from geomae.bands import parse_bands
from geomae.errors import BandError, ConfigError

__all__ = [
    "FINETUNE_PROTOCOLS",
    "PROTOCOLS",
    "SPLITS",
    "BenchConfig",
    "DataSpec",
    "FinetuneSettings",
    "LinearSettings",
    "ProtocolName",
    "Split",
    "import_class",
    "load_config",
    "parse_config",
]

ProtocolName = Literal[
    "linear", "stats_baseline", "finetune", "random_init", "finetune_random_init"
]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)
Split = Literal["train", "val", "test"]
SPLITS: tuple[str, ...] = get_args(Split)
Pool = Literal["avg", "token"]
FinetuneMode = Literal["finetune", "finetune_from_scratch_head", "linear"]
#: The protocols that train a task (the others fit a probe on fixed features).
FINETUNE_PROTOCOLS: tuple[str, ...] = ("finetune", "finetune_random_init")

_TOP_KEYS = (
    "backbone",
    "backbones",
    "arch",
    "data",
    "band_sets",
    "protocols",
    "seeds",
    "output",
    "img_size",
    "device",
    "max_samples",
    "linear",
    "finetune",
    "label_fractions",
)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: DataModule arguments the benchmark sets itself.
_RESERVED_INIT_ARGS = ("bands",)
#: DataModule arguments that only change how data is loaded, not which data.
LOADER_ONLY_ARGS = ("num_workers", "pin_memory")


@dataclass(frozen=True)
class DataSpec:
    """The DataModule every band set is built from.

    Attributes:
        class_path: importable ``module.Class`` of a geomae DataModule.
        init_args: its keyword arguments, without ``bands``.
    """

    class_path: str
    init_args: dict[str, Any]

    def identity(self) -> dict[str, Any]:
        """What decides the data (class and arguments, loader-only ones left out)."""
        args = {k: v for k, v in self.init_args.items() if k not in LOADER_ONLY_ARGS}
        return {"class_path": self.class_path, "init_args": args}


@dataclass(frozen=True)
class LinearSettings:
    """Logistic-regression probe of ``linear``, ``random_init`` and ``stats_baseline``.

    Attributes:
        C: inverse L2 regularization strength; with several values each seed picks
            the one that scores best on the val split (primary metric).
        max_iter: iterations of the lbfgs solver.
        train_fraction: share of the training tiles (classification) or labelled
            training pixels (segmentation) that each seed draws at random.
        max_train_pixels: at most this many training pixels per seed (segmentation).
        pool: token pooling of the backbone for classification, ``avg`` (mean of the
            patch tokens) or ``token`` (cls token).
    """

    C: tuple[float, ...] = (1.0,)
    max_iter: int = 1000
    train_fraction: float = 0.8
    max_train_pixels: int = 20000
    pool: Pool = "avg"

    def identity(self) -> dict[str, Any]:
        """JSON-safe settings (for cell fingerprints)."""
        return {
            "C": list(self.C),
            "max_iter": self.max_iter,
            "train_fraction": self.train_fraction,
            "max_train_pixels": self.max_train_pixels,
            "pool": self.pool,
        }


@dataclass(frozen=True)
class FinetuneSettings:
    """Training budget and model selection of ``finetune`` and ``finetune_random_init``.

    The budget is counted in optimizer steps: ``max_steps`` if given, else
    ``max_epochs`` epochs of the cell's training loader; a budget below ``min_steps``
    is raised to it (logged), so a small labelled set still gets ``min_steps`` steps
    (many epochs). The model is validated ``val_checks`` times over the budget and the
    checkpoint with the best primary val metric (``val/OA``, ``val/mAP_macro``,
    ``val/mIoU``) is restored before the scored split is tested.

    Attributes:
        max_epochs: epochs of training (None: ``max_steps`` alone).
        max_steps: optimizer steps (-1: from ``max_epochs``).
        min_steps: the smallest budget in optimizer steps (documented minimum: 100).
        val_checks: validations over the budget (every ``budget // val_checks`` steps).
        val_fraction: share of the training tiles held out (seeded) for model
            selection when the DataModule's val split is the scored one (no test split).
        mode: ``finetune`` (LP-FT), ``finetune_from_scratch_head`` (fresh head) or
            ``linear`` (frozen backbone, trained head).
        task_args: further keyword arguments of ClassificationTask / SegmentationTask
            (e.g. ``lr``, ``warmup_steps``, ``decoder_channels``).
        trainer: further keyword arguments of the Lightning ``Trainer`` (e.g.
            ``precision``, ``gradient_clip_val``).
    """

    max_epochs: int | None = 1
    max_steps: int = -1
    min_steps: int = 100
    val_checks: int = 10
    val_fraction: float = 0.1
    mode: FinetuneMode = "finetune"
    task_args: dict[str, Any] = field(default_factory=dict)
    trainer: dict[str, Any] = field(default_factory=dict)

    def budget(self, batches_per_epoch: int) -> int:
        """Optimizer steps of a cell whose training loader has ``batches_per_epoch``."""
        steps = (
            self.max_steps
            if self.max_steps > 0
            else int(self.max_epochs or 1) * max(1, int(batches_per_epoch))
        )
        return max(steps, self.min_steps)

    def identity(self) -> dict[str, Any]:
        """JSON-safe settings (for cell fingerprints)."""
        return {
            "max_epochs": self.max_epochs,
            "max_steps": self.max_steps,
            "min_steps": self.min_steps,
            "val_checks": self.val_checks,
            "val_fraction": self.val_fraction,
            "mode": self.mode,
            "task_args": dict(self.task_args),
            "trainer": {k: v for k, v in self.trainer.items() if k != "callbacks"},
        }


@dataclass(frozen=True)
class BenchConfig:
    """A validated benchmark configuration.

    Attributes:
        backbone: converted geomae weights (or an MAE checkpoint), None for a random
            init built from ``arch``.
        arch: architecture of the random-init backbone when ``backbone`` is None (the
            ``arch`` of ClassificationTask: size, groups, patch_size, ...).
        data: the DataModule.
        band_sets: name -> canonical bands, in configuration order.
        protocols: protocols to run, in configuration order.
        seeds: seeds, in configuration order.
        output: output folder.
        img_size: backbone input size (None: the DataModule's tile size).
        device: ``auto`` (CUDA if available), ``cpu``, ``cuda`` or ``cuda:N``.
        max_samples: per split, at most this many tiles (None: all).
        linear: probe settings.
        finetune: fine-tuning budget.
        label_fractions: shares of the training labels each protocol is run with
            (stratified, seeded subsets; 1.0 = every training tile).
        raw: the configuration as a plain mapping (what ``config.yaml`` records).
        source: the file it came from, for messages.
        backbones: name -> weights file of a comparison of several backbones (empty:
            one backbone, ``backbone``).
    """

    backbone: Path | None
    arch: dict[str, Any] | None
    data: DataSpec
    band_sets: dict[str, tuple[str, ...]]
    protocols: tuple[ProtocolName, ...]
    seeds: tuple[int, ...]
    output: Path
    img_size: int | None = None
    device: str = "auto"
    max_samples: dict[str, int | None] = field(default_factory=lambda: dict.fromkeys(SPLITS, None))
    linear: LinearSettings = field(default_factory=LinearSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    label_fractions: tuple[float, ...] = (1.0,)
    raw: dict[str, Any] = field(default_factory=dict)
    source: str = "config"
    backbones: dict[str, Path] = field(default_factory=dict)

    def for_backbone(self, name: str) -> BenchConfig:
        """The single-backbone configuration of ``backbones[name]`` (output ``output/name``)."""
        path = self.backbones[name]
        output = self.output / name
        raw = {k: v for k, v in self.raw.items() if k != "backbones"}
        raw.update(backbone=str(path), output=str(output))
        return replace(
            self,
            backbone=path,
            backbones={},
            output=output,
            raw=raw,
            source=f"{self.source} ({name})",
        )


def load_config(
    path: str | Path,
    *,
    output: str | Path | None = None,
    seeds: Sequence[int] | None = None,
    device: str | None = None,
    backbone: str | Path | None = None,
) -> BenchConfig:
    """Read and validate a benchmark YAML file.

    Args:
        path: the YAML file.
        output: replaces the file's ``output``.
        seeds: replace the file's ``seeds``.
        device: replaces the file's ``device``.
        backbone: replaces the file's ``backbone`` (and drops its ``backbones``).

    Returns:
        The validated configuration; its ``raw`` includes the overrides.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ConfigError: unreadable YAML or an invalid value (named with the file).
        BandError: an unknown band in a band set (named with the band set).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"benchmark config {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ConfigError(f"benchmark config {path}: invalid YAML ({err})") from None
    if not isinstance(raw, Mapping):
        raise ConfigError(f"benchmark config {path}: expected a YAML mapping at the top level")
    raw = dict(raw)
    if output is not None:
        raw["output"] = str(output)
    if seeds is not None:
        raw["seeds"] = [int(s) for s in seeds]
    if device is not None:
        raw["device"] = device
    if backbone is not None:
        raw.pop("backbones", None)
        raw["backbone"] = str(backbone)
    return parse_config(raw, source=f"benchmark config {path}")


def parse_config(raw: Mapping[str, Any], *, source: str = "benchmark config") -> BenchConfig:
    """Validate a configuration mapping (see the module docstring for the keys).

    Args:
        raw: the configuration.
        source: what it came from, for messages.

    Raises:
        ConfigError: an unknown key, a missing key or an invalid value.
        BandError: an unknown or duplicated band in a band set.
    """
    unknown = sorted(set(raw) - set(_TOP_KEYS))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown}; expected some of {list(_TOP_KEYS)}")
    for key in ("data", "band_sets", "protocols", "seeds", "output"):
        if raw.get(key) is None:
            raise ConfigError(f"{source}: missing required key {key!r}")
    backbone = None if raw.get("backbone") is None else Path(str(raw["backbone"]))
    backbones = _backbones(raw.get("backbones"), backbone=backbone, source=source)
    weights = next(iter(backbones.values())) if backbones else backbone  # arch, stats checks
    arch = _arch(raw.get("arch"), backbone=weights, source=source)
    protocols = _protocols(raw["protocols"], source)
    return BenchConfig(
        backbone=backbone,
        arch=arch,
        data=_data_spec(raw["data"], backbone=weights, source=source),
        band_sets=_band_sets(raw["band_sets"], source),
        protocols=protocols,
        seeds=_seeds(raw["seeds"], source),
        output=Path(str(raw["output"])),
        img_size=_optional_positive_int(raw.get("img_size"), "img_size", source),
        device=_device(raw.get("device", "auto"), source),
        max_samples=_max_samples(raw.get("max_samples"), source),
        linear=_linear(raw.get("linear"), source),
        finetune=_finetune(raw.get("finetune"), source),
        label_fractions=_label_fractions(raw.get("label_fractions"), source),
        raw=_plain(dict(raw)),
        source=source,
        backbones=backbones,
    )


# ---- sections -------------------------------------------------------------------------
def _backbones(value: Any, *, backbone: Path | None, source: str) -> dict[str, Path]:
    if value is None:
        return {}
    if backbone is not None:
        raise ConfigError(
            f"{source}: backbone and backbones are both given; list every backbone under "
            "backbones (name: weights file)"
        )
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"{source}: backbones must be a non-empty mapping name -> weights file "
            "(e.g. {ssl4eo: ssl4eo.safetensors, ours: weights.safetensors})"
        )
    out: dict[str, Path] = {}
    for name, path in value.items():
        name = str(name)
        if not _NAME.match(name):
            raise ConfigError(
                f"{source}: backbone name {name!r} must be letters, digits, '_' or '-'"
            )
        if path is None or not isinstance(path, (str, Path)):
            raise ConfigError(f"{source}: backbones.{name} must be a weights file, got {path!r}")
        out[name] = Path(str(path))
    return out


def _arch(value: Any, *, backbone: Path | None, source: str) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: arch must be a mapping (size, groups, patch_size, ...)")
    if backbone is not None:
        raise ConfigError(
            f"{source}: arch is given together with backbone {backbone}; the architecture "
            "comes from the weights file (the random_init protocol re-initializes it): "
            "remove arch or set backbone to null"
        )
    return dict(value)


def _data_spec(value: Any, *, backbone: Path | None, source: str) -> DataSpec:
    if not isinstance(value, Mapping) or "class_path" not in value:
        raise ConfigError(
            f"{source}: data must be a mapping with class_path (a geomae DataModule) and init_args"
        )
    extra = sorted(set(value) - {"class_path", "init_args"})
    if extra:
        raise ConfigError(f"{source}: unknown key(s) {extra} under data")
    class_path = str(value["class_path"])
    init_args = value.get("init_args") or {}
    if not isinstance(init_args, Mapping):
        raise ConfigError(f"{source}: data.init_args must be a mapping")
    init_args = dict(init_args)
    reserved = [k for k in _RESERVED_INIT_ARGS if k in init_args]
    if reserved:
        raise ConfigError(
            f"{source}: data.init_args sets {reserved}; the band sets choose the bands of "
            "each run, remove it"
        )
    if backbone is not None and init_args.get("stats") is not None:
        raise ConfigError(
            f"{source}: data.init_args sets stats, but every band set is normalized with "
            f"the statistics stored in the backbone {backbone} (so that no band set can "
            "be normalized differently from pretraining); remove stats"
        )
    import_class(class_path, source)
    return DataSpec(class_path=class_path, init_args=init_args)


def import_class(class_path: str, source: str) -> type:
    """Import ``module.Class``.

    Raises:
        ConfigError: naming ``source`` if the module or class cannot be found.
    """
    module_name, _, name = class_path.rpartition(".")
    if not module_name:
        raise ConfigError(f"{source}: data.class_path {class_path!r} is not module.Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"{source}: cannot import {module_name} of data.class_path ({err})"
        ) from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise ConfigError(f"{source}: {module_name} has no class {name!r} (data.class_path)")
    return cls


def _band_sets(value: Any, source: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(value, Mapping) or not value:
        raise ConfigError(
            f"{source}: band_sets must be a non-empty mapping name -> band set "
            "(e.g. {rgb: rgb, custom: [B04, B08, B11]})"
        )
    out: dict[str, tuple[str, ...]] = {}
    for name, spec in value.items():
        name = str(name)
        if not _NAME.match(name):
            raise ConfigError(
                f"{source}: band set name {name!r} must be letters, digits, '_' or '-'"
            )
        if not isinstance(spec, (str, Sequence)) or not spec:
            raise ConfigError(f"{source}: band set {name!r} must be a band-set name or a list")
        try:
            out[name] = tuple(parse_bands(spec if isinstance(spec, str) else list(spec)))
        except BandError as err:
            raise BandError(f"{source}: band set {name!r}: {err}") from None
    return out


def _protocols(value: Any, source: str) -> tuple[ProtocolName, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, Sequence) or not items:
        raise ConfigError(f"{source}: protocols must be a non-empty list of {list(PROTOCOLS)}")
    bad = [p for p in items if p not in PROTOCOLS]
    if bad:
        raise ConfigError(
            f"{source}: unknown protocol(s) {bad}; expected some of {list(PROTOCOLS)}"
        )
    if len(set(items)) != len(items):
        raise ConfigError(f"{source}: protocols {list(items)} list one twice")
    return tuple(cast(ProtocolName, p) for p in items)


def _seeds(value: Any, source: str) -> tuple[int, ...]:
    items = [value] if isinstance(value, int) else value
    if (
        not isinstance(items, Sequence)
        or not items
        or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in items)
    ):
        raise ConfigError(f"{source}: seeds must be a non-empty list of integers >= 0")
    if len(set(items)) != len(items):
        raise ConfigError(f"{source}: seeds {list(items)} list one twice")
    return tuple(int(s) for s in items)


def _label_fractions(value: Any, source: str) -> tuple[float, ...]:
    if value is None:
        return (1.0,)
    items = [value] if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    if (
        not isinstance(items, Sequence)
        or isinstance(items, str)
        or not items
        or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in items)
        or not all(0 < f <= 1 for f in items)
    ):
        raise ConfigError(
            f"{source}: label_fractions must be a non-empty list of numbers in (0, 1], "
            f"e.g. [0.01, 0.1, 1.0]; got {value!r}"
        )
    if len(set(items)) != len(items):
        raise ConfigError(f"{source}: label_fractions {list(items)} list one twice")
    return tuple(float(f) for f in items)


def _optional_positive_int(value: Any, what: str, source: str) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{source}: {what} must be a positive integer or null, got {value!r}")
    return int(value)


def _device(value: Any, source: str) -> str:
    text = str(value)
    if not re.match(r"^(auto|cpu|cuda|cuda:\d+|mps)$", text):
        raise ConfigError(f"{source}: device must be auto, cpu, cuda, cuda:N or mps, got {value!r}")
    return text


def _max_samples(value: Any, source: str) -> dict[str, int | None]:
    if value is None or isinstance(value, int):
        limits: dict[str, Any] = dict.fromkeys(SPLITS, value)
    elif isinstance(value, Mapping):
        unknown = sorted(set(value) - set(SPLITS))
        if unknown:
            raise ConfigError(f"{source}: max_samples has unknown split(s) {unknown}")
        limits = {s: value.get(s) for s in SPLITS}
    else:
        raise ConfigError(
            f"{source}: max_samples must be an integer (every split) or a mapping "
            "{train: N, val: N, test: N}"
        )
    for split, limit in limits.items():
        _optional_positive_int(limit, f"max_samples of {split}", source)
    return limits


def _section(value: Any, name: str, keys: Sequence[str], source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {name} must be a mapping with some of {list(keys)}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} under {name}; expected {list(keys)}")
    return dict(value)


def _linear(value: Any, source: str) -> LinearSettings:
    keys = ("C", "max_iter", "train_fraction", "max_train_pixels", "pool")
    given = _section(value, "linear", keys, source)
    defaults = LinearSettings()
    c_value = given.get("C", list(defaults.C))
    c_list = [c_value] if isinstance(c_value, (int, float)) else c_value
    if (
        not isinstance(c_list, Sequence)
        or not c_list
        or not all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in c_list)
        or any(c <= 0 for c in c_list)
    ):
        raise ConfigError(f"{source}: linear.C must be a positive number or a list of them")
    fraction = given.get("train_fraction", defaults.train_fraction)
    if not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
        raise ConfigError(f"{source}: linear.train_fraction must be in (0, 1], got {fraction!r}")
    pool = given.get("pool", defaults.pool)
    if pool not in get_args(Pool):
        raise ConfigError(f"{source}: linear.pool must be one of {list(get_args(Pool))}")
    max_iter = _optional_positive_int(
        given.get("max_iter", defaults.max_iter), "linear.max_iter", source
    )
    pixels = _optional_positive_int(
        given.get("max_train_pixels", defaults.max_train_pixels), "linear.max_train_pixels", source
    )
    return LinearSettings(
        C=tuple(float(c) for c in c_list),
        max_iter=max_iter or defaults.max_iter,
        train_fraction=float(fraction),
        max_train_pixels=pixels or defaults.max_train_pixels,
        pool=cast(Pool, pool),
    )


def _finetune(value: Any, source: str) -> FinetuneSettings:
    keys = (
        "max_epochs",
        "max_steps",
        "min_steps",
        "val_checks",
        "val_fraction",
        "mode",
        "task_args",
        "trainer",
    )
    given = _section(value, "finetune", keys, source)
    defaults = FinetuneSettings()
    max_epochs = _optional_positive_int(
        given.get("max_epochs", defaults.max_epochs), "finetune.max_epochs", source
    )
    max_steps = given.get("max_steps", defaults.max_steps)
    if (
        not isinstance(max_steps, int)
        or isinstance(max_steps, bool)
        or max_steps == 0
        or max_steps < -1
    ):
        raise ConfigError(f"{source}: finetune.max_steps must be a positive integer or -1")
    if max_epochs is None and max_steps == -1:
        raise ConfigError(f"{source}: finetune needs a budget: set max_epochs or max_steps")
    min_steps = given.get("min_steps", defaults.min_steps)
    if not isinstance(min_steps, int) or isinstance(min_steps, bool) or min_steps < 1:
        raise ConfigError(f"{source}: finetune.min_steps must be a positive integer")
    val_checks = _optional_positive_int(
        given.get("val_checks", defaults.val_checks), "finetune.val_checks", source
    )
    val_fraction = given.get("val_fraction", defaults.val_fraction)
    if not isinstance(val_fraction, (int, float)) or not 0 < val_fraction < 1:
        raise ConfigError(
            f"{source}: finetune.val_fraction must be in (0, 1), got {val_fraction!r}"
        )
    mode = given.get("mode", defaults.mode)
    if mode not in get_args(FinetuneMode):
        raise ConfigError(f"{source}: finetune.mode must be one of {list(get_args(FinetuneMode))}")
    task_args = given.get("task_args") or {}
    trainer = given.get("trainer") or {}
    if not isinstance(task_args, Mapping) or not isinstance(trainer, Mapping):
        raise ConfigError(f"{source}: finetune.task_args and finetune.trainer must be mappings")
    clash = sorted(set(task_args) & {"backbone", "pretrained", "arch", "mode", "img_size"})
    if clash:
        raise ConfigError(
            f"{source}: finetune.task_args sets {clash}; the benchmark sets these itself "
            "(backbone, arch and img_size at the top level, finetune.mode)"
        )
    owned = sorted(
        set(trainer)
        & {
            "max_epochs",
            "max_steps",
            "logger",
            "enable_checkpointing",
            "accelerator",
            "devices",
            "val_check_interval",
            "check_val_every_n_epoch",
            "limit_val_batches",
        }
    )
    if owned:
        raise ConfigError(
            f"{source}: finetune.trainer sets {owned}; use finetune.max_epochs / max_steps "
            "/ val_checks and the top-level device instead"
        )
    return FinetuneSettings(
        max_epochs=max_epochs,
        max_steps=int(max_steps),
        min_steps=int(min_steps),
        val_checks=val_checks or defaults.val_checks,
        val_fraction=float(val_fraction),
        mode=cast(FinetuneMode, mode),
        task_args=dict(task_args),
        trainer=dict(trainer),
    )


def _plain(value: Any) -> Any:
    """A YAML/JSON-safe copy (tuples to lists, paths to strings)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value
