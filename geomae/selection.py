"""Model selection on validation: the best-val checkpoint a fine-tuning run recorded.

The fine-tuning configurations keep, beside ``last.ckpt``, the checkpoint with the best
validation metric (a ``ModelCheckpoint`` with ``monitor: val/OA`` / ``val/mAP_macro`` /
``val/mIoU``, ``mode: max``, ``save_top_k: 1``). Test scores are reported for that
checkpoint, never for a model chosen on the test split.

Lightning's ``ckpt_path="best"`` only knows the best checkpoint inside the process that
trained; a later ``geomae test`` reads it from the run's last checkpoint instead: every
Lightning checkpoint stores its ``ModelCheckpoint`` state (``best_model_path``,
``best_model_score``, ``monitor``), and :func:`best_checkpoint` returns that file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from geomae.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["BestCheckpoint", "best_checkpoint"]


class BestCheckpoint:
    """The best-val checkpoint of a run.

    Attributes:
        path: the checkpoint file.
        monitor: the metric it was selected on (e.g. ``val/mIoU``).
        score: its value.
    """

    def __init__(self, path: Path, monitor: str | None, score: float | None) -> None:
        self.path, self.monitor, self.score = path, monitor, score

    def __repr__(self) -> str:
        return f"BestCheckpoint({str(self.path)!r}, monitor={self.monitor!r}, score={self.score})"


def best_checkpoint(checkpoint: str | Path) -> BestCheckpoint:
    """The best-val checkpoint recorded in ``checkpoint`` (e.g. a run's ``last.ckpt``).

    Args:
        checkpoint: any checkpoint the run's ``ModelCheckpoint`` wrote.

    Returns:
        The recorded best checkpoint; when the recorded path no longer exists (the run
        folder was moved or copied) the file of the same name beside ``checkpoint``.

    Raises:
        DataError: the file holds no ``ModelCheckpoint`` state with a monitored best
            checkpoint, or that checkpoint is found nowhere.
    """
    path = Path(checkpoint)
    data: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    states = [
        state
        for key, state in (data.get("callbacks") or {}).items()
        if str(key).startswith("ModelCheckpoint") and isinstance(state, dict)
    ]
    monitored = [s for s in states if s.get("monitor") and s.get("best_model_path")]
    if not monitored:
        raise DataError(
            f"{path} records no best checkpoint: its ModelCheckpoint (if any) monitors no "
            "val metric; configure one with monitor: val/<metric> and mode: max"
        )
    if len(monitored) > 1:
        log.warning(
            "%s records %d monitored ModelCheckpoints; using the first (%s)",
            path,
            len(monitored),
            monitored[0]["monitor"],
        )
    state = monitored[0]
    best = Path(str(state["best_model_path"]))
    if not best.is_file():
        beside = path.parent / best.name
        if not beside.is_file():
            raise DataError(
                f"{path} names {best} as the best checkpoint, but neither it nor {beside} exists"
            )
        best = beside
    score = state.get("best_model_score")
    value = float(score) if score is not None else None
    return BestCheckpoint(best, str(state["monitor"]), value)
