"""Geometric augmentations applied consistently to image, valid mask and label mask."""

from __future__ import annotations

import logging
from typing import Any, Literal, get_args

import kornia.augmentation as K
from torch import Tensor, nn

from geomae.errors import ConfigError

__all__ = ["AUGMENT_KINDS", "AugmentKind", "SpatialAugment"]

log = logging.getLogger(__name__)

#: ``none``: no augmentation; ``flip``: random horizontal and vertical flips;
#: ``flip_rot90``: flips and random rotations by multiples of 90 degrees;
#: ``full``: flips, rotations and a random resized crop back to the input size.
AugmentKind = Literal["none", "flip", "flip_rot90", "full"]
AUGMENT_KINDS: tuple[str, ...] = get_args(AugmentKind)

# RandomRotation90 draws ``times`` uniformly from a range and rounds it; the range
# (-1.5, 2.5) gives each of the four rotations (-90, 0, 90, 180 degrees) probability 1/4.
_ROT90_TIMES = (-1.5, 2.5)


class SpatialAugment(nn.Module):
    """Random flips, 90-degree rotations and resized crops for multispectral batches.

    The same random transform is applied to the image, to the ``valid`` mask and to a
    segmentation ``mask``: masks are resampled with nearest neighbour, the image with
    nearest neighbour for flips and rotations (exact) and bilinearly for the crop.
    Each sample of the batch draws its own transform.

    Args:
        kind: which augmentations to apply (see :data:`AugmentKind`).
        crop_scale: range of the crop area as a fraction of the image area (``full``).

    Raises:
        ConfigError: on an unknown ``kind`` or a ``crop_scale`` outside ``(0, 1]``.
    """

    def __init__(
        self,
        *,
        kind: AugmentKind = "flip_rot90",
        crop_scale: tuple[float, float] = (0.5, 1.0),
    ) -> None:
        super().__init__()
        if kind not in AUGMENT_KINDS:
            raise ConfigError(f"augment={kind!r} is not one of {list(AUGMENT_KINDS)}")
        low, high = (float(v) for v in crop_scale)
        if not 0.0 < low <= high <= 1.0:
            raise ConfigError(f"crop_scale={crop_scale!r} must satisfy 0 < low <= high <= 1")
        self.kind = kind
        self.crop_scale = (low, high)
        self._cache: dict[tuple[int, int], K.AugmentationSequential | None] = {}

    def _sequence(self, height: int, width: int) -> K.AugmentationSequential | None:
        """The kornia pipeline for images of ``height`` x ``width`` (built once per size)."""
        key = (height, width)
        if key not in self._cache:
            ops: list[Any] = []
            if self.kind != "none":
                ops += [K.RandomHorizontalFlip(p=0.5), K.RandomVerticalFlip(p=0.5)]
            if self.kind in ("flip_rot90", "full"):
                if height == width:
                    ops.append(
                        K.RandomRotation90(
                            times=_ROT90_TIMES,  # type: ignore[arg-type]  # floats work
                            p=1.0,
                            resample="nearest",
                        )
                    )
                else:
                    log.warning(
                        "skipping 90-degree rotations for non-square %dx%d images", height, width
                    )
            if self.kind == "full":
                ops.append(K.RandomResizedCrop((height, width), scale=self.crop_scale))
            self._cache[key] = (
                K.AugmentationSequential(*ops, data_keys=None, keepdim=False) if ops else None
            )
        return self._cache[key]

    def forward(
        self, image: Tensor, valid: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Augment one batch.

        Args:
            image: ``(B, C, H, W)`` float image.
            valid: ``(B, 1, H, W)`` bool validity mask.
            mask: optional ``(B, H, W)`` int64 segmentation mask.

        Returns:
            The augmented ``(image, valid, mask)`` with the same shapes and dtypes.
        """
        height, width = image.shape[-2:]
        seq = self._sequence(int(height), int(width))
        if seq is None:
            return image, valid, mask
        inputs = [image, valid.to(image.dtype)]  # (B, C, H, W), (B, 1, H, W)
        keys = ["input", "mask"]
        if mask is not None:
            inputs.append(mask.unsqueeze(1).to(image.dtype))  # (B, 1, H, W), exact below 2**24
            keys.append("mask")
        out = seq(*inputs, data_keys=keys)
        image_out, valid_out = out[0], out[1] > 0.5
        mask_out = out[2].squeeze(1).round().to(mask.dtype) if mask is not None else None
        return image_out, valid_out, mask_out
