"""The Sentinel-2 L2A radiometric offset."""

from __future__ import annotations

from typing import Any

from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor

__all__ = ["L2AOffset"]


class L2AOffset(IntensityAugmentationBase2D):
    """Subtract a constant offset from every band.

    Sentinel-2 products of processing baseline 04.00 and later store
    ``DN = reflectance * 10000 + 1000``; subtracting ``offset=1000`` puts them on the
    same scale as older products. The offset is applied to raw digital numbers before
    normalization.

    Args:
        offset: value subtracted from every pixel of every band.
        keepdim: kornia's ``keepdim`` (keep an unbatched ``(C, H, W)`` input unbatched).
    """

    def __init__(self, *, offset: float = 1000.0, keepdim: bool = True) -> None:
        super().__init__(p=1.0, same_on_batch=True, keepdim=keepdim)
        self.offset = float(offset)

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Return ``input - offset``; input is ``(B, C, H, W)``."""
        return input - self.offset
