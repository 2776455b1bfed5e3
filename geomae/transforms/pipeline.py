"""The on-device band pipeline: select, cast, validity, offset, normalize, augment."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from geomae.bands import parse_bands
from geomae.errors import BandError
from geomae.stats import BandStats
from geomae.transforms.augment import AugmentKind, SpatialAugment
from geomae.transforms.normalize import BandNormalize
from geomae.transforms.offset import L2AOffset

__all__ = ["BandPipeline"]

log = logging.getLogger(__name__)

_LIMITED_DTYPES = (torch.uint16, torch.uint32, torch.uint64)


class BandPipeline(nn.Module):
    """Turn a batch of raw digital numbers into normalized, augmented model input.

    In order: select ``bands`` out of ``source_bands`` (by index), cast to float32,
    compute ``valid`` (the batch's own ``valid`` AND every selected band finite AND
    not equal to ``nodata``), subtract ``offset``, normalize each band with ``stats``,
    set invalid pixels to 0 (so NaN/Inf never propagate), then, when augmenting, apply
    the same random flips / rotations / crop to ``image``, ``valid`` and ``mask``.

    ``stats`` are applied to the offset-corrected values, i.e. they describe
    ``DN - offset``; :func:`geomae.compute_stats.compute_stats` records the offset it used in
    ``attrs["offset"]`` and a mismatch with ``offset`` is logged as a warning.

    Args:
        source_bands: canonical bands of the incoming ``image`` channels, in order.
        bands: bands to keep (a band-set name, comma string or list), returned in
            canonical order; every band must be in ``source_bands``.
        stats: statistics covering ``bands``.
        stats_source: what ``stats`` came from (a file name), for error messages.
        offset: value subtracted from raw DN before normalization.
        nodata: raw value marking missing pixels (in any band), or None.
        augment: augmentation kind, see :class:`~geomae.transforms.augment.SpatialAugment`.
        crop_scale: crop area range for ``augment="full"``.

    Raises:
        BandError: if a band is not in ``source_bands`` or lacks statistics.
    """

    def __init__(
        self,
        *,
        source_bands: Sequence[str],
        bands: str | Sequence[str],
        stats: BandStats,
        stats_source: str = "stats",
        offset: float = 0.0,
        nodata: float | None = None,
        augment: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        super().__init__()
        self.source_bands = parse_bands(source_bands, keep_order=True)
        self.bands = parse_bands(bands)
        missing = [b for b in self.bands if b not in self.source_bands]
        if missing:
            raise BandError(
                f"band(s) {missing} requested but the dataset only provides {self.source_bands}"
            )
        self.offset = float(offset)
        self.nodata = None if nodata is None else float(nodata)
        stats_offset = stats.attrs.get("offset")
        if stats_offset is not None and not math.isclose(float(stats_offset), self.offset):
            log.warning(
                "%s were computed with offset %s but the pipeline subtracts offset %s; "
                "normalized values will be shifted",
                stats_source,
                stats_offset,
                self.offset,
            )
        index = torch.tensor([self.source_bands.index(b) for b in self.bands])  # (C,)
        self.register_buffer("index", index, persistent=False)
        self.index: Tensor
        self.select_all = self.bands == self.source_bands
        self.offset_op = L2AOffset(offset=self.offset, keepdim=False)
        self.normalize = BandNormalize(bands=self.bands, stats=stats, source=stats_source)
        self.stats = self.normalize.stats
        self.augment = SpatialAugment(kind=augment, crop_scale=crop_scale)

    def forward(self, batch: dict[str, Any], *, augment: bool | None = None) -> dict[str, Any]:
        """Apply the pipeline to a collated batch.

        Args:
            batch: ``image`` ``(B, C_src, H, W)`` raw DN (any real dtype), optional
                ``valid`` ``(B, 1, H, W)`` bool and ``mask`` ``(B, H, W)`` int64; other
                tensor keys (``label``, ...) pass through, non-tensor keys are dropped.
            augment: apply the random augmentations; defaults to ``self.training``.

        Returns:
            A new batch with ``image`` ``(B, C, H, W)`` float32 normalized and ``valid``
            ``(B, 1, H, W)`` bool, plus the other tensor keys.

        Raises:
            BandError: if ``image`` does not have one channel per source band.
        """
        image = batch["image"]  # (B, C_src, H, W)
        if image.ndim != 4 or image.shape[1] != len(self.source_bands):
            raise BandError(
                f"expected image (B, {len(self.source_bands)}, H, W) for bands "
                f"{self.source_bands}, got shape {tuple(image.shape)}"
            )
        out = {k: v for k, v in batch.items() if isinstance(v, Tensor)}
        if image.dtype in _LIMITED_DTYPES:  # few kernels (e.g. CUDA indexing) for these
            image = image.to(torch.float32)
        if not self.select_all:
            image = image.index_select(1, self.index.to(image.device))  # (B, C, H, W)
        image = image.to(torch.float32)
        valid = torch.isfinite(image).all(dim=1, keepdim=True)  # (B, 1, H, W)
        if self.nodata is not None:
            valid &= (image != self.nodata).all(dim=1, keepdim=True)
        if "valid" in batch:
            valid &= batch["valid"].to(device=valid.device, dtype=torch.bool)
        image = self.normalize(self.offset_op(image))
        image = torch.where(valid, image, torch.zeros((), dtype=image.dtype, device=image.device))
        mask = out.get("mask")
        if self.training if augment is None else augment:
            image, valid, mask = self.augment(image, valid, mask)
        out["image"], out["valid"] = image, valid
        if mask is not None:
            out["mask"] = mask
        return out

    def extra_repr(self) -> str:
        """Bands, offset and nodata for ``repr``."""
        return f"bands={self.bands}, offset={self.offset}, nodata={self.nodata}"
