"""The ``geomae`` command line.

``geomae fit|validate|test|predict --config X.yaml`` runs LightningCLI (torchgeo-style
``class_path``/``init_args`` configs). ``geomae stats``, ``prepare``, ``convert``,
``import`` and ``bench-bands`` are plain subcommands implemented in :mod:`geomae.cli`.

Errors that geomae raises for bad input are printed as one readable line and the
command exits with status 2; set ``GEOMAE_DEBUG=1`` to see the traceback.

Every ``fit``/``validate``/``test``/``predict`` run writes into a folder of its own,
``<default_root_dir>/version_N/`` (:mod:`geomae.runs`): loggers without ``save_dir`` and
checkpoint callbacks without ``dirpath`` are pointed there, so configurations name no
output path but ``default_root_dir``. Before ``fit``/``validate`` run, the output folders
must accept files, and checkpoints are written atomically and read with
``weights_only=True`` (:class:`geomae.checkpoint_io.AtomicCheckpointIO`) unless the
configuration names another checkpoint IO plugin.
"""

from __future__ import annotations

import importlib
import logging
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jsonargparse import Namespace
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from geomae.checkpoint_io import AtomicCheckpointIO
from geomae.checks import check_writable_dir
from geomae.errors import CheckpointError, ConfigError, GeomaeError
from geomae.runs import (
    DEFAULT_RUNS_ROOT,
    claim_run_dir,
    is_global_zero_process,
    newest_file,
    next_run_dir,
    run_dirs,
    run_number,
)
from geomae.selection import best_checkpoint
from geomae.version import __version__

log = logging.getLogger(__name__)

__all__ = ["GeomaeCLI", "main"]

#: Subcommands that are not LightningCLI: name -> module exposing ``main(argv) -> int``.
SUBCOMMANDS: dict[str, str] = {
    "stats": "geomae.cli.stats",
    "prepare": "geomae.cli.prepare",
    "convert": "geomae.cli.convert",
    "import": "geomae.cli.import_weights",
    "bench-bands": "geomae.cli.bench_bands",
    "predict-scene": "geomae.cli.predict_scene",
}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
#: One line per subcommand for ``geomae --help``.
SUBCOMMAND_HELP: dict[str, str] = {
    "fit": "train a model (MAE pretraining, fine-tuning) from a LightningCLI config",
    "validate": "score a checkpoint on the validation split of a config's data",
    "test": "score a checkpoint on the test split of a config's data",
    "predict": "run a checkpoint over a config's prediction data",
    "stats": "per-band normalization statistics of Sentinel-2 scenes -> YAML",
    "prepare": "cut scenes or a datacube into a zarr tile store for fast training",
    "convert": "MAE checkpoint -> ViT weights (.safetensors with band metadata)",
    "import": "published ViT weights (timm, SatMAE, ...) -> geomae weights",
    "bench-bands": "benchmark band configurations: one table, plot and CSV",
    "predict-scene": "checkpoint/encoder over whole scenes -> COG class map or zarr embeddings",
}
USAGE = (
    "usage: geomae {fit,validate,test,predict} --config CONFIG.yaml [--overrides]\n"
    "       geomae {" + ",".join(SUBCOMMANDS) + "} ...\n"
    "       geomae --version\n"
    "\ncommands:\n"
    + "".join(f"  {name:<12} {text}\n" for name, text in SUBCOMMAND_HELP.items())
    + "\n`geomae COMMAND --help` lists a command's options. fit/validate/test/predict write\n"
    "into <trainer.default_root_dir>/version_N/, a new folder for every run.\n"
)


class GeomaeCLI(LightningCLI):
    """LightningCLI with geomae's defaults (subclass mode, configs saved beside logs)."""

    #: The run's folder (``<default_root_dir>/version_N``; None: the configuration
    #: names every output folder itself).
    run_dir: Path | None = None

    def __init__(self, args: Sequence[str] | None = None, *, run: bool = True) -> None:
        """Parse ``args`` and run the subcommand."""
        self._claimed: Path | None = None
        self._config_as_given: Namespace | None = None
        try:
            super().__init__(
                model_class=LightningModule,
                datamodule_class=LightningDataModule,
                subclass_mode_model=True,
                subclass_mode_data=True,
                seed_everything_default=0,
                save_config_kwargs={"overwrite": True},
                args=list(args) if args is not None else None,
                run=run,
            )
        except BaseException:
            # a run stopped before writing anything leaves no empty version_N behind
            if self._claimed is not None:
                try:
                    self._claimed.rmdir()
                except OSError:
                    pass  # not empty: the failed run's outputs stay for inspection
            raise

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse ``args``, then vet the ``--ckpt_path`` file before Lightning reads it.

        LightningCLI loads an explicit checkpoint file to take its hyper-parameters
        (a truncated file would end in a raw traceback, a checkpoint of another task
        would silently switch the model class); here such files stop with a
        :class:`~geomae.errors.CheckpointError` that names them.
        """
        super().parse_arguments(parser, args)
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        self._vet_checkpoint(self.config[subcommand])

    @staticmethod
    def _vet_checkpoint(config: Namespace) -> None:
        """Refuse a ``ckpt_path`` file written by another task than the configured one."""
        ckpt_path = config.get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        checkpoint = AtomicCheckpointIO().load_checkpoint(ckpt_path)  # tensors stay on CPU
        written = checkpoint.get("hyper_parameters", {}).get("_class_path")
        wanted = getattr(config.get("model"), "class_path", None)
        if written and wanted and written != wanted:
            raise CheckpointError(
                f"checkpoint {ckpt_path} was written by {written} but the configuration "
                f"trains {wanted}"
            )

    def before_instantiate_classes(self) -> None:
        """Give the run its own folder and point the unset outputs into it.

        See :mod:`geomae.runs` for the layout. The configuration as given (with the
        unset paths still unset) is what the run's ``config.yaml`` records.
        """
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
        self._config_as_given = config.clone()
        self.run_dir = self._place_outputs(config)

    def _place_outputs(self, config: Namespace) -> Path | None:
        """Claim ``<default_root_dir>/version_N`` for the outputs ``config`` leaves unset."""
        trainer = config.trainer
        root = Path(trainer.get("default_root_dir") or DEFAULT_RUNS_ROOT)
        if trainer.get("logger") in (None, True):  # Lightning's default logger, in the run
            trainer.logger = [
                Namespace(class_path="geomae.loggers.TensorBoardLogger", init_args=Namespace())
            ]
        loggers = [
            entry
            for entry in _entries(trainer.get("logger"))
            if _is_subclass(entry, (CSVLogger, TensorBoardLogger))
            and entry.init_args.get("save_dir") is None
        ]
        checkpoints = [
            entry
            for entry in _entries(trainer.get("callbacks"))
            if _is_subclass(entry, (ModelCheckpoint, OnExceptionCheckpoint))
        ]
        unset = [entry for entry in checkpoints if entry.init_args.get("dirpath") is None]
        if not loggers and not unset:
            return None
        if is_global_zero_process():
            check_writable_dir(root, what="default_root_dir")
            run_dir = self._claimed = claim_run_dir(root)
            log.info("run folder: %s", run_dir)
        else:  # rank 0 claims the folder; Lightning broadcasts its paths when the run starts
            existing = run_dirs(root)
            run_dir = existing[-1] if existing else next_run_dir(root)
        for entry in loggers:
            entry.init_args.save_dir = str(root)
            entry.init_args.name = ""
            entry.init_args.version = run_number(run_dir)  # log_dir: <root>/version_N
        for entry in unset:
            entry.init_args.dirpath = str(run_dir / "checkpoints")
        if unset and config.get("ckpt_path") == "last":
            last = newest_file(_last_checkpoints(checkpoints, unset, root, run_dir))
            if last is not None:
                config.ckpt_path = str(last)
                self._vet_checkpoint(config)
                if is_global_zero_process():
                    log.info("resuming %s in the new run folder", last)
        if unset and config.get("ckpt_path") == "best" and self.subcommand != "fit":
            config.ckpt_path = str(self._best_of_newest_run(checkpoints, unset, root, run_dir))
            self._vet_checkpoint(config)
        return run_dir

    @staticmethod
    def _best_of_newest_run(
        checkpoints: list[Namespace], unset: list[Namespace], root: Path, run_dir: Path
    ) -> Path:
        """The best-val checkpoint recorded by the newest run's ``last.ckpt`` under ``root``.

        Lightning's ``ckpt_path="best"`` is known only inside the process that trained;
        a later ``geomae test --ckpt_path best`` reads it from the run's last checkpoint.

        Raises:
            ConfigError: no run under ``root`` has a last checkpoint.
        """
        last = newest_file(_last_checkpoints(checkpoints, unset, root, run_dir))
        if last is None:
            raise ConfigError(
                f"--ckpt_path best: no run under {root} has a last.ckpt to read the best "
                "checkpoint from; fit first with the same default_root_dir, or pass the "
                "checkpoint file"
            )
        best = best_checkpoint(last)
        if is_global_zero_process():
            log.info(
                "--ckpt_path best: %s (%s = %s, recorded in %s)",
                best.path,
                best.monitor,
                best.score,
                last,
            )
        return best.path

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured Trainer, with atomic, safe checkpoint IO by default."""
        subcommand = self.subcommand
        given = self._config_as_given
        derived = self.config[subcommand] if subcommand and given is not None else None
        if derived is not None:  # SaveConfigCallback records the configuration as given
            self.config[subcommand] = given
        try:
            trainer = super().instantiate_trainer(**kwargs)
        finally:
            if derived is not None:
                self.config[subcommand] = derived
        if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
            trainer.strategy.checkpoint_io = AtomicCheckpointIO()
        return trainer

    def _check_outputs(self) -> None:
        """Fail before any work if an output folder does not accept files."""
        trainer = self.trainer
        if not trainer.is_global_zero:
            return
        folders = {str(trainer.default_root_dir): "default_root_dir"}
        for logger in trainer.loggers:
            save_dir = getattr(logger, "save_dir", None)
            if save_dir and "://" not in str(save_dir):
                folders.setdefault(str(save_dir), f"{type(logger).__name__} save_dir")
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            dirpath = (
                getattr(callback, "dirpath", None)
                if isinstance(callback, ModelCheckpoint)
                else None
            )
            if dirpath and "://" not in str(dirpath):
                folders.setdefault(str(dirpath), "ModelCheckpoint dirpath")
        for folder, what in folders.items():
            if "://" not in folder:
                check_writable_dir(folder, what=what)

    def before_fit(self) -> None:
        """Pre-flight checks of ``fit``."""
        self._check_outputs()

    def before_validate(self) -> None:
        """Pre-flight checks of ``validate``."""
        self._check_outputs()

    def after_fit(self) -> None:
        """Say where the run's outputs are."""
        trainer = self.trainer
        if self.run_dir is None or not trainer.is_global_zero:
            return
        checkpoint = trainer.checkpoint_callback
        last = getattr(checkpoint, "last_model_path", "") or getattr(
            checkpoint, "best_model_path", ""
        )
        log.info(
            "outputs in %s (checkpoint %s, metrics %s)",
            self.run_dir,
            last or "none",
            Path(trainer.log_dir or self.run_dir) / "metrics.csv"
            if any(isinstance(lg, CSVLogger) for lg in trainer.loggers)
            else "in the configured loggers",
        )


def _entries(value: Any) -> list[Namespace]:
    """The ``class_path``/``init_args`` entries of a logger or callbacks setting."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, Namespace) and "class_path" in item]


def _is_subclass(entry: Namespace, bases: tuple[type, ...]) -> bool:
    """Whether the class that ``entry`` names is one of ``bases`` (or derives from one)."""
    module, _, name = str(entry.class_path).rpartition(".")
    try:
        cls = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError, ValueError):
        return False
    if not isinstance(cls, type) or not issubclass(cls, bases):
        return False
    if entry.get("init_args") is None:
        entry.init_args = Namespace()
    return True


def _last_checkpoints(
    checkpoints: list[Namespace], unset: list[Namespace], root: Path, run_dir: Path
) -> list[Path]:
    """The files ``--ckpt_path last`` may resume: Lightning's candidates, in every run.

    A ``ModelCheckpoint``'s ``last.ckpt`` (or ``last-vN.ckpt``) and an
    ``OnExceptionCheckpoint``'s file, in the folders the configuration names and, for
    callbacks whose folder the run derives, in the ``checkpoints/`` of every run of
    ``root`` (and in ``root/checkpoints``, where runs of earlier geomae releases kept
    theirs).
    """
    runs = [root / "checkpoints"]
    runs += [folder / "checkpoints" for folder in run_dirs(root) if folder != run_dir]
    found: list[Path] = []
    for entry in checkpoints:
        folders = runs if entry in unset else [Path(entry.init_args.dirpath)]
        if _is_subclass(entry, (OnExceptionCheckpoint,)):
            name = f"{entry.init_args.get('filename') or 'on_exception'}.ckpt"
            found.extend(folder / name for folder in folders)
            continue
        pattern = re.compile(rf"^{re.escape(ModelCheckpoint.CHECKPOINT_NAME_LAST)}(-v?\d+)?\.ckpt$")
        for folder in folders:
            if folder.is_dir():
                found.extend(p for p in folder.iterdir() if pattern.match(p.name))
    return found


def _run(argv: list[str], *, from_sys_argv: bool = False) -> int:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    if argv[0] in ("-V", "--version"):
        sys.stdout.write(f"geomae {__version__}\n")
        return 0
    if argv[0] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[argv[0]])
        return int(module.main(argv[1:]) or 0)
    if argv[0] not in LIGHTNING_SUBCOMMANDS:
        sys.stderr.write(f"geomae: unknown command {argv[0]!r}\n{USAGE}")
        return 2
    # LightningCLI reads sys.argv itself when args is None (and warns when given both).
    GeomaeCLI(None if from_sys_argv else argv)
    return 0


def _one_line(err: BaseException) -> str:
    """The message of ``err`` on one line.

    For an error re-raised from a DataLoader worker this is the original message (its
    traceback shows with ``GEOMAE_DEBUG=1``).
    """
    text = str(err)
    if text.startswith("Caught ") and "DataLoader worker" in text.splitlines()[0]:
        last = text.strip().splitlines()[-1]  # "geomae.errors.DataError: <message>"
        prefix = f"{type(err).__module__}.{type(err).__qualname__}: "
        text = last.removeprefix(prefix)
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``geomae`` console script.

    Args:
        argv: command-line arguments without the program name (default ``sys.argv``).

    Returns:
        The exit status: 0 on success, 2 on a geomae input error.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _run(args, from_sys_argv=argv is None)
    except Exception as exc:
        err = _input_error(exc)
        if err is None or os.environ.get("GEOMAE_DEBUG", "") not in ("", "0"):
            raise
        sys.stderr.write(
            f"geomae: error: {_one_line(err)}\n(set GEOMAE_DEBUG=1 for the traceback)\n"
        )
        return 2


def _input_error(exc: BaseException) -> BaseException | None:
    """The geomae input error behind ``exc``, if any.

    jsonargparse wraps errors raised while instantiating the configured classes in a
    generic ``ValueError``; the original error is kept in the exception chain.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, (GeomaeError, FileNotFoundError)):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def console_main() -> None:
    """``geomae`` console script: exits with :func:`main`'s status."""
    sys.exit(main())


if __name__ == "__main__":
    console_main()
