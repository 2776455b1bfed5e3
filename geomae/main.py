"""The ``geomae`` command line.

``geomae fit|validate|test|predict --config X.yaml`` runs LightningCLI (torchgeo-style
``class_path``/``init_args`` configs). ``geomae stats``, ``prepare``, ``convert``,
``import`` and ``bench-bands`` are plain subcommands implemented in :mod:`geomae.cli`.

Errors that geomae raises for bad input are printed as one readable line and the
command exits with status 2; set ``GEOMAE_DEBUG=1`` to see the traceback.

Before ``fit``/``validate`` run, the output folders (``default_root_dir``, logger and
checkpoint folders) must accept files, and checkpoints are written atomically and read
with ``weights_only=True`` (:class:`geomae.callbacks.AtomicCheckpointIO`) unless the
configuration names another checkpoint IO plugin.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import ArgsType, LightningArgumentParser, LightningCLI

from geomae import __version__
from geomae.callbacks import AtomicCheckpointIO
from geomae.checks import check_writable_dir
from geomae.errors import CheckpointError, GeomaeError

log = logging.getLogger(__name__)

__all__ = ["GeomaeCLI", "main"]

#: Subcommands that are not LightningCLI: name -> module exposing ``main(argv) -> int``.
SUBCOMMANDS: dict[str, str] = {
    "stats": "geomae.cli.stats",
    "prepare": "geomae.cli.prepare",
    "convert": "geomae.cli.convert",
    "import": "geomae.cli.import_weights",
    "bench-bands": "geomae.cli.bench_bands",
}
LIGHTNING_SUBCOMMANDS = ("fit", "validate", "test", "predict")
USAGE = (
    "usage: geomae {fit,validate,test,predict} --config CONFIG.yaml [--overrides]\n"
    "       geomae {" + ",".join(SUBCOMMANDS) + "} ...\n"
    "       geomae --version\n"
)


class GeomaeCLI(LightningCLI):
    """LightningCLI with geomae's defaults (subclass mode, configs saved beside logs)."""

    def __init__(self, args: Sequence[str] | None = None, *, run: bool = True) -> None:
        """Parse ``args`` and run the subcommand."""
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
        ckpt_path = self.config[subcommand].get("ckpt_path")
        if not ckpt_path or not Path(ckpt_path).is_file():
            return
        checkpoint = AtomicCheckpointIO().load_checkpoint(ckpt_path)  # tensors stay on CPU
        written = checkpoint.get("hyper_parameters", {}).get("_class_path")
        model = self.config[subcommand].get("model")
        wanted = getattr(model, "class_path", None)
        if written and wanted and written != wanted:
            raise CheckpointError(
                f"checkpoint {ckpt_path} was written by {written} but the configuration "
                f"trains {wanted}"
            )

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """The configured Trainer, with atomic, safe checkpoint IO by default."""
        trainer = super().instantiate_trainer(**kwargs)
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
