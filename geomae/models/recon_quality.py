"""How good a reconstruction is: masked-patch PSNR against a trivial baseline.

A falling loss alone does not show that an MAE learns structure: a decoder that paints
every masked patch with its tile's mean colour also lowers it. :func:`reconstruction_quality`
therefore scores the reconstruction next to exactly that trivial predictor:

- **model**: the MAE's reconstruction (:meth:`ChannelMAE.reconstruct`) of the masked
  pixels, in band-normalized units;
- **baseline**: every masked pixel of band ``c`` predicted as the mean of band ``c``
  over the tile's *visible* (unmasked, valid) pixels of that band's group; a band whose
  group is entirely masked (``spectral`` masking) falls back to 0, the band's dataset
  mean.

Both are scored on the masked, valid pixels only, with the same peak: the range
(max - min) of the tile's true masked values, so the gap in dB is
``10 log10(MSE_baseline / MSE_model)`` whatever the peak. PSNR is averaged over tiles.

With ``norm_pix_loss`` the model predicts per-patch normalized values; they are mapped
back with the true patch's mean and std (as the MAE figures do), which hands the model
each masked patch's mean. Its PSNR then measures texture on top of that; compare it with
``psnr_baseline`` with this in mind.

The collapse diagnostics ``pred_std`` and ``target_std`` are the standard deviations of
the reconstructed and the true masked pixel values over the batch: a decoder that
predicts a constant shows ``pred_std`` far below ``target_std``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from geomae.models.mae import ChannelMAE, MAEOutput

__all__ = ["ReconQuality", "masked_pixels", "reconstruction_quality", "visible_mean_baseline"]

#: Lower bound of the MSE and of the peak, so a perfect or flat tile stays finite.
_EPS = 1e-12


class ReconQuality(NamedTuple):
    """Scores of one batch (0-d tensors).

    Attributes:
        psnr: dB, model reconstruction of the masked pixels.
        psnr_baseline: dB, the visible-pixel-mean baseline on the same pixels.
        pred_std: std of the reconstructed masked values.
        target_std: std of the true masked values.
    """

    psnr: torch.Tensor
    psnr_baseline: torch.Tensor
    pred_std: torch.Tensor
    target_std: torch.Tensor


def masked_pixels(
    model: ChannelMAE, mask: torch.Tensor, image_size: tuple[int, int]
) -> torch.Tensor:
    """Token mask to a per-channel pixel mask.

    Args:
        model: the MAE (its encoder's groups and patch size).
        mask: (B, G*L) 1 = masked token, group-major.
        image_size: (H, W).

    Returns:
        (B, C, H, W) bool, True where the pixel of that band was masked.
    """
    enc = model.encoder
    p = enc.patch_size
    h, w = image_size
    gh, gw = h // p, w // p
    b = mask.shape[0]
    grid = mask.view(b, enc.num_groups, gh, gw) > 0.5  # (B, G, gh, gw)
    pixels = grid.repeat_interleave(p, dim=2).repeat_interleave(p, dim=3)  # (B, G, H, W)
    out = torch.zeros(b, len(enc.bands), h, w, dtype=torch.bool, device=mask.device)
    for g, channels in enumerate(enc.patch_embed.group_channels):
        out[:, channels] = pixels[:, g : g + 1].expand(-1, len(channels), -1, -1)
    return out


def visible_mean_baseline(
    image: torch.Tensor, masked: torch.Tensor, valid: torch.Tensor | None
) -> torch.Tensor:
    """Per tile and band, the mean of the visible valid pixels, broadcast to the image.

    Args:
        image: (B, C, H, W) normalized tiles.
        masked: (B, C, H, W) bool, True at masked pixels.
        valid: (B, 1, H, W) bool, or None when every pixel is valid.

    Returns:
        (B, C, H, W): each pixel set to its band's visible mean (0 where a band has no
        visible valid pixel in the tile).
    """
    visible = ~masked
    if valid is not None:
        visible = visible & valid
    weight = visible.to(image.dtype)  # (B, C, H, W)
    count = weight.sum(dim=(2, 3))  # (B, C)
    total = (image * weight).sum(dim=(2, 3))  # (B, C)
    mean = torch.where(count > 0, total / count.clamp(min=1.0), torch.zeros_like(total))
    return mean[..., None, None].expand_as(image)  # (B, C, H, W)


def _psnr(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over tiles of ``10 log10(range^2 / MSE)`` on the weighted pixels; (B, C, H, W)."""
    count = weight.sum(dim=(1, 2, 3))  # (B,)
    keep = count > 0
    mse = (((pred - target) ** 2) * weight).sum(dim=(1, 2, 3)) / count.clamp(min=1.0)  # (B,)
    big = torch.finfo(target.dtype).max
    hi = torch.where(weight > 0, target, torch.full_like(target, -big)).amax(dim=(1, 2, 3))
    lo = torch.where(weight > 0, target, torch.full_like(target, big)).amin(dim=(1, 2, 3))
    peak = (hi - lo).clamp(min=_EPS)  # (B,)
    psnr = 10.0 * torch.log10(peak**2 / mse.clamp(min=_EPS))  # (B,)
    if not bool(keep.any()):
        return torch.full((), float("nan"), device=target.device)
    return psnr[keep].mean()


@torch.no_grad()
def reconstruction_quality(
    model: ChannelMAE,
    image: torch.Tensor,
    valid: torch.Tensor | None,
    out: MAEOutput,
) -> ReconQuality:
    """Score ``out`` (the MAE's output for ``image``) against the trivial baseline.

    Args:
        model: the MAE that produced ``out``.
        image: (B, C, H, W) the normalized input.
        valid: (B, 1, H, W) bool validity, or None.
        out: :class:`MAEOutput` of ``model(image, valid)``.

    Returns:
        :class:`ReconQuality` of the batch.
    """
    image = image.float()
    if valid is not None:
        valid = valid if valid.dtype == torch.bool else valid != 0
        image = torch.where(valid, image, torch.zeros((), device=image.device))
    recon = model.reconstruct(out.pred.float(), image=image, valid=valid)  # (B, C, H, W)
    masked = masked_pixels(model, out.mask, (image.shape[2], image.shape[3]))  # (B, C, H, W)
    scored = masked if valid is None else masked & valid
    weight = scored.to(image.dtype)  # (B, C, H, W)
    baseline = visible_mean_baseline(image, masked, valid)  # (B, C, H, W)
    pred_vals, true_vals = recon[scored], image[scored]  # (n,)
    nan = torch.full((), float("nan"), device=image.device)
    return ReconQuality(
        psnr=_psnr(recon, image, weight),
        psnr_baseline=_psnr(baseline, image, weight),
        pred_std=pred_vals.std() if pred_vals.numel() > 1 else nan,
        target_std=true_vals.std() if true_vals.numel() > 1 else nan,
    )
