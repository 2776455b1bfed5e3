"""The ``geomae`` command line.

``geomae fit|validate|test|predict --config X.yaml`` runs LightningCLI (torchgeo-style
``class_path``/``init_args`` configs). ``geomae stats``, ``prepare``, ``convert`` and
``bench-bands`` are plain subcommands implemented in :mod:`geomae.cli`.

Errors that geomae raises for bad input are printed as one readable line and the
command exits with status 2; set ``GEOMAE_DEBUG=1`` to see the traceback.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Sequence

from lightning.pytorch import LightningDataModule, LightningModule
from lightning.pytorch.cli import LightningCLI

from geomae import __version__
from geomae.errors import GeomaeError

log = logging.getLogger(__name__)

__all__ = ["GeomaeCLI", "main"]

#: Subcommands that are not LightningCLI: name -> module exposing ``main(argv) -> int``.
SUBCOMMANDS: dict[str, str] = {
    "stats": "geomae.cli.stats",
    "prepare": "geomae.cli.prepare",
    "convert": "geomae.cli.convert",
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
        sys.stderr.write(f"geomae: error: {err}\n(set GEOMAE_DEBUG=1 for the traceback)\n")
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
