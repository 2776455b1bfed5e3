import json

import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.errors import BandError, ConfigError
from geomae.models import ChannelMAE, MAEOutput, patchify, unpatchify

# 12 bands, 32 px tiles, patch 8: L = 16 patches per group.
# Visible tokens at mask ratio 0.75 (see geomae.models.masking for the rule):
#   single   (G=1):  consistent/independent/spectral keep round(16 * 0.25) = 4 of 16
#   satmae   (G=4):  consistent/independent keep 4 per group = 16 of 64;
#                    spectral drops 3 groups and keeps all 16 patches of the 4th = 16
#   per-band (G=12): consistent/independent keep 4 x 12 = 48 of 192;
#                    spectral drops 9 groups, keeps 3 x 16 = 48
GROUPS = {"single": 1, "satmae": 4, "per-band": 12}
VISIBLE = {"single": 4, "satmae": 16, "per-band": 48}
CMAX = {"single": 12, "satmae": 4, "per-band": 1}  # largest group: pred channels per token
STRATEGIES = ("consistent", "independent", "spectral")


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("masking", STRATEGIES)
@pytest.mark.parametrize("groups", list(GROUPS))
def test_encoder_sees_only_visible_tokens(make_mae, image12, groups, masking):
    mae = make_mae(groups=groups, masking=masking)
    g, n_vis = GROUPS[groups], VISIBLE[groups]
    seen = []
    hook = mae.encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    out = mae(image12, generator=_gen())
    hook.remove()
    assert isinstance(out, MAEOutput)
    assert mae.num_visible() == n_vis
    assert [t.shape for t in seen] == [(2, 1 + n_vis, 32)]
    # the mask has the documented ratio, in every sample
    assert out.mask.shape == (2, g * 16)
    assert torch.all(out.mask.sum(1) == g * 16 - n_vis)
    per_group = out.mask.view(2, g, 16)
    if masking == "consistent":
        assert torch.equal(per_group, per_group[:, :1].expand_as(per_group))
    if masking == "spectral" and g > 1:
        # whole groups are dropped; the others are fully visible at this ratio
        assert set(per_group.sum(-1).unique().tolist()) == {0.0, 16.0}
    assert out.pred.shape == (2, g * 16, 8 * 8 * CMAX[groups])
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    grads = [p.grad for p in mae.encoder.blocks.parameters()]
    assert all(gr is not None and torch.isfinite(gr).all() for gr in grads)
    assert any(gr.abs().sum() > 0 for gr in grads)


def test_all_parameters_receive_gradients(make_mae, image12):
    mae = make_mae(groups="satmae", masking="consistent")
    mae(image12, generator=_gen()).loss.backward()
    missing = [n for n, p in mae.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert missing == []


def test_visible_tokens_gathered_by_index(make_mae, image12):
    mae = make_mae(groups="satmae")
    seen = []
    hook = mae.encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    out = mae(image12, generator=_gen(5))
    hook.remove()
    tokens = mae.encoder.tokenize(image12)  # (B, N, D)
    visible = (out.mask == 0).nonzero()  # ascending token order per sample
    expected = tokens[visible[:, 0], visible[:, 1]].view(2, 16, 32)
    assert torch.allclose(seen[0][:, 1:], expected, atol=1e-6)
    assert torch.allclose(seen[0][:, 0], mae.encoder.cls_token[0].expand(2, -1))


def test_mask_ratio_override(make_mae, image12):
    mae = make_mae(groups="single")
    out = mae(image12, mask_ratio=0.5, generator=_gen())
    assert out.mask.sum(1).tolist() == [8.0, 8.0]
    assert mae.num_visible(mask_ratio=0.5) == 8
    with pytest.raises(ConfigError, match="mask_ratio"):
        mae(image12, mask_ratio=1.0)


def _reference_loss(mae, image, valid, out):
    """Loop-by-loop masked MSE with per-patch normalized targets over valid pixels."""
    p, cmax = 8, mae.max_group_size
    groups = mae.encoder.groups
    pred = out.pred.view(2, len(groups), 16, p * p, cmax)
    errors = []
    for b in range(2):
        for g, group in enumerate(groups):
            chans = [L2A_BANDS.index(band) for band in group]
            pix = patchify(image[b : b + 1, chans], p)[0].view(16, p * p, len(chans))
            ok = patchify(valid[b : b + 1].float(), p)[0].bool()  # (16, P)
            for k in range(16):
                if out.mask[b, g * 16 + k] == 0 or not ok[k].any():
                    continue
                values = pix[k][ok[k]]  # (n_valid, C_g)
                target = (values - values.mean()) / (values.var() + 1e-6).sqrt()
                errors.append(((pred[b, g, k, :, : len(chans)][ok[k]] - target) ** 2).flatten())
    return torch.cat(errors).mean()


def test_loss_matches_reference_with_nodata(make_mae, image12):
    mae = make_mae(groups="satmae")
    valid = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    valid[0, :, :20, :13] = False  # patches partly and fully invalid
    valid[1, :, 5:7, :] = False
    image = image12.masked_fill(~valid, 0.0)
    out = mae(image, valid, generator=_gen(2))
    reference = _reference_loss(mae, image, valid, out)
    assert out.loss.item() == pytest.approx(reference.item(), rel=1e-5)


def test_nodata_values_do_not_change_the_loss(make_mae, image12):
    mae = make_mae(groups="per-band", masking="independent")
    valid = torch.rand(2, 1, 32, 32, generator=_gen(1)) > 0.3
    zeros = image12.masked_fill(~valid, 0.0)
    garbage = image12.masked_fill(~valid, 1e30)
    garbage[0, 3].masked_fill_(~valid[0, 0], float("nan"))
    loss_zeros = mae(zeros, valid, generator=_gen(7)).loss
    loss_garbage = mae(garbage, valid, generator=_gen(7)).loss
    assert torch.isfinite(loss_garbage)
    assert loss_garbage.item() == pytest.approx(loss_zeros.item(), rel=1e-6)
    # the valid mask does matter: treating the zeros as data changes the loss
    loss_all_valid = mae(zeros, None, generator=_gen(7)).loss
    assert abs(loss_all_valid.item() - loss_zeros.item()) > 1e-4


def test_no_valid_masked_pixel_gives_zero_loss_with_graph(make_mae, image12):
    mae = make_mae(groups="satmae")
    valid = torch.zeros(2, 1, 32, 32, dtype=torch.bool)
    out = mae(image12, valid, generator=_gen())
    assert out.loss.item() == 0.0
    assert out.loss.requires_grad
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in mae.parameters() if p.grad is not None)
    # nothing masked at all: also 0, not NaN
    out = mae(image12, mask_ratio=0.0)
    assert out.loss.item() == 0.0 and out.loss.requires_grad


def test_loss_without_norm_pix_is_plain_mse(make_mae, image12):
    mae = make_mae(groups="single", norm_pix_loss=False)
    out = mae(image12, generator=_gen())
    target = mae.patchify(image12)  # (B, L, P*C), single group: no padding
    err = ((out.pred - target) ** 2).mean(-1)  # (B, L)
    expected = (err * out.mask).sum() / out.mask.sum()
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-5)


def test_patchify_unpatchify_round_trip(make_mae, image12):
    x = torch.randn(2, 5, 24, 16)
    patches = patchify(x, 8)
    assert patches.shape == (2, 6, 8 * 8 * 5)
    assert torch.equal(patches[0, 1, :5], x[0, :, 0, 8])  # patch (0, 1), pixel (0, 0), channels
    assert torch.equal(unpatchify(patches, 8, (3, 2)), x)
    for groups in GROUPS:
        mae = make_mae(groups=groups)
        packed = mae.patchify(image12)
        assert packed.shape == (2, GROUPS[groups] * 16, 64 * mae.max_group_size)
        assert torch.equal(mae.unpatchify(packed), image12)


def test_reconstruct_undoes_patch_normalization(make_mae, image12):
    mae = make_mae(groups="satmae")
    valid = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    valid[1, :, 8:12, :] = False
    image = image12.masked_fill(~valid, 0.0)
    # predictions equal to the normalized targets reconstruct the image at valid pixels
    p, cmax = 8, mae.max_group_size
    target = mae.patchify(image).view(2, 4, 16, p * p, cmax)
    w = patchify(valid.float(), p).view(2, 1, 16, p * p, 1)
    normed = torch.zeros_like(target)
    for g, group in enumerate(mae.encoder.groups):
        c = len(group)
        t = target[:, g, :, :, :c]  # (B, L, P, C_g)
        n = w[:, 0].sum((2, 3), keepdim=True) * c
        mean = (t * w[:, 0]).sum((2, 3), keepdim=True) / n.clamp(min=1)
        var = ((t - mean) ** 2 * w[:, 0]).sum((2, 3), keepdim=True) / (n - 1).clamp(min=1)
        normed[:, g, :, :, :c] = (t - mean) / (var + 1e-6).sqrt()
    recon = mae.reconstruct(normed.view(2, 64, -1), image=image, valid=valid)
    assert recon.shape == image.shape
    assert torch.allclose(recon[valid.expand_as(image)], image[valid.expand_as(image)], atol=1e-4)


def test_mae_at_other_image_size(make_mae):
    mae = make_mae(groups="satmae", img_size=64)
    seen = []
    mae.encoder.blocks[0].register_forward_pre_hook(lambda m, args: seen.append(args[0].shape[1]))
    x = torch.randn(1, 12, 128, 128, generator=_gen())
    out = mae(x, generator=_gen())
    assert out.mask.shape == (1, 4 * 256)
    assert seen == [1 + mae.num_visible(img_size=128)] and seen[0] == 1 + 4 * 64
    assert mae.reconstruct(out.pred, image=x).shape == x.shape


def test_arch_kwargs_rebuild_same_model(make_mae, image12):
    groups = [["B04", "B03", "B02"], "B08,B05,B06,B07,B8A", ["B01", "B09", "B11", "B12"]]
    mae = make_mae(groups=groups)
    kwargs = json.loads(json.dumps(mae.arch_kwargs()))
    assert kwargs["groups"][0] == ["B04", "B03", "B02"]
    assert kwargs["embed_dim"] == 32 and kwargs["decoder_depth"] == 1
    clone = ChannelMAE.build(**kwargs)
    clone.load_state_dict(mae.state_dict(), strict=True)
    a = mae(image12, generator=_gen(3))
    b = clone(image12, generator=_gen(3))
    assert torch.equal(a.mask, b.mask)
    assert torch.allclose(a.pred, b.pred, atol=1e-6)


def test_size_presets_and_init(make_mae):
    mae = ChannelMAE.build(bands="rgbn", size="small", depth=1, img_size=16, patch_size=8)
    assert (mae.encoder.embed_dim, mae.encoder.num_heads, len(mae.encoder.blocks)) == (384, 6, 1)
    assert mae.arch_kwargs()["size"] == "small"
    assert mae.encoder.groups == [["B04", "B03", "B02", "B08"]]  # band order kept
    # MAE-style init: normal(0.02) tokens, zero learned group embeddings, xavier linears
    assert 0.01 < mae.decoder.mask_token.std().item() < 0.03
    assert torch.count_nonzero(mae.encoder.group_embed) == 0
    w = mae.encoder.blocks[0].attn.qkv.weight
    bound = (6 / (w.shape[0] + w.shape[1])) ** 0.5
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound


def test_bad_configuration_errors(make_mae, image12):
    with pytest.raises(ConfigError, match="unknown masking strategy 'random'"):
        make_mae(masking="random")
    with pytest.raises(ConfigError, match="unknown model size 'giant'"):
        make_mae(size="giant")
    with pytest.raises(ConfigError, match="decoder embed_dim=30 is not divisible"):
        make_mae(decoder_embed_dim=30, decoder_num_heads=4)
    mae = make_mae()
    with pytest.raises(BandError, match="expects 12 channels"):
        mae(image12[:, :4])
    with pytest.raises(ConfigError, match=r"valid must have shape \(B, 1, H, W\)"):
        mae(image12, torch.ones(2, 32, 32, dtype=torch.bool))
