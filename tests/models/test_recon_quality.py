"""Masked-patch PSNR and its trivial baseline (geomae.models.recon_quality)."""

import math

import pytest
import torch

from geomae.models import ChannelMAE
from geomae.models.recon_quality import (
    masked_pixels,
    reconstruction_quality,
    visible_mean_baseline,
)

BANDS = ["B02", "B03", "B04", "B08", "B11", "B12"]


def _mae(groups="satmae", masking="independent", norm_pix_loss=False) -> ChannelMAE:
    torch.manual_seed(0)
    return ChannelMAE.build(
        bands=BANDS,
        groups=groups,
        img_size=16,
        patch_size=4,
        embed_dim=16,
        depth=1,
        num_heads=2,
        decoder_embed_dim=16,
        decoder_depth=1,
        decoder_num_heads=2,
        masking=masking,
        norm_pix_loss=norm_pix_loss,
    )


def test_masked_pixels_follow_each_groups_tokens() -> None:
    model = _mae()  # groups: B02 B03 B04 B08 / B11 B12
    g, gh, gw = model.encoder.num_groups, 4, 4
    mask = torch.zeros(1, g * gh * gw)
    mask[0, 0] = 1.0  # group 0, patch (0, 0)
    mask[0, gh * gw + 5] = 1.0  # group 1, patch (1, 1)
    pix = masked_pixels(model, mask, (16, 16))  # (1, C, 16, 16)
    assert pix.shape == (1, 6, 16, 16)
    assert pix[0, :4, :4, :4].all() and pix[0, :4].sum() == 4 * 16
    assert pix[0, 4:, 4:8, 4:8].all() and pix[0, 4:].sum() == 2 * 16


def test_baseline_is_the_mean_of_visible_pixels_only() -> None:
    image = torch.zeros(1, 2, 4, 4)
    masked = torch.zeros(1, 2, 4, 4, dtype=torch.bool)
    masked[:, :, :2] = True  # top half masked
    image[:, 0, :2] = 1000.0  # masked pixels: must not leak into the baseline
    image[:, 0, 2:] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # visible rows 2 and 3
    image[:, 1, 2:] = 7.0
    valid = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    valid[:, :, 3, 3] = False  # an invalid visible pixel is left out too
    image[:, :, 3, 3] = -500.0
    base = visible_mean_baseline(image, masked, valid)
    # (1 + 2 + 3 + 4) + (1 + 2 + 3): pixel (3, 3) is nodata
    assert base[0, 0].unique().tolist() == [pytest.approx(16 / 7)]
    assert base[0, 1].unique().tolist() == [pytest.approx(7.0)]


def test_band_without_visible_pixels_falls_back_to_zero() -> None:
    image = torch.full((1, 1, 2, 2), 5.0)
    masked = torch.ones(1, 1, 2, 2, dtype=torch.bool)
    assert visible_mean_baseline(image, masked, None).abs().max() == 0


def _with_pred(model: ChannelMAE, image: torch.Tensor, recon: torch.Tensor):
    """Run the MAE for its mask, then swap in predictions of the given image."""
    torch.manual_seed(1)
    out = model(image)
    return out._replace(pred=model.patchify(recon))


def test_perfect_reconstruction_beats_baseline_and_flat_one_ties_it() -> None:
    model = _mae()
    torch.manual_seed(2)
    image = torch.randn(3, 6, 16, 16)
    perfect = reconstruction_quality(model, image, None, _with_pred(model, image, image))
    assert perfect.psnr > perfect.psnr_baseline + 50  # MSE clamps at 1e-12
    assert perfect.pred_std == pytest.approx(float(perfect.target_std), rel=1e-5)

    out = _with_pred(model, image, image)
    masked = masked_pixels(model, out.mask, (16, 16))
    flat = visible_mean_baseline(image, masked, None)
    same = reconstruction_quality(model, image, None, out._replace(pred=model.patchify(flat)))
    assert float(same.psnr) == pytest.approx(float(same.psnr_baseline), abs=1e-4)
    assert same.pred_std < 0.5 * same.target_std  # the collapse diagnostic sees it


def test_nodata_pixels_are_not_scored() -> None:
    model = _mae(groups="single", masking="consistent")
    torch.manual_seed(3)
    image = torch.randn(2, 6, 16, 16)
    valid = torch.ones(2, 1, 16, 16, dtype=torch.bool)
    valid[:, :, :8] = False
    wrong = image.clone()
    wrong[:, :, :8] += 100.0  # errors only where there is no data
    q = reconstruction_quality(model, image, valid, _with_pred(model, image, wrong))
    assert q.psnr > 100  # the invalid half does not count


def test_norm_pix_models_are_mapped_back_with_patch_stats() -> None:
    model = _mae(norm_pix_loss=True)
    torch.manual_seed(4)
    image = torch.randn(2, 6, 16, 16)
    out = model(image)
    q = reconstruction_quality(model, image, None, out)
    assert all(math.isfinite(float(v)) for v in q)
