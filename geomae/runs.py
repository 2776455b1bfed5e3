"""Run folders: each ``geomae fit|validate|test|predict`` writes into a folder of its own.

The runs of one configuration share a root, ``trainer.default_root_dir`` (Lightning's
``lightning_logs`` in the working directory when the configuration sets none), and each
run is a numbered folder in it, as Lightning's own loggers number theirs::

    <default_root_dir>/
      version_0/                  the first run
        config.yaml               the configuration as given (re-running it starts a new run)
        hparams.yaml              the task's hyper-parameters
        metrics.csv               CSVLogger
        events.out.tfevents.*     TensorBoardLogger (``tensorboard --logdir <root>`` shows
                                  every run)
        checkpoints/              ModelCheckpoint: ``last.ckpt`` and the kept checkpoints
        reconstructions/          MAETask: ``epochNNN.png`` after every validation
        probe.json                OnlineProbe history
      version_1/                  the next run, also when it resumes a checkpoint
      hpc_ckpt_N.ckpt             Lightning's SLURM preemption checkpoint, in the root
      nonfinite-stepN.ckpt        MAETask with ``on_nonfinite: raise``, in the root

:class:`geomae.main.GeomaeCLI` points every output that the configuration leaves unset
into the run's folder: a ``CSVLogger`` or ``TensorBoardLogger`` without ``save_dir``
(``name`` and ``version`` are then the run's), a ``ModelCheckpoint`` or
``OnExceptionCheckpoint`` without ``dirpath`` (``<run>/checkpoints``), and ``logger:
true`` (Lightning's default ``TensorBoardLogger``). Outputs that the configuration names
stay where it says. Because a run never reuses a folder, a second run never piles
``last-v1.ckpt`` beside the first run's ``last.ckpt``, never replaces its
``metrics.csv`` (Lightning's CSVLogger deletes the file of a folder it starts in) and
never mixes TensorBoard event files.

``--ckpt_path last`` resumes the newest last checkpoint of any run in the root; the
resumed run is the next ``version_N`` and its metrics continue at the checkpoint's step.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "DEFAULT_RUNS_ROOT",
    "VERSION_PREFIX",
    "claim_run_dir",
    "is_global_zero_process",
    "newest_file",
    "next_run_dir",
    "run_dirs",
    "run_number",
]

#: Folder name of a run: ``version_<N>``.
VERSION_PREFIX = "version_"
#: The runs' root when the configuration sets no ``default_root_dir`` (as Lightning's).
DEFAULT_RUNS_ROOT = "lightning_logs"

_VERSION = re.compile(rf"^{VERSION_PREFIX}(\d+)$")
#: Environment variables in which launchers give a process its rank (torchrun, SLURM,
#: Lightning's own subprocess launcher, MPI, LSF).
_RANK_VARIABLES = (
    "RANK",
    "SLURM_PROCID",
    "LOCAL_RANK",
    "NODE_RANK",
    "GROUP_RANK",
    "OMPI_COMM_WORLD_RANK",
    "PMI_RANK",
    "JSM_NAMESPACE_RANK",
)


def run_dirs(root: str | os.PathLike[str]) -> list[Path]:
    """The run folders (``version_N``) in ``root``, in the order of their numbers.

    Args:
        root: the runs' root; it may not exist yet.

    Returns:
        The folders, ``[]`` when there are none.
    """
    folder = Path(root)
    if not folder.is_dir():
        return []
    found = []
    for child in folder.iterdir():
        match = _VERSION.match(child.name)
        if match and child.is_dir():
            found.append((int(match.group(1)), child))
    return [path for _, path in sorted(found)]


def run_number(run_dir: str | os.PathLike[str]) -> int:
    """The ``N`` of a run folder ``version_N``."""
    match = _VERSION.match(Path(run_dir).name)
    if match is None:
        raise ValueError(f"{run_dir} is not a run folder ({VERSION_PREFIX}N)")
    return int(match.group(1))


def next_run_dir(root: str | os.PathLike[str]) -> Path:
    """The folder the next run in ``root`` gets: one number past the highest one."""
    existing = run_dirs(root)
    number = run_number(existing[-1]) + 1 if existing else 0
    return Path(root) / f"{VERSION_PREFIX}{number}"


def claim_run_dir(root: str | os.PathLike[str]) -> Path:
    """Create the next run folder of ``root`` and return it.

    The folder is made with ``mkdir`` (which fails for a folder that exists), so that
    two runs started at the same time in one root never get the same number.

    Args:
        root: the runs' root, created when missing.

    Returns:
        The new, empty folder.
    """
    Path(root).mkdir(parents=True, exist_ok=True)
    while True:
        candidate = next_run_dir(root)
        try:
            candidate.mkdir()
        except FileExistsError:
            continue  # another run took this number between the listing and mkdir
        return candidate


def newest_file(paths: Iterable[Path]) -> Path | None:
    """The most recently modified of ``paths`` that exist (None: none does)."""
    dated = []
    for path in paths:
        try:
            dated.append((path.stat().st_mtime_ns, str(path), path))
        except OSError:
            continue
    return max(dated)[2] if dated else None


def is_global_zero_process(environ: dict[str, str] | None = None) -> bool:
    """Whether this process is rank 0 of its job (or the only process).

    Before Lightning sets up the distributed strategy, the rank is only known from the
    launcher's environment; every rank variable that is set must be ``0``. Only rank 0
    creates the run folder; Lightning broadcasts rank 0's log and checkpoint folders to
    the other ranks when the run starts.

    Args:
        environ: the environment (default ``os.environ``).
    """
    env = os.environ if environ is None else environ
    return all(env.get(name, "0").strip() in ("", "0") for name in _RANK_VARIABLES)
