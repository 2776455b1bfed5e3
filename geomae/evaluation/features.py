"""Feature extraction for the probe protocols, and its on-disk cache.

One pass over a split's fixed tile list (:func:`geomae.evaluation.data.split_loader`)
computes every feature kind the pending cells need:

- a backbone (pretrained, or randomly initialized for one seed), frozen, in eval mode:
  classification -> the pooled embedding ``(N, D)`` (``avg`` of the patch tokens or the
  cls ``token``); segmentation -> the last block's normalized patch tokens, averaged
  over band groups, as a map ``(N, D, gh, gw)``;
- ``stats`` (no deep model): classification -> the per-band mean and std of each
  normalized tile over its valid pixels ``(N, 2C)`` (means first); segmentation -> the
  normalized pixel values ``(N, C, H, W)`` (float16).

Labels are stored with the features: ``(N,)`` class indices, ``(N, K)`` multi-hot, or
``(N, H, W)`` masks with the ``(N, H, W)`` validity of the image pixels.

Each (feature kind, band set, split) is cached as ``<split>-<kind>-<key>.npz`` where the
key hashes everything that decides the features (bands, data, tiles, weights, pooling);
band sets with the same bands share the files.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from geomae.backbone import resize_to
from geomae.evaluation.data import TaskKind, normalized_batches
from geomae.models.vit import ChannelViT

log = logging.getLogger(__name__)

__all__ = [
    "FEATURES_VERSION",
    "Extractor",
    "FeatureCache",
    "SplitFeatures",
    "backbone_extractor",
    "extract",
    "feature_key",
    "split_labels",
    "stats_extractor",
]

#: Bumped when the stored features change meaning (invalidates old cache files).
FEATURES_VERSION = 1

#: ``batch -> (B, ...) features`` on the batch's device.
Extractor = Callable[[Mapping[str, Tensor]], Tensor]


@dataclass
class SplitFeatures:
    """Features and labels of one split.

    Attributes:
        features: ``(N, F)`` vectors or ``(N, F, h, w)`` maps (see the module docstring).
        labels: ``(N,)``, ``(N, K)`` or ``(N, H, W)``.
        valid: ``(N, H, W)`` bool validity of the image pixels (segmentation), else None.
    """

    features: np.ndarray
    labels: np.ndarray
    valid: np.ndarray | None = None

    def __len__(self) -> int:
        """Number of tiles."""
        return len(self.labels)


def feature_key(context: Mapping[str, Any]) -> str:
    """A 16-hex-digit hash of a JSON-safe ``context`` (plus :data:`FEATURES_VERSION`)."""
    text = json.dumps({"version": FEATURES_VERSION, **context}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


class FeatureCache:
    """``.npz`` files of :class:`SplitFeatures` in one folder.

    Args:
        folder: where the files go (created on the first save).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path(self, split: str, kind: str, key: str) -> Path:
        """File of one split, feature kind and key."""
        return self.folder / f"{split}-{kind}-{key}.npz"

    def load(self, split: str, kind: str, key: str) -> SplitFeatures | None:
        """The cached features, or None when absent or unreadable (logged)."""
        path = self.path(split, kind, key)
        if not path.is_file():
            return None
        try:
            with np.load(path) as data:
                valid = data["valid"] if "valid" in data.files else None
                return SplitFeatures(data["features"], data["labels"], valid)
        except (OSError, ValueError, KeyError) as err:
            log.warning("ignoring unreadable feature cache %s (%s)", path, err)
            return None

    def save(self, split: str, kind: str, key: str, features: SplitFeatures) -> Path:
        """Write atomically (a temporary file renamed into place)."""
        path = self.path(split, kind, key)
        self.folder.mkdir(parents=True, exist_ok=True)
        arrays = {"features": features.features, "labels": features.labels}
        if features.valid is not None:
            arrays["valid"] = features.valid
        tmp = path.with_name(path.name + ".tmp")
        with tmp.open("wb") as f:
            np.savez(f, **arrays)  # type: ignore[arg-type]
        os.replace(tmp, path)
        return path


def backbone_extractor(model: ChannelViT, *, kind: TaskKind) -> Extractor:
    """Embeddings of a frozen backbone (put in eval mode here).

    Args:
        model: the encoder over the band set's bands; its ``global_pool`` pools
            classification tokens; inputs are resized to its ``img_size``.
        kind: the task kind.
    """
    model.eval().requires_grad_(False)

    def run(batch: Mapping[str, Tensor]) -> Tensor:
        x = resize_to(batch["image"], model.img_size)  # (B, C, h, w)
        if kind == "segmentation":
            maps = model.forward_intermediates(
                x, indices=1, norm=True, output_fmt="NCHW", intermediates_only=True
            )
            return maps[0]  # (B, D, gh, gw)
        tokens = model.forward_features(x)  # (B, 1+G*L, D)
        return model.forward_head(tokens, pre_logits=True)  # (B, D)

    return run


def stats_extractor(*, kind: TaskKind) -> Extractor:
    """Per-tile band mean and std (classification) or the pixel values (segmentation)."""

    def run(batch: Mapping[str, Tensor]) -> Tensor:
        image = batch["image"]  # (B, C, H, W)
        if kind == "segmentation":
            return image.half()  # (B, C, H, W)
        valid = batch["valid"].to(image.dtype)  # (B, 1, H, W)
        count = valid.sum(dim=(2, 3)).clamp(min=1.0)  # (B, 1)
        mean = (image * valid).sum(dim=(2, 3)) / count  # (B, C)
        var = (((image - mean[..., None, None]) ** 2) * valid).sum(dim=(2, 3)) / count
        return torch.cat([mean, var.sqrt()], dim=1)  # (B, 2C)

    return run


def _labels(batch: Mapping[str, Tensor], kind: TaskKind) -> np.ndarray:
    """``(B, H, W)`` int16 masks, ``(B, K)`` uint8 multi-hot or ``(B,)`` int64 classes."""
    if kind == "segmentation":
        return batch["mask"].cpu().numpy().astype(np.int16)
    if kind == "multilabel":
        return batch["label"].cpu().numpy().astype(np.uint8)
    return batch["label"].cpu().numpy().astype(np.int64)


@torch.no_grad()
def split_labels(
    dm: Any, loader: DataLoader[Any], *, kind: TaskKind, device: torch.device
) -> np.ndarray:
    """The labels of one pass of ``loader`` (as :func:`extract` stores them), in order."""
    return np.concatenate([_labels(b, kind) for b in normalized_batches(dm, loader, device)])


@torch.no_grad()
def extract(
    dm: Any,
    loader: DataLoader[Any],
    extractors: Mapping[str, Extractor],
    *,
    kind: TaskKind,
    device: torch.device,
) -> dict[str, SplitFeatures]:
    """Run every extractor over one pass of ``loader``.

    Args:
        dm: the DataModule whose band pipeline normalizes the batches.
        loader: raw batches of a split.
        extractors: feature kind -> extractor.
        kind: the task kind (which label key to keep).
        device: where the batches and models run.

    Returns:
        Feature kind -> :class:`SplitFeatures`, tiles in loader order.
    """
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in extractors}
    labels: list[np.ndarray] = []
    valids: list[np.ndarray] = []
    for batch in normalized_batches(dm, loader, device):
        for name, extractor in extractors.items():
            values = extractor(batch)
            if values.dtype not in (torch.float16, torch.float32):
                values = values.float()
            chunks[name].append(values.cpu().numpy())
        labels.append(_labels(batch, kind))
        if kind == "segmentation":
            valids.append(batch["valid"][:, 0].cpu().numpy())  # (B, H, W)
    label_array = np.concatenate(labels)
    valid = np.concatenate(valids).astype(bool) if valids else None
    return {
        name: SplitFeatures(features=np.concatenate(parts), labels=label_array, valid=valid)
        for name, parts in chunks.items()
    }
