"""Finished benchmark cells, recorded one JSON line each as they finish (``cells.jsonl``).

A cell is one (band set, protocol, seed, label fraction). Its record carries a fingerprint of
everything that decided its result (bands, backbone file hash, data, sample limits,
protocol settings, seed); a re-run skips a cell whose latest record has the fingerprint
the current configuration gives it, and re-runs it otherwise.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from geomae.errors import DataError

log = logging.getLogger(__name__)

__all__ = ["Cell", "CellLog", "CellRecord", "fingerprint"]


@dataclass(frozen=True, order=True)
class Cell:
    """One run of the benchmark grid."""

    band_set: str
    protocol: str
    seed: int
    label_fraction: float = 1.0


@dataclass
class CellRecord:
    """The outcome of one cell.

    Attributes:
        band_set: band-set name.
        bands: its canonical bands.
        protocol: protocol name.
        seed: seed.
        metrics: metric name -> value (on ``eval_split``).
        seconds: wall time of the cell's own work (shared feature extraction excluded).
        fingerprint: hash of the cell's inputs (see :func:`fingerprint`).
        eval_split: the split scored (``test``, or ``val`` without a test split).
        info: protocol details (chosen C, training sample size, ...).
        finished: ISO time the cell finished.
        label_fraction: share of the training labels the cell used (1.0: all).
    """

    band_set: str
    bands: list[str]
    protocol: str
    seed: int
    metrics: dict[str, float]
    seconds: float
    fingerprint: str
    eval_split: str = "test"
    info: dict[str, Any] = field(default_factory=dict)
    finished: str = ""
    label_fraction: float = 1.0

    @property
    def cell(self) -> Cell:
        """The grid cell of this record."""
        return Cell(self.band_set, self.protocol, self.seed, self.label_fraction)

    def to_json(self) -> str:
        """One JSON line."""
        return json.dumps(asdict(self), sort_keys=True, allow_nan=True)

    @classmethod
    def from_json(cls, text: str, *, source: str) -> CellRecord:
        """Parse :meth:`to_json` output.

        Raises:
            DataError: naming ``source`` if the line is not a cell record.
        """
        try:
            data = json.loads(text)
            return cls(
                band_set=str(data["band_set"]),
                bands=[str(b) for b in data["bands"]],
                protocol=str(data["protocol"]),
                seed=int(data["seed"]),
                metrics={str(k): float(v) for k, v in data["metrics"].items()},
                seconds=float(data["seconds"]),
                fingerprint=str(data["fingerprint"]),
                eval_split=str(data.get("eval_split", "test")),
                info=dict(data.get("info", {})),
                finished=str(data.get("finished", "")),
                label_fraction=float(data.get("label_fraction", 1.0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise DataError(f"{source}: not a benchmark cell record ({err})") from None


def fingerprint(context: Mapping[str, Any]) -> str:
    """A 16-hex-digit hash of a JSON-safe description of a cell's inputs."""
    text = json.dumps(dict(context), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class CellLog:
    """The append-only ``cells.jsonl`` of an output folder.

    Args:
        path: the JSON-lines file.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> list[CellRecord]:
        """Every record, in file order; a truncated last line (a killed run) is skipped.

        Raises:
            DataError: a malformed line other than the last.
        """
        if not self.path.is_file():
            return []
        lines = [line for line in self.path.read_text().splitlines() if line.strip()]
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                records.append(CellRecord.from_json(line, source=f"{self.path}:{number}"))
            except DataError:
                if number == len(lines):
                    log.warning("%s: ignoring an incomplete last line", self.path)
                    continue
                raise
        return records

    def append(self, record: CellRecord) -> None:
        """Add one record and flush it to disk."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_cut_off_line()
        with self.path.open("a") as f:
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _drop_cut_off_line(self) -> None:
        """Truncate a last line without newline (left by a killed run)."""
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if data and not data.endswith(b"\n"):
            log.warning("%s: dropping an incomplete last line", self.path)
            with self.path.open("r+b") as f:
                f.truncate(data.rfind(b"\n") + 1)

    @staticmethod
    def latest(records: Iterable[CellRecord]) -> dict[Cell, CellRecord]:
        """The last record of each cell."""
        out: dict[Cell, CellRecord] = {}
        for record in records:
            out[record.cell] = record
        return out
