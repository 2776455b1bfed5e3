"""OnlineProbe: does the encoder being pretrained get better at land cover?

A Lightning callback for :class:`~geomae.trainers.MAETask`. Every ``every_n_epochs``
validations (and at the last epoch) it embeds a fixed set of labelled tiles with the
frozen encoder, fits two probes on the training tiles and scores them on tiles of a
spatially separate split:

- ``probe/knn_acc``: cosine kNN (:func:`geomae.evaluation.knn.knn_predict`);
- ``probe/linear_acc`` (and ``probe/linear_bacc``, balanced): the logistic regression
  of :mod:`geomae.linear_probe`; ``probe/linear_miou`` for ``target="pixels"``;
- ``probe/feature_std``: mean over feature dimensions of the std across tiles of the
  L2-normalized embeddings (collapse: near 0).

Once per fit it also scores the same probes on the two references every claim of
"pretraining helps" is measured against: a **random-init** encoder of the same
architecture (``probe/random_init/*``) and the **per-band statistics** baseline
(``probe/stats_baseline/*``: mean and std of each band of the tile), plus the
accuracy of always predicting the most frequent training class
(``probe/majority_acc``). At the end of fitting it logs one summary line with these
numbers and the last ``val/psnr`` against ``val/psnr_baseline``, and every probe is
appended to ``probe.json`` in the run's log folder (with the minutes since the fit
started), so a run shows whether its encoder improves.

Targets:

- a classification DataModule (``task: multiclass``): its labels;
- a segmentation DataModule: ``majority`` (default) classifies each tile by its most
  frequent labelled class (tiles with less than ``min_labelled`` labelled pixels are
  left out), ``pixels`` fits a per-pixel probe on the upsampled patch-token map and
  reports mIoU (as ``geomae bench-bands`` does).

Cost: the probe tiles are read and normalized once (with the task's statistics) and
kept in memory; each probe is then one forward pass of the encoder over them and two
small fits. With no probe configured nothing changes.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from lightning.pytorch import Callback, LightningDataModule, LightningModule, Trainer

from geomae.bands import parse_bands
from geomae.callbacks.probe_tiles import ProbeTiles, majority_labels, read_split_tiles
from geomae.errors import ConfigError, DataError
from geomae.evaluation.config import LinearSettings
from geomae.evaluation.features import SplitFeatures, stats_extractor
from geomae.evaluation.knn import knn_predict
from geomae.evaluation.protocols import probe_segmentation
from geomae.linear_probe import fit_probe, predict_scores
from geomae.stats import BandStats

log = logging.getLogger(__name__)

__all__ = ["OnlineProbe", "probe_scores"]

ProbeTarget = Literal["auto", "majority", "pixels"]


def probe_scores(
    train_x: np.ndarray,
    train_y: np.ndarray,
    eval_x: np.ndarray,
    eval_y: np.ndarray,
    *,
    num_classes: int,
    k: int,
    C: float,
    max_iter: int,
    what: str = "online probe",
) -> dict[str, float]:
    """Accuracy of a kNN and a logistic-regression probe of embeddings, plus their spread.

    Args:
        train_x: ``(n, F)`` training embeddings.
        train_y: ``(n,)`` class indices.
        eval_x: ``(m, F)`` embeddings scored.
        eval_y: ``(m,)`` true classes.
        num_classes: K.
        k: kNN neighbours.
        C: inverse L2 strength of the logistic regression.
        max_iter: lbfgs iterations.
        what: name for messages.

    Returns:
        ``knn_acc``, ``linear_acc``, ``linear_bacc`` (mean per-class recall over the
        classes present in ``eval_y``) and ``feature_std``.
    """
    knn = knn_predict(train_x, train_y, eval_x, num_classes=num_classes, k=k)
    scores: dict[str, float] = {"knn_acc": float((knn == eval_y).mean())}
    if len(np.unique(train_y)) >= 2:
        model = fit_probe(train_x, train_y, kind="multiclass", C=C, max_iter=max_iter, what=what)
        pred = predict_scores(model, eval_x, num_classes=num_classes).argmax(axis=1)
    else:  # one class: the logistic regression is the constant predictor
        pred = np.full(len(eval_y), int(train_y[0]))
    scores["linear_acc"] = float((pred == eval_y).mean())
    recalls = [float((pred[eval_y == c] == c).mean()) for c in np.unique(eval_y)]
    scores["linear_bacc"] = float(np.mean(recalls))
    unit = train_x / np.maximum(np.linalg.norm(train_x, axis=1, keepdims=True), 1e-12)
    scores["feature_std"] = float(unit.std(axis=0).mean())
    return scores


class OnlineProbe(Callback):
    """Probe the encoder of an :class:`~geomae.trainers.MAETask` while it pretrains.

    Args:
        data: a labelled geomae DataModule (classification, or segmentation with
            ``target`` ``majority`` / ``pixels``). Its bands must be the task's; it is
            normalized with the task's statistics.
        every_n_epochs: probe every this many validations (and after the last epoch).
        target: ``auto`` (classification labels, or ``majority`` for segmentation),
            ``majority`` or ``pixels`` (see the module docstring).
        train_split: split the probes are fitted on.
        eval_split: split they are scored on (spatially separate for the geomae
            segmentation DataModules).
        stride: grid step in pixels over the geo splits (None: the tile size); a
            smaller step gives more, overlapping, tiles.
        max_train_tiles: at most this many training tiles (a fixed random subset).
        max_eval_tiles: at most this many scored tiles.
        min_labelled: ``majority``: least share of labelled pixels a tile needs.
        k: kNN neighbours.
        C: inverse L2 strength of the logistic regression.
        max_iter: lbfgs iterations.
        max_train_pixels: ``pixels``: labelled training pixels sampled for the fit.
        references: also score a random-init encoder and the statistics baseline.
        seed: seed of the random-init reference (and of the pixel sample).
        batch_size: tiles per encoder forward pass.
    """

    def __init__(
        self,
        data: LightningDataModule,
        *,
        every_n_epochs: int = 1,
        target: ProbeTarget = "auto",
        train_split: Literal["train", "val", "test"] = "train",
        eval_split: Literal["train", "val", "test"] = "val",
        stride: int | None = None,
        max_train_tiles: int | None = 2048,
        max_eval_tiles: int | None = 1024,
        min_labelled: float = 0.5,
        k: int = 20,
        C: float = 1.0,
        max_iter: int = 2000,
        max_train_pixels: int = 20000,
        references: bool = True,
        seed: int = 0,
        batch_size: int = 64,
    ) -> None:
        super().__init__()
        if every_n_epochs < 1:
            raise ConfigError(f"OnlineProbe every_n_epochs={every_n_epochs} must be >= 1")
        if train_split == eval_split:
            raise ConfigError(
                f"OnlineProbe fits and scores on the same split ({train_split!r}); "
                "give eval_split a separate split"
            )
        if not 0.0 <= min_labelled <= 1.0:
            raise ConfigError(f"OnlineProbe min_labelled={min_labelled} must be in [0, 1]")
        self.data = data
        self.every_n_epochs = int(every_n_epochs)
        self.target = target
        self.train_split, self.eval_split = train_split, eval_split
        self.stride = stride
        self.max_train_tiles, self.max_eval_tiles = max_train_tiles, max_eval_tiles
        self.min_labelled = float(min_labelled)
        self.k, self.C, self.max_iter = int(k), float(C), int(max_iter)
        self.max_train_pixels = int(max_train_pixels)
        self.references = bool(references)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.history: list[dict[str, Any]] = []
        self.reference_scores: dict[str, float] = {}
        self._tiles: dict[str, ProbeTiles] | None = None
        self._mode: Literal["classes", "pixels"] = "classes"
        self._start = time.monotonic()
        self._pending: dict[str, Any] | None = None

    # ---- data ------------------------------------------------------------------------
    def _resolve_mode(self) -> Literal["classes", "pixels"]:
        task = getattr(self.data, "task", None)
        if task == "segmentation":
            return "pixels" if self.target == "pixels" else "classes"
        if task == "multiclass":
            if self.target != "auto":
                raise ConfigError(
                    f"OnlineProbe target={self.target!r} applies to segmentation data; "
                    f"{type(self.data).__name__} is a classification DataModule (use auto)"
                )
            return "classes"
        raise ConfigError(
            f"OnlineProbe needs a geomae multiclass or segmentation DataModule; "
            f"{type(self.data).__name__} has task={task!r}"
        )

    def _prepare(self, pl_module: LightningModule) -> dict[str, ProbeTiles]:
        """Read, normalize and keep the probe tiles (once)."""
        if self._tiles is not None:
            return self._tiles
        self._mode = self._resolve_mode()
        hp = pl_module.hparams
        bands = parse_bands(hp["bands"], keep_order=True)
        dm: Any = self.data
        dm_bands = list(getattr(dm, "bands", []))
        if dm_bands != bands:
            raise ConfigError(
                f"the probe DataModule yields bands {dm_bands} but the encoder takes "
                f"{bands}; set the probe data's bands to the task's"
            )
        stats = BandStats.coerce(hp["stats"]).select(bands)
        set_stats = getattr(dm, "set_stats", None)
        if set_stats is None:
            raise ConfigError(f"{type(dm).__name__} cannot take the task's statistics")
        set_stats(stats, source="the pretraining task")
        tiles: dict[str, ProbeTiles] = {}
        for split, limit in (
            (self.train_split, self.max_train_tiles),
            (self.eval_split, self.max_eval_tiles),
        ):
            raw = read_split_tiles(dm, split, max_tiles=limit, stride=self.stride)
            tiles[split] = self._to_target(raw, split)
        self._tiles = tiles
        log.info(
            "online probe (%s, %s): %d %s tiles to fit, %d %s tiles to score",
            type(dm).__name__,
            "per-pixel mIoU" if self._mode == "pixels" else "tile classes",
            len(tiles[self.train_split]),
            self.train_split,
            len(tiles[self.eval_split]),
            self.eval_split,
        )
        return tiles

    def _to_target(self, tiles: ProbeTiles, split: str) -> ProbeTiles:
        dm: Any = self.data
        if self._mode == "pixels" or tiles.labels.ndim == 1:
            out = tiles
        else:
            labels, kept = majority_labels(
                tiles.labels,
                num_classes=int(dm.num_classes),
                ignore_index=int(getattr(dm, "ignore_index", -1)),
                min_labelled=self.min_labelled,
            )
            out = tiles.take(kept)
            out.labels = labels
        if len(out) == 0:
            raise DataError(
                f"the probe's {split} split holds no usable tile (min_labelled="
                f"{self.min_labelled}); check the labels or lower min_labelled"
            )
        return out

    # ---- features --------------------------------------------------------------------
    @torch.no_grad()
    def _embed(
        self, encoder: torch.nn.Module, tiles: ProbeTiles, device: torch.device
    ) -> np.ndarray:
        """``(N, D)`` mean patch token, or ``(N, D, gh, gw)`` maps for ``pixels``."""
        was_training = encoder.training
        encoder.eval()
        parts = []
        try:
            for start in range(0, len(tiles), self.batch_size):
                x = tiles.image[start : start + self.batch_size].to(device)  # (B, C, H, W)
                valid = tiles.valid[start : start + self.batch_size].to(device)
                x = torch.where(valid, x, torch.zeros((), device=device))
                if self._mode == "pixels":
                    maps = encoder.forward_intermediates(  # type: ignore[operator]
                        x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True
                    )
                    parts.append(maps[0].float().cpu().numpy())  # (B, D, gh, gw)
                else:
                    tokens = encoder.forward_features(x)  # type: ignore[operator]
                    parts.append(tokens[:, 1:].mean(dim=1).float().cpu().numpy())  # (B, D)
        finally:
            encoder.train(was_training)
        return np.concatenate(parts)

    def _stats_features(self, tiles: ProbeTiles) -> np.ndarray:
        """Per-band mean and std of each tile over its valid pixels: ``(N, 2C)``."""
        stats = stats_extractor(kind="multiclass")
        return stats({"image": tiles.image, "valid": tiles.valid}).numpy()

    def _score(self, train_x: np.ndarray, eval_x: np.ndarray, what: str) -> dict[str, float]:
        tiles = self._tiles
        assert tiles is not None
        train, test = tiles[self.train_split], tiles[self.eval_split]
        num_classes = int(self.data.num_classes)  # type: ignore[attr-defined]
        if self._mode == "pixels":
            return self._score_pixels(train_x, eval_x, train, test, num_classes, what)
        return probe_scores(
            train_x,
            train.labels,
            eval_x,
            test.labels,
            num_classes=num_classes,
            k=self.k,
            C=self.C,
            max_iter=self.max_iter,
            what=what,
        )

    def _score_pixels(
        self,
        train_x: np.ndarray,
        eval_x: np.ndarray,
        train: ProbeTiles,
        test: ProbeTiles,
        num_classes: int,
        what: str,
    ) -> dict[str, float]:
        settings = LinearSettings(
            C=(self.C,),
            max_iter=self.max_iter,
            train_fraction=1.0,
            max_train_pixels=self.max_train_pixels,
        )
        result = probe_segmentation(
            SplitFeatures(train_x, train.labels, train.valid[:, 0].numpy()),
            None,
            SplitFeatures(eval_x, test.labels, test.valid[:, 0].numpy()),
            num_classes=num_classes,
            ignore_index=int(getattr(self.data, "ignore_index", 255)),
            settings=settings,
            seed=self.seed,
            valid_only=False,
            what=what,
        )
        flat = train_x.transpose(0, 2, 3, 1).reshape(-1, train_x.shape[1])
        unit = flat / np.maximum(np.linalg.norm(flat, axis=1, keepdims=True), 1e-12)
        return {
            "linear_miou": float(result.metrics["mIoU"]),
            "linear_acc": float(result.metrics["OA"]),
            "feature_std": float(unit.std(axis=0).mean()),
        }

    def _references(self, pl_module: LightningModule, device: torch.device) -> dict[str, float]:
        """Scores of a random-init encoder, the statistics baseline and the majority class."""
        tiles = self._tiles
        assert tiles is not None
        encoder: Any = pl_module.model.encoder  # type: ignore[union-attr]
        out: dict[str, float] = {}
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]):
            torch.manual_seed(self.seed)
            fresh: torch.nn.Module = type(encoder)(**encoder.arch_kwargs()).to(device)
        train, test = tiles[self.train_split], tiles[self.eval_split]
        scores = self._score(
            self._embed(fresh, train, device), self._embed(fresh, test, device), "random init"
        )
        out.update({f"random_init/{k}": v for k, v in scores.items()})
        if self._mode == "classes":
            stats = self._score(
                self._stats_features(train), self._stats_features(test), "stats baseline"
            )
            out.update({f"stats_baseline/{k}": v for k, v in stats.items() if k != "feature_std"})
            values, counts = np.unique(train.labels, return_counts=True)
            out["majority_acc"] = float((test.labels == values[counts.argmax()]).mean())
        return out

    # ---- hooks -----------------------------------------------------------------------
    def on_fit_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Start the clock of ``probe.json``."""
        self._start = time.monotonic()

    def _due(self, trainer: Trainer) -> bool:
        epoch = trainer.current_epoch + 1
        last = (
            trainer.max_epochs is not None
            and trainer.max_epochs > 0
            and (epoch >= trainer.max_epochs)
        )
        if trainer.max_steps is not None and trainer.max_steps > 0:
            last = last or trainer.global_step >= trainer.max_steps
        return epoch % self.every_n_epochs == 0 or last

    def on_validation_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Probe the encoder when due and log ``probe/*`` to every logger."""
        if trainer.sanity_checking or not self._due(trainer):
            return
        model = getattr(pl_module, "model", None)
        if model is None or not hasattr(model, "encoder"):
            raise ConfigError("OnlineProbe works with MAETask (a module with model.encoder)")
        logged, entry = self._probe(trainer, pl_module, model)
        for name, value in logged.items():
            pl_module.log(f"probe/{name}", value, rank_zero_only=True)
        self._pending = entry

    def _probe(
        self, trainer: Trainer, pl_module: LightningModule, model: Any
    ) -> tuple[dict[str, float], dict[str, Any]]:
        """Scores of the current encoder (and the references), and their history entry."""
        tic = time.monotonic()
        tiles = self._prepare(pl_module)
        device = pl_module.device
        if self.references and not self.reference_scores:
            self.reference_scores = self._references(pl_module, device)
        train, test = tiles[self.train_split], tiles[self.eval_split]
        scores = self._score(
            self._embed(model.encoder, train, device),
            self._embed(model.encoder, test, device),
            f"online probe, epoch {trainer.current_epoch}",
        )
        logged = {**scores, **self.reference_scores}
        entry = {
            "epoch": int(trainer.current_epoch),
            "step": int(trainer.global_step),
            "minutes": (time.monotonic() - self._start) / 60.0,
            "probe_seconds": time.monotonic() - tic,
            **{k: float(v) for k, v in logged.items()},
        }
        return logged, entry

    def on_train_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Probe the final weights when training stopped after the last probe.

        A ``max_steps`` budget can end training inside an epoch, after its last
        validation; the final encoder is then probed here and written straight to the
        loggers (``self.log`` is closed at this point).
        """
        model = getattr(pl_module, "model", None)
        if model is None or (self.history and self.history[-1]["step"] == trainer.global_step):
            return
        logged, entry = self._probe(trainer, pl_module, model)
        entry.update(_val_metrics(trainer))  # the last validation's
        self.history.append(entry)
        if trainer.is_global_zero:
            for logger in trainer.loggers:
                logger.log_metrics(
                    {f"probe/{k}": v for k, v in logged.items()}, trainer.global_step
                )
                logger.save()
            self._write_history(trainer)

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Record the probe with the epoch's reduced ``val/*`` metrics in ``probe.json``."""
        if self._pending is None:
            return
        entry = {**self._pending, **_val_metrics(trainer)}
        self._pending = None
        self.history.append(entry)
        if trainer.is_global_zero:
            self._write_history(trainer)

    def _write_history(self, trainer: Trainer) -> None:
        folder = Path(trainer.log_dir or trainer.default_root_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "probe.json"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.history, indent=1))
        tmp.replace(path)

    def on_fit_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """Log one line comparing the encoder with its references, and the PSNR pair."""
        if not self.history or not trainer.is_global_zero:
            return
        last = self.history[-1]
        key = "linear_miou" if self._mode == "pixels" else "linear_acc"
        parts = [
            f"probe {key} {_fmt(last.get(key))} (random init {_fmt(last.get('random_init/' + key))}"
            + (
                f", stats baseline {_fmt(last.get('stats_baseline/' + key))}, majority class "
                f"{_fmt(last.get('majority_acc'))})"
                if self._mode == "classes"
                else ")"
            )
        ]
        if "knn_acc" in last:
            parts.append(
                f"kNN acc {_fmt(last['knn_acc'])} (random init "
                f"{_fmt(last.get('random_init/knn_acc'))})"
            )
        if "val/psnr" in last:
            parts.append(
                f"masked-patch PSNR {last['val/psnr']:.2f} dB (visible-mean baseline "
                f"{last.get('val/psnr_baseline', math.nan):.2f} dB)"
            )
        log.info("after %d steps: %s", last["step"], "; ".join(parts))


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{float(value):.3f}"


def _val_metrics(trainer: Trainer) -> dict[str, float]:
    """The epoch's ``val/*`` metrics already reduced by Lightning."""
    out = {}
    for name, value in trainer.callback_metrics.items():
        if name.startswith("val/"):
            out[name] = float(value)
    return out
