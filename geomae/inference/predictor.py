"""A model file as a function from raw-DN windows to per-pixel (or per-patch) outputs.

Three kinds of files are understood, recognized by their content:

- a :class:`~geomae.trainers.SegmentationTask` checkpoint (``.ckpt``): per-pixel class
  probabilities (softmax of the logits), ``(B, K, P, P)``;
- a :class:`~geomae.trainers.ClassificationTask` checkpoint: the window's class scores
  (softmax, or sigmoid for multilabel) spread over all its pixels, ``(B, K, P, P)``; the
  blended map is therefore a coarse map at window resolution (a pixel's scores are the
  weighted mean of the windows that contain it);
- encoder weights (a ``.safetensors`` file of ``geomae convert`` / ``geomae import``,
  or an MAE ``.ckpt``), loaded with :func:`geomae.load_backbone`: one embedding per
  ``patch_size`` x ``patch_size`` patch, ``(B, D, P / p, P / p)``: the last block's
  tokens after the final norm, averaged over band groups at each patch position
  (:meth:`~geomae.models.ChannelViT.forward_intermediates` with ``norm=True``; the map
  the linear segmentation head reads).

Bands (and their order), normalization statistics, DN offset and processing level all
come from the file's :class:`~geomae.metadata.GeoMetadata`. Windows are normalized on
the model's device by the DataModules' :class:`~geomae.transforms.BandPipeline`
(offset, per-band statistics, nodata pixels set to 0), exactly as in training.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch
from torch import nn

from geomae.checkpoint_io import AtomicCheckpointIO
from geomae.convert import load_backbone
from geomae.errors import CheckpointError, ConfigError
from geomae.metadata import GeoMetadata
from geomae.models.vit import ChannelViT
from geomae.stats import BandStats
from geomae.trainers import ClassificationTask, SegmentationTask
from geomae.transforms import BandPipeline

__all__ = ["Device", "PredictorKind", "WindowPredictor", "load_predictor", "resolve_device"]

log = logging.getLogger(__name__)

PredictorKind = Literal["segmentation", "classification", "embedding"]
Device = Literal["auto", "cpu", "cuda"]
#: ``metadata.extra["task"]`` of the fine-tuning checkpoints that predict classes.
_TASKS: dict[str, PredictorKind] = {
    "SegmentationTask": "segmentation",
    "ClassificationTask": "classification",
}


def resolve_device(device: Device | str) -> torch.device:
    """``auto``: CUDA when available, else the CPU; ``cuda`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA GPU is available; use --device auto or cpu")
    if device not in ("cpu", "cuda"):
        raise ConfigError(f"device must be auto, cpu or cuda, got {device!r}")
    return torch.device(device)


@dataclass
class WindowPredictor:
    """A model that maps raw-DN windows to outputs, with what it needs to be fed.

    Attributes:
        kind: ``segmentation``, ``classification`` or ``embedding``.
        model: the module (in eval mode, on :attr:`device`).
        forward: ``(B, C, P, P)`` normalized -> ``(B, K, P / scale, P / scale)``.
        metadata: the file's metadata (bands, stats, offset, level, ...).
        window: the window side the model runs at (its image size).
        scale: input pixels per output pixel along each axis (1, or the patch size).
        channels: ``K``: classes, or embedding features.
        class_names: one name per class (empty for embeddings or unnamed classes).
        source: the file, for messages.
        device: where the model runs.
        multilabel: classification scores are independent sigmoids.
    """

    kind: PredictorKind
    model: nn.Module
    forward: Callable[[torch.Tensor], torch.Tensor]
    metadata: GeoMetadata
    window: int
    scale: int
    channels: int
    class_names: list[str] = field(default_factory=list)
    source: str = ""
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    multilabel: bool = False
    _pipeline: BandPipeline | None = None
    _order: list[int] | None = None

    @property
    def bands(self) -> list[str]:
        """The model's input bands, in channel order."""
        return list(self.metadata.bands)

    @property
    def stats(self) -> BandStats:
        """The normalization statistics of :attr:`bands` (after the offset)."""
        return self.metadata.stats

    @property
    def patch_size(self) -> int:
        """The backbone's patch size."""
        return int(self.metadata.patch_size)

    def configure_input(self, *, offset: float, nodata: float | None) -> None:
        """Build the normalization for data of DN ``offset`` and ``nodata`` value.

        Args:
            offset: the DN offset of the scene (subtracted before the statistics).
            nodata: the scene's raw nodata value, or None.
        """
        pipeline = BandPipeline(
            source_bands=self.bands,
            bands=self.bands,
            stats=self.stats,
            stats_source=f"the statistics of {self.source}",
            offset=offset,
            nodata=nodata,
            augment="none",
        )
        self._pipeline = pipeline.eval().to(self.device)
        out = list(pipeline.bands)  # canonical order; the model may want another
        self._order = None if out == self.bands else [out.index(b) for b in self.bands]

    @torch.inference_mode()
    def __call__(self, raw: np.ndarray) -> np.ndarray:
        """Outputs of a batch of windows.

        Args:
            raw: ``(B, C, P, P)`` float32 raw DN in :attr:`bands` order.

        Returns:
            ``(B, K, P / scale, P / scale)`` float32: class probabilities or embeddings.
        """
        if self._pipeline is None:
            raise ConfigError("call configure_input(offset=..., nodata=...) first")
        image = torch.from_numpy(raw).to(self.device)  # (B, C, P, P)
        batch = self._pipeline({"image": image}, augment=False)
        x = batch["image"]  # (B, C, P, P) normalized, nodata pixels 0
        if self._order is not None:
            x = x[:, self._order]
        return self.forward(x).float().cpu().numpy()


def load_predictor(
    path: str | Path,
    *,
    window: int | None = None,
    device: Device | str = "auto",
    bands: Sequence[str] | None = None,
) -> WindowPredictor:
    """Load a checkpoint or encoder weights as a :class:`WindowPredictor`.

    Args:
        path: a SegmentationTask / ClassificationTask ``.ckpt``, an MAE ``.ckpt``, or
            geomae ``.safetensors`` weights.
        window: window side in pixels (default: the image size the model was trained
            at); a multiple of the patch size. Segmentation and embedding models run
            at it directly (the position embedding is recomputed for the new grid).
        device: ``auto``, ``cpu`` or ``cuda``.
        bands: for encoder weights only, a subset of their bands to read (default
            all of them).

    Raises:
        CheckpointError: the file is missing, not a checkpoint or weights file, or was
            written by a task that predicts nothing here (names the file).
        ConfigError: a window not divisible by the patch size, ``bands`` with a task
            checkpoint.
    """
    file = Path(path)
    if not file.is_file():
        raise CheckpointError(f"model file {file} does not exist")
    target = resolve_device(device)
    if file.suffix == ".safetensors":
        return _encoder(file, window=window, device=target, bands=bands)
    checkpoint = _read_checkpoint(file)
    meta = checkpoint.get("geomae")
    task = meta.get("extra", {}).get("task") if isinstance(meta, dict) else None
    if task not in _TASKS:
        return _encoder(file, window=window, device=target, bands=bands)  # an MAE, or refused
    if bands is not None:
        raise ConfigError(
            f"--bands applies to encoder weights; {file} is a {task} checkpoint that "
            f"reads the bands it was trained on"
        )
    return _task(file, _TASKS[task], window=window, device=target)


def _read_checkpoint(file: Path) -> dict[str, Any]:
    """The checkpoint dictionary, or a CheckpointError naming what the file is."""
    try:
        return AtomicCheckpointIO().load_checkpoint(file)
    except CheckpointError as err:
        raise CheckpointError(
            f"{file} is neither a geomae checkpoint (.ckpt) nor .safetensors weights: {err}"
        ) from err


def _task(
    file: Path, kind: PredictorKind, *, window: int | None, device: torch.device
) -> WindowPredictor:
    """A fine-tuned task restored from its checkpoint."""
    cls = SegmentationTask if kind == "segmentation" else ClassificationTask
    task = cls.load_from_checkpoint(file, map_location="cpu", weights_only=True)
    task = cast(Any, task).eval().to(device)
    meta = task.metadata
    backbone = cast(ChannelViT, task.backbone)
    size = int(window or meta.img_size)
    if kind == "segmentation" and size != backbone.img_size[0]:
        _check_window(size, backbone.patch_size, file)
        backbone.set_img_size(size)  # no resizing: the model sees the pixels at 10 m
    num_classes = int(task.hparams.num_classes)
    multilabel = kind == "classification" and task.hparams.task == "multilabel"

    def forward(x: torch.Tensor) -> torch.Tensor:
        logits = task(x)  # (B, K, P, P) segmentation, (B, K) classification
        if kind == "segmentation":
            return logits.softmax(dim=1)
        scores = logits.sigmoid() if multilabel else logits.softmax(dim=1)  # (B, K)
        return scores[:, :, None, None].expand(-1, -1, x.shape[-2], x.shape[-1])

    names = list(task.class_names or [])
    log.info(
        "%s: %s checkpoint, %d classes, bands %s, window %d px",
        file,
        type(task).__name__,
        num_classes,
        ",".join(meta.bands),
        size,
    )
    return WindowPredictor(
        kind=kind,
        model=task,
        forward=forward,
        metadata=meta,
        window=size,
        scale=1,
        channels=num_classes,
        class_names=names if len(names) == num_classes else [],
        source=str(file),
        device=device,
        multilabel=multilabel,
    )


def _encoder(
    file: Path, *, window: int | None, device: torch.device, bands: Sequence[str] | None
) -> WindowPredictor:
    """Encoder weights (or an MAE checkpoint) as a per-patch embedding function."""
    model = load_backbone(file, bands=bands, img_size=window).eval().to(device)
    meta = cast(GeoMetadata, model.geomae_metadata)

    def forward(x: torch.Tensor) -> torch.Tensor:
        maps = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)
        return cast(torch.Tensor, maps[0])  # (B, D, P / p, P / p)

    log.info(
        "%s: encoder D=%d patch %d, bands %s, window %d px",
        file,
        model.embed_dim,
        model.patch_size,
        ",".join(meta.bands),
        model.img_size[0],
    )
    return WindowPredictor(
        kind="embedding",
        model=model,
        forward=forward,
        metadata=meta,
        window=int(model.img_size[0]),
        scale=int(model.patch_size),
        channels=int(model.embed_dim),
        source=str(file),
        device=device,
    )


def _check_window(window: int, patch_size: int, file: Path) -> None:
    if window < patch_size or window % patch_size:
        raise ConfigError(
            f"--window {window} is not a multiple of the patch size {patch_size} of {file}"
        )
