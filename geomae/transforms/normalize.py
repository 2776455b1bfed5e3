"""Per-band normalization keyed by band name."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from kornia.augmentation import IntensityAugmentationBase2D
from torch import Tensor

from geomae.bands import parse_bands
from geomae.stats import BandStats

__all__ = ["BandNormalize"]


class BandNormalize(IntensityAugmentationBase2D):
    """Normalize each band with its own mean and standard deviation.

    The statistics are looked up by band name, so building the module for a subset of
    the bands in ``stats`` (in any order) selects exactly those statistics. Mean and std
    are buffers: ``module.to(device)`` moves them with the module and they are part of
    its ``state_dict``.

    Args:
        bands: canonical band names of the input channels, in channel order.
        stats: statistics covering at least ``bands``.
        source: what ``stats`` came from, for the error message if a band is missing.
        keepdim: kornia's ``keepdim`` (keep an unbatched ``(C, H, W)`` input unbatched).

    Raises:
        BandError: if ``stats`` lacks one of ``bands`` (names the band and ``source``).
    """

    def __init__(
        self,
        *,
        bands: Sequence[str],
        stats: BandStats,
        source: str = "stats",
        keepdim: bool = True,
    ) -> None:
        super().__init__(p=1.0, same_on_batch=True, keepdim=keepdim)
        self.bands = parse_bands(bands, keep_order=True)
        self.stats = stats.select(self.bands, source=source)
        mean = torch.tensor(self.stats.mean(self.bands), dtype=torch.float32)  # (C,)
        std = torch.tensor(self.stats.std(self.bands), dtype=torch.float32)  # (C,)
        self.register_buffer("mean", mean.view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", std.view(1, -1, 1, 1), persistent=False)
        self.mean: Tensor
        self.std: Tensor

    def apply_transform(
        self,
        input: Tensor,
        params: dict[str, Tensor],
        flags: dict[str, Any],
        transform: Tensor | None = None,
    ) -> Tensor:
        """Return ``(input - mean) / std`` per channel; input is ``(B, C, H, W)``."""
        if input.shape[1] != self.mean.shape[1]:
            raise ValueError(
                f"BandNormalize for bands {self.bands} expects {len(self.bands)} channels, "
                f"got an input of shape {tuple(input.shape)}"
            )
        return (input - self.mean.to(input.dtype)) / self.std.to(input.dtype)
