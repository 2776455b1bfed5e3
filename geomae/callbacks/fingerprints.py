"""Record which tiles every process trained on, one JSON line per batch and rank."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch import Callback, LightningModule, Trainer

__all__ = ["BatchFingerprints", "read_fingerprints"]

log = logging.getLogger(__name__)


class BatchFingerprints(Callback):
    """Write the identity of every training batch to ``fingerprints-rank<R>.jsonl``.

    Each line is ``{"rank", "step", "epoch", "batch_idx", "samples"}``: ``samples`` holds
    one SHA-1 per tile of the model input ``image`` (after normalization and, in
    training, augmentation; with ``augment="none"`` equal hashes mean equal tiles). Use
    it to check that DDP ranks read different tiles, and that two runs with the same
    seed read the same ones.

    Args:
        dirpath: folder of the files (default: the trainer's ``log_dir``, else its
            ``default_root_dir``).
        max_batches: stop recording after this many batches per rank (None: all).
    """

    def __init__(self, *, dirpath: str | None = None, max_batches: int | None = None) -> None:
        super().__init__()
        self.dirpath = dirpath
        self.max_batches = max_batches
        self._written = 0
        self._path: Path | None = None

    def _file(self, trainer: Trainer) -> Path:
        if self._path is None:
            root = Path(self.dirpath or trainer.log_dir or trainer.default_root_dir)
            root.mkdir(parents=True, exist_ok=True)
            self._path = root / f"fingerprints-rank{trainer.global_rank}.jsonl"
        return self._path

    def on_train_batch_start(
        self, trainer: Trainer, pl_module: LightningModule, batch: Any, batch_idx: int
    ) -> None:
        """Append one line for ``batch``."""
        if self.max_batches is not None and self._written >= self.max_batches:
            return
        image = batch["image"].detach().to("cpu", torch.float32)  # (B, C, H, W)
        record = {
            "rank": trainer.global_rank,
            "step": trainer.global_step,
            "epoch": trainer.current_epoch,
            "batch_idx": batch_idx,
            "samples": [
                hashlib.sha1(tile.contiguous().numpy().tobytes()).hexdigest() for tile in image
            ],
        }
        with self._file(trainer).open("a") as f:
            f.write(json.dumps(record) + "\n")
        self._written += 1


def read_fingerprints(path: str | Path) -> list[dict[str, Any]]:
    """Read a ``fingerprints-rank<R>.jsonl`` file written by :class:`BatchFingerprints`."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]
