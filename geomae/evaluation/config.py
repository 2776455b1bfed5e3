"""The band-benchmark configuration: the typed YAML of ``geomae bench-bands``.

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
``img_size``, ``device``, ``max_samples`` (per split, or one number for every split),
``label_fractions`` (the label-efficiency axis, default ``[1.0]``; see
:mod:`geomae.evaluation.labels`), ``linear`` (:class:`LinearSettings`) and ``finetune``
(:class:`FinetuneSettings`). A single value stands for a one-item list (``seeds: 0``,
``linear: {C: 0.1}``) and null for a key's default.

The keys are the fields of :class:`BenchConfig` and its sections, checked (names, types,
ranges) by a :class:`jsonargparse.ArgumentParser` built from their type hints; ``data``
stays a ``class_path``/``init_args`` mapping whose class is imported here and built by the
runner, once per band set. Checked by hand after parsing: non-empty lists without
repeats, band-set and backbone names (they name folders), band sets of known bands, and
the rules relating several keys (``backbone`` / ``backbones`` / ``arch``,
``data.init_args`` vs the band sets and the backbone's stats, ``finetune`` vs what the
benchmark sets itself). Errors name the file and the key; band coverage by the backbone
is checked by the runner before any cell runs.
"""

from __future__ import annotations

import copy
import importlib
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal, TypeAlias, TypedDict, cast, get_args, get_type_hints

import yaml
from jsonargparse import ArgumentParser
from jsonargparse.typing import (
    NonNegativeInt,
    OpenUnitInterval,
    PositiveFloat,
    PositiveInt,
    restricted_number_type,
    restricted_string_type,
)

from geomae.bands import parse_bands
from geomae.errors import BandError, ConfigError

#: A share of a set, in (0, 1]. (The ignores: mypy takes these for variables, not types.)
UnitFraction: TypeAlias = restricted_number_type(  # type: ignore[valid-type]
    "UnitFraction", float, [(">", 0), ("<=", 1)]
)
#: ``auto`` (CUDA if available), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
DeviceName: TypeAlias = restricted_string_type(  # type: ignore[valid-type]
    "DeviceName", r"^(auto|cpu|cuda|cuda:\d+|mps)$"
)

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

log = logging.getLogger(__name__)

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

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
#: DataModule arguments the benchmark sets itself.
_RESERVED_INIT_ARGS = ("bands",)
#: DataModule arguments that only change how data is loaded, not which data.
LOADER_ONLY_ARGS = ("num_workers", "pin_memory")
#: ClassificationTask / SegmentationTask arguments the benchmark sets itself.
_OWNED_TASK_ARGS = frozenset({"backbone", "pretrained", "arch", "mode", "img_size"})
#: Trainer arguments the benchmark sets itself (from ``finetune`` and ``device``).
_OWNED_TRAINER_ARGS = frozenset(
    "max_epochs max_steps logger enable_checkpointing accelerator devices "
    "val_check_interval check_val_every_n_epoch limit_val_batches".split()
)

# The YAML forms of values whose parsed form differs. Functional TypedDicts: their
# types stay objects under `from __future__ import annotations` (jsonargparse 4.32 reads
# __annotations__ as is), and jsonargparse reads a dataclass with class_path/init_args
# fields as a subclass spec.
_DataYAML = TypedDict(  # noqa: UP013
    "_DataYAML", {"class_path": str, "init_args": dict[str, Any] | None}, total=False
)
#: At most this many tiles per split (None: all).
MaxSamples = TypedDict(  # noqa: UP013
    "MaxSamples",
    {"train": PositiveInt | None, "val": PositiveInt | None, "test": PositiveInt | None},
    total=False,
)
_BandSetsYAML = dict[str, str | list[str | int]]


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

    C: tuple[PositiveFloat, ...] = (1.0,)
    max_iter: PositiveInt = 1000
    train_fraction: UnitFraction = 0.8
    max_train_pixels: PositiveInt = 20000
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

    max_epochs: PositiveInt | None = 1
    max_steps: PositiveInt | Literal[-1] = -1
    min_steps: PositiveInt = 100
    val_checks: PositiveInt = 10
    val_fraction: OpenUnitInterval = 0.1
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

    data: DataSpec
    band_sets: dict[str, tuple[str, ...]]
    protocols: tuple[ProtocolName, ...]
    seeds: tuple[NonNegativeInt, ...]
    output: Path
    backbone: Path | None = None
    arch: dict[str, Any] | None = None
    img_size: PositiveInt | None = None
    device: DeviceName = "auto"
    max_samples: MaxSamples = field(
        default_factory=lambda: MaxSamples(train=None, val=None, test=None)
    )
    linear: LinearSettings = field(default_factory=LinearSettings)
    finetune: FinetuneSettings = field(default_factory=FinetuneSettings)
    label_fractions: tuple[UnitFraction, ...] = (1.0,)
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
        ConfigError: unreadable YAML or an invalid value (named with the file and key).
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
        ConfigError: an unknown key, a missing key or an invalid value, named with
            ``source`` and the key (``bench.yaml: key "seeds": ...``).
        BandError: an unknown or duplicated band in a band set.
    """
    given = _expand_shorthands(raw, source)
    try:
        parsed = _builtin(_parser().parse_object(copy.deepcopy(given)).as_dict())  # it edits
    except Exception as err:  # argparse.ArgumentError, worded per jsonargparse version
        raise _parse_error(err, source) from None
    for key in ("protocols", "seeds", "label_fractions", "linear.C"):
        section, _, name = key.rpartition(".")
        values = parsed[section][name] if section else parsed[key]
        if not values or (len(set(values)) != len(values) and key != "linear.C"):
            raise _error(source, key, f"must be a non-empty list without repeats, got {values}")
    backbone, backbones = parsed["backbone"], parsed["backbones"] or {}
    _check_names(backbones, "backbones", source)
    if backbones and backbone is not None:
        raise _error(
            source,
            "backbones",
            "backbone and backbones are both given; list every backbone under backbones "
            "(name: weights file)",
        )
    weights = next(iter(backbones.values()), backbone)  # the arch and stats checks
    if parsed["arch"] is not None and weights is not None:
        raise _error(
            source,
            "arch",
            f"given together with backbone {weights}; the architecture comes from the "
            "weights file (the random_init protocol re-initializes it): remove arch or "
            "set backbone to null",
        )
    tuned = given.get("finetune", {})
    finetune = replace(
        FinetuneSettings(**parsed["finetune"]),
        task_args=_payload(tuned.get("task_args"), parsed["finetune"]["task_args"]),
        trainer=_payload(tuned.get("trainer"), parsed["finetune"]["trainer"]),
    )
    _check_finetune(finetune, source)
    data, given_data = parsed["data"], given["data"]
    given_args = given_data.get("init_args") if isinstance(given_data, Mapping) else None
    init_args = _payload(given_args, data.get("init_args"))
    return BenchConfig(
        backbone=backbone,
        arch=_payload(given.get("arch"), parsed["arch"]) if parsed["arch"] is not None else None,
        data=_data_spec(data.get("class_path"), init_args, backbone=weights, source=source),
        band_sets=_band_sets(parsed["band_sets"], source),
        protocols=parsed["protocols"],
        seeds=parsed["seeds"],
        output=parsed["output"],
        img_size=parsed["img_size"],
        device=parsed["device"],
        max_samples=cast(MaxSamples, {s: parsed["max_samples"].get(s) for s in SPLITS}),
        linear=LinearSettings(**parsed["linear"]),
        finetune=finetune,
        label_fractions=parsed["label_fractions"],
        raw=_plain(dict(raw)),
        source=source,
        backbones={str(name): path for name, path in backbones.items()},
    )


# ---- parsing ---------------------------------------------------------------------------
#: Sections parsed as nested dataclasses: key -> class.
_SECTIONS: dict[str, type] = {"linear": LinearSettings, "finetune": FinetuneSettings}


@cache
def _parser() -> ArgumentParser:
    """The parser of :class:`BenchConfig`: its typed fields, sections as nested groups."""
    parser = ArgumentParser(exit_on_error=False)
    parser.add_class_arguments(BenchConfig, skip={"data", "band_sets", "raw", "source"})
    parser.add_argument("--data", type=_DataYAML, required=True)
    parser.add_argument("--band_sets", type=_BandSetsYAML, required=True)
    return parser


def _keys(cls: type) -> list[str]:
    return [f.name for f in fields(cls) if f.name not in ("raw", "source")]


def _expand_shorthands(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """The configuration in the parser's terms: nulls for defaults dropped, lists listed.

    Also rejects the fields of :class:`BenchConfig` that are not keys (``raw``,
    ``source``) and sections that are not mappings (jsonargparse would read a string
    there as a file name and ignore other values).
    """
    for key in set(raw) & {"raw", "source"}:
        raise _error(source, key, f"unknown key; expected some of {_keys(BenchConfig)}")
    given = _without_defaulted_nulls(raw, BenchConfig)
    for key, cls in _SECTIONS.items():
        if not isinstance(given.get(key, {}), Mapping):
            raise _error(source, key, f"expected a mapping with some of {_keys(cls)}")
        if key in given:
            given[key] = _without_defaulted_nulls(given[key], cls)
    linear = given.get("linear", {})
    for values, key in (
        (given, "seeds"),
        (given, "protocols"),
        (given, "label_fractions"),
        (linear, "C"),
    ):
        if key in values and not isinstance(values[key], (list, tuple)):
            values[key] = [values[key]]
    if not isinstance(given.get("max_samples", {}), Mapping):
        given["max_samples"] = dict.fromkeys(SPLITS, given["max_samples"])
    return given


def _without_defaulted_nulls(values: Mapping[str, Any], cls: type) -> dict[str, Any]:
    """``values`` less the nulls of fields of ``cls`` that cannot be None (the default)."""
    hints = get_type_hints(cls)
    return {
        k: v
        for k, v in values.items()
        if v is not None or k not in hints or type(None) in get_args(hints[k])
    }


def _parse_error(err: Exception, source: str) -> ConfigError:
    """Jsonargparse's message (lines, worded per version) as one line naming the key."""
    text = str(err).strip()
    if match := re.match(r'Parser key "([^"]+)":\s*(.*)', text, re.DOTALL):
        skip = ("Subtypes:", "Errors:", "Given value type:", 'Parser key "')
        lines = [line.strip(" -") for line in match[2].splitlines()]
        detail = "; ".join(line for line in lines if line and not line.startswith(skip))
        detail = re.sub(r"<class '(?:\w+\.)*(\w+)'>", r"\1", detail).replace("a NoneType", "null")
        detail = detail.replace(
            "Does not validate against any of the Union subtypes", "no type fits"
        )
        return _error(source, match[1], detail)
    unknown = re.search(
        r"(?:Group '([^']+)' does not accept (?:option|nested key)|(?:Option|Key)) '([^']+)'", text
    )
    if unknown:
        section, key = unknown.groups()
        expected = _keys(_SECTIONS[section] if section else BenchConfig)
        name = f"{section}.{key}" if section else key
        return _error(source, name, f"unknown key; expected some of {expected}")
    if missing := re.search(r'arguments are required: (.+)|Key "([^"]+)" is required', text):
        names = (missing[1] or missing[2]).split(", ")
        return _error(
            source, names[0], "missing (required)" + "".join(f"; {n} too" for n in names[1:])
        )
    return ConfigError(f"{source}: {' '.join(text.split())}")


def _error(source: str, key: str, detail: str) -> ConfigError:
    return ConfigError(f'{source}: key "{key}": {detail}')


def _builtin(value: Any) -> Any:
    """``value`` with jsonargparse's restricted numbers (int / float subclasses) as plain ones."""
    if isinstance(value, (bool, type(None))) or not isinstance(
        value, (int, float, list, tuple, dict)
    ):
        return value
    if isinstance(value, (int, float)):
        return int(value) if isinstance(value, int) else float(value)
    if isinstance(value, dict):
        return {k: _builtin(v) for k, v in value.items()}
    return type(value)(_builtin(v) for v in value)


def _payload(given: Any, parsed: dict[str, Any] | None) -> dict[str, Any]:
    """A free-form mapping as written (jsonargparse reads the strings in it as YAML)."""
    return dict(given) if isinstance(given, Mapping) else dict(parsed or {})


# ---- what the types cannot say -----------------------------------------------------------
def _check_names(values: Mapping[str, Any], key: str, source: str) -> None:
    """Band-set and backbone names name folders and files."""
    for name in values:
        if not _NAME.match(str(name)):
            raise _error(source, key, f"name {name!r} must be letters, digits, '_' or '-'")


def _band_sets(value: dict[str, Any], source: str) -> dict[str, tuple[str, ...]]:
    if not value:
        raise _error(source, "band_sets", "must be a non-empty mapping name -> band set")
    _check_names(value, "band_sets", source)
    out: dict[str, tuple[str, ...]] = {}
    for name, spec in value.items():
        try:
            out[str(name)] = tuple(parse_bands(spec))
        except BandError as err:
            raise BandError(f"{source}: band set {name!r}: {err}") from None
    return out


def _data_spec(
    class_path: str | None, init_args: dict[str, Any], *, backbone: Path | None, source: str
) -> DataSpec:
    """The data section; its arguments against the band sets and the backbone's stats."""
    if class_path is None:
        raise _error(source, "data.class_path", "missing (a geomae DataModule, module.Class)")
    reserved = [k for k in _RESERVED_INIT_ARGS if k in init_args]
    if reserved:
        raise _error(
            source,
            "data.init_args",
            f"sets {reserved}; the band sets choose the bands of each run, remove it",
        )
    if backbone is not None and init_args.get("stats") is not None:
        raise _error(
            source,
            "data.init_args.stats",
            f"every band set is normalized with the statistics stored in the backbone "
            f"{backbone} (so that no band set can be normalized differently from "
            "pretraining); remove stats",
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
        raise _error(source, "data.class_path", f"{class_path!r} is not module.Class")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise _error(source, "data.class_path", f"cannot import {module_name} ({err})") from None
    cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise _error(source, "data.class_path", f"{module_name} has no class {name!r}")
    return cls


def _check_finetune(settings: FinetuneSettings, source: str) -> None:
    """A budget, and no argument that the benchmark sets itself."""
    if settings.max_epochs is None and settings.max_steps == -1:
        raise _error(source, "finetune", "needs a budget: set max_epochs or max_steps")
    clash = sorted(set(settings.task_args) & _OWNED_TASK_ARGS)
    if clash:
        raise _error(
            source,
            "finetune.task_args",
            f"sets {clash}; the benchmark sets these itself (backbone, arch and img_size "
            "at the top level, finetune.mode)",
        )
    owned = sorted(set(settings.trainer) & _OWNED_TRAINER_ARGS)
    if owned:
        raise _error(
            source,
            "finetune.trainer",
            f"sets {owned}; use finetune.max_epochs / max_steps / val_checks and the "
            "top-level device instead",
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
