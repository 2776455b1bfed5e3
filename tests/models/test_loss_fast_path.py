"""The all-valid fast path of the MAE loss gives the same numbers as the weighted path."""

import pytest
import torch

from geomae.models.loss import masked_mse, patch_stats


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("groups", ["single", "satmae", "per-band"])
def test_loss_without_valid_equals_all_valid_mask(make_mae, image12, groups):
    mae = make_mae(groups=groups)
    all_valid = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    fast = mae(image12, None, generator=_gen(3))
    weighted = mae(image12, all_valid, generator=_gen(3))
    assert torch.equal(fast.mask, weighted.mask)
    assert torch.equal(fast.pred, weighted.pred)
    assert fast.loss.item() == pytest.approx(weighted.loss.item(), rel=1e-6)
    fast.loss.backward()
    grads = [p.grad.clone() for p in mae.parameters()]
    mae.zero_grad()
    weighted.loss.backward()
    for g_fast, p in zip(grads, mae.parameters(), strict=True):
        torch.testing.assert_close(g_fast, p.grad, rtol=1e-5, atol=1e-7)


def test_prediction_layout_pads_only_when_needed(make_mae, image12):
    single = make_mae(groups="single")
    head_out = torch.randn(2, 16, 64 * 12, generator=_gen(1))
    assert single._pad([head_out]) is head_out  # one group: already (B, L, P*Cmax)
    satmae = make_mae(groups="satmae")  # groups of 4, 4, 2, 2 bands
    preds = [torch.randn(2, 16, 64 * c, generator=_gen(c)) for c in (4, 4, 2, 2)]
    packed = satmae._pad(preds).view(2, 4, 16, 64, 4)  # (B, G, L, P, Cmax)
    for g, pred in enumerate(preds):
        c = pred.shape[-1] // 64
        assert torch.equal(packed[:, g, :, :, :c], pred.view(2, 16, 64, c))
        assert not packed[:, g, :, :, c:].any()


@pytest.mark.parametrize("shape", [(3, 5, 16, 4), (2, 4, 1, 1), (2, 4, 1, 3)])
def test_patch_stats_without_weight_match_unit_weights(shape):
    patches = torch.randn(*shape, generator=_gen(4))
    ones = torch.ones(*shape[:3], 1)
    mean_w, std_w = patch_stats(patches, ones)
    mean, std = patch_stats(patches, None)
    torch.testing.assert_close(mean, mean_w)
    torch.testing.assert_close(std, std_w)
    assert mean.shape == std.shape == (shape[0], shape[1], 1, 1)
    if shape[2] * shape[3] == 1:  # a single value: variance 0, std sqrt(eps)
        assert torch.allclose(std, torch.full_like(std, 1e-3))


def test_masked_mse_per_token_weights_equal_per_pixel_weights():
    pred = [
        torch.randn(2, 6, 16, 4, generator=_gen(5)),
        torch.randn(2, 6, 16, 2, generator=_gen(6)),
    ]
    target = [torch.randn_like(p) for p in pred]
    token = [(torch.rand(2, 6, 1, 1, generator=_gen(7 + i)) > 0.5).float() for i in range(2)]
    per_pixel = [t.expand(2, 6, 16, 1).contiguous() for t in token]
    expected = sum(
        ((p - t) ** 2 * w).sum() for p, t, w in zip(pred, target, per_pixel, strict=True)
    )
    expected = expected / sum(w.sum() * p.shape[-1] for p, w in zip(pred, per_pixel, strict=True))
    got_token = masked_mse(pred, target, token)
    got_pixel = masked_mse(pred, target, per_pixel)
    assert got_token.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got_pixel.item() == pytest.approx(expected.item(), rel=1e-6)
