"""Masked, nodata-aware reconstruction loss with per-patch normalized targets."""

from __future__ import annotations

from collections.abc import Sequence

import torch

__all__ = ["masked_mse", "patch_stats"]


def patch_stats(
    patches: torch.Tensor, weight: torch.Tensor | None, *, eps: float = 1e-6
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of each patch over its valid pixels.

    Args:
        patches: (B, L, P, C) pixel values, P = p*p (invalid pixels must be finite).
        weight: (B, L, P, 1) 1 for valid pixels, 0 for nodata; None = all valid (the
            same result, computed without the weights).
        eps: added to the variance.

    Returns:
        ``(mean, std)``, each (B, L, 1, 1); the variance is unbiased over the patch's
        ``n`` valid values (all channels), 0 when ``n <= 1``.
    """
    if weight is None:
        if patches.shape[2] * patches.shape[3] <= 1:
            mean = patches.mean(dim=(2, 3), keepdim=True)
            return mean, torch.full_like(mean, eps).sqrt()
        flat = patches.flatten(2)  # (B, L, P*C), a view of contiguous patches
        var, mean = torch.var_mean(flat, dim=-1, correction=1, keepdim=True)  # (B, L, 1)
        return mean.unsqueeze(-1), (var + eps).sqrt().unsqueeze(-1)
    c = patches.shape[-1]
    count = weight.sum(dim=(2, 3), keepdim=True) * c  # (B, L, 1, 1)
    mean = (patches * weight).sum(dim=(2, 3), keepdim=True) / count.clamp(min=1)
    sq = ((patches - mean) ** 2 * weight).sum(dim=(2, 3), keepdim=True)  # (B, L, 1, 1)
    var = sq / (count - 1).clamp(min=1)
    return mean, (var + eps).sqrt()


def masked_mse(
    preds: Sequence[torch.Tensor],
    targets: Sequence[torch.Tensor],
    weights: Sequence[torch.Tensor],
) -> torch.Tensor:
    """Mean squared error over weighted pixel values, pooled over groups.

    Args:
        preds: per group (B, L, P, C_g) predictions.
        targets: per group (B, L, P, C_g) finite targets.
        weights: per group weights broadcastable to the prediction: (B, L, P, 1) per
            pixel (1 = masked token and valid pixel), or (B, L, 1, 1) per token when
            every pixel is valid (the squared errors are then summed per token first,
            which avoids one full-size product).

    Returns:
        () float32: sum of weighted squared errors / number of weighted values; 0 (still
        connected to the graph of ``preds``) when no value has weight.
    """
    total = preds[0].new_zeros((), dtype=torch.float32)
    count = preds[0].new_zeros((), dtype=torch.float32)
    for pred, target, weight in zip(preds, targets, weights, strict=True):
        err = (pred.float() - target.float()) ** 2  # (B, L, P, C_g)
        if weight.shape[2] == 1 and weight.shape[3] == 1:
            total = total + (err.sum(dim=(2, 3)) * weight[:, :, 0, 0].float()).sum()
        else:
            total = total + (err * weight).sum()
        count = count + weight.sum() * (pred.numel() // weight.numel())
    return total / count.clamp(min=1)
