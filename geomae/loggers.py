"""Lightning's CSV and TensorBoard loggers, with ``save_dir`` left to the run folder.

Lightning's loggers require ``save_dir``, so a configuration would have to name an output
path. These subclasses make it optional: ``geomae fit|validate|test|predict`` points a
logger without ``save_dir`` into the run's folder ``<default_root_dir>/version_N/``
(:mod:`geomae.runs`), so a configuration names no output path but
``trainer.default_root_dir``::

    trainer:
      default_root_dir: runs/quickstart
      logger:
        - class_path: geomae.loggers.CSVLogger          # version_N/metrics.csv
        - class_path: geomae.loggers.TensorBoardLogger  # version_N/events.out.tfevents.*

Every other argument is Lightning's. Used outside the command line, a logger without
``save_dir`` writes under the working directory as Lightning's default logger does
(``./lightning_logs/version_N``).
"""

from __future__ import annotations

from typing import Any

from lightning.fabric.utilities.types import _PATH
from lightning.pytorch import loggers

__all__ = ["CSVLogger", "TensorBoardLogger"]


class CSVLogger(loggers.CSVLogger):
    """:class:`lightning.pytorch.loggers.CSVLogger` with an optional ``save_dir``."""

    def __init__(self, save_dir: _PATH | None = None, **kwargs: Any) -> None:
        """Create the logger.

        Args:
            save_dir: the folder (None: the run folder, see the module).
            **kwargs: Lightning's other arguments (``name``, ``version``, ...).
        """
        super().__init__(save_dir="." if save_dir is None else save_dir, **kwargs)


class TensorBoardLogger(loggers.TensorBoardLogger):
    """:class:`lightning.pytorch.loggers.TensorBoardLogger` with an optional ``save_dir``."""

    def __init__(self, save_dir: _PATH | None = None, **kwargs: Any) -> None:
        """Create the logger.

        Args:
            save_dir: the folder (None: the run folder, see the module).
            **kwargs: Lightning's other arguments (``name``, ``version``, ...).
        """
        super().__init__(save_dir="." if save_dir is None else save_dir, **kwargs)
