import pytest
import timm
import torch

import geomae.models  # noqa: F401  (registers the timm models)
from geomae.bands import L2A_BANDS
from geomae.errors import BandError, ConfigError
from geomae.models import ChannelViT
from geomae.models.patch_embed import GroupPatchEmbed


def test_attributes_and_fused_attention(make_vit):
    vit = make_vit()
    assert vit.bands == list(L2A_BANDS)
    assert len(vit.groups) == 4
    assert vit.grid_size == (4, 4)
    assert vit.num_features == vit.embed_dim == 32
    assert vit.num_prefix_tokens == 1
    assert vit.patch_size == 8
    assert all(block.attn.fused_attn for block in vit.blocks)
    # fixed embeddings are not in the state dict, learned ones are
    state = vit.state_dict()
    assert "pos_embed" not in state and "spectral_embed" not in state
    assert state["group_embed"].shape == (4, 32)


@pytest.mark.parametrize(("groups", "g"), [("single", 1), ("satmae", 4), ("per-band", 12)])
def test_forward_features_and_head_shapes(image12, groups, g, make_vit):
    vit = make_vit(groups)
    feats = vit.forward_features(image12)
    assert feats.shape == (2, 1 + g * 16, 32)
    pooled = vit.forward_head(feats, pre_logits=True)
    assert torch.equal(pooled, feats[:, 0])
    assert vit(image12).shape == (2, 32)  # num_classes=0: identity head


def test_tokens_are_group_major_sums_of_embeddings(image12, make_vit):
    vit = make_vit("satmae")
    with torch.no_grad():
        vit.group_embed.normal_()
        tokens = vit.tokenize(image12).view(2, 4, 16, 32)  # (B, G, L, D)
        # group 2 is B11, B12 = channels 10, 11
        conv = vit.patch_embed.projs[2](image12[:, 10:12]).flatten(2).transpose(1, 2)
        expected = conv + vit.pos_embed[0] + vit.spectral_embed[2] + vit.group_embed[2]
    assert torch.allclose(tokens[:, 2], expected, atol=1e-6)


def test_group_patch_embed_non_contiguous_channels(image12):
    embed = GroupPatchEmbed(group_channels=[[1, 2, 3, 7], [0]], patch_size=8, embed_dim=16)
    out = embed(image12)
    assert out.shape == (2, 2, 16, 16)
    ref = embed.projs[0](image12[:, [1, 2, 3, 7]]).flatten(2).transpose(1, 2)
    assert torch.allclose(out[:, 0], ref, atol=1e-6)


def test_reset_classifier_and_pooling(image12, make_vit):
    vit = make_vit()
    vit.reset_classifier(5)
    assert vit(image12).shape == (2, 5)
    assert vit.num_classes == 5
    vit.reset_classifier(0, global_pool="avg")
    feats = vit.forward_features(image12)
    assert torch.allclose(vit(image12), feats[:, 1:].mean(1), atol=1e-6)
    with pytest.raises(ConfigError, match="global_pool"):
        vit.reset_classifier(3, global_pool="max")


def test_forward_intermediates_average_groups(image12, make_vit):
    vit = make_vit("satmae")
    captured = []
    hook = vit.blocks[0].register_forward_hook(lambda m, a, out: captured.append(out))
    final, maps = vit.forward_intermediates(image12, indices=[0, -1])
    hook.remove()
    assert final.shape == (2, 1 + 64, 32)
    assert torch.allclose(final, vit.forward_features(image12), atol=1e-5)
    assert [m.shape for m in maps] == [(2, 32, 4, 4)] * 2
    # block 0 map = mean over the 4 groups of its patch tokens, as (B, D, gh, gw)
    tokens = captured[0][:, 1:].reshape(2, 4, 16, 32).mean(1)  # (B, L, D)
    expected = tokens.reshape(2, 4, 4, 32).permute(0, 3, 1, 2)
    assert torch.allclose(maps[0], expected, atol=1e-6)


def test_forward_intermediates_options(image12, make_vit):
    vit = make_vit("per-band")
    maps = vit.forward_intermediates(image12, indices=1, intermediates_only=True, output_fmt="NLC")
    assert len(maps) == 1 and maps[0].shape == (2, 16, 32)
    pairs = vit.forward_intermediates(
        image12, indices=[0], return_prefix_tokens=True, norm=True, intermediates_only=True
    )
    spatial, prefix = pairs[0]
    assert spatial.shape == (2, 32, 4, 4) and prefix.shape == (2, 1, 32)
    # normed tokens have ~zero mean over the channel dim
    assert prefix.mean(-1).abs().max() < 1e-4
    with pytest.raises(ConfigError, match=r"cannot take blocks \[5\] of 2: .*out of range"):
        vit.forward_intermediates(image12, indices=[5])
    with pytest.raises(ConfigError, match="cannot take blocks 3 of 2"):
        vit.forward_intermediates(image12, indices=3)


def test_wrong_channel_count_is_a_band_error(make_vit):
    vit = make_vit()
    with pytest.raises(BandError, match=r"expects 12 channels in band order \['B01'.*got 3"):
        vit(torch.zeros(1, 3, 32, 32))


def test_size_not_divisible_by_patch(make_vit):
    vit = make_vit()
    with pytest.raises(ConfigError, match="30x32 must be positive and divisible by the patch size"):
        vit(torch.zeros(1, 12, 30, 32))
    with pytest.raises(ConfigError, match="divisible by the patch size 8"):
        make_vit(img_size=36)


def test_other_image_size_matches_set_img_size_and_fresh_model(make_vit):
    vit = make_vit("satmae", img_size=64)
    x = torch.randn(1, 12, 128, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        dynamic = vit.forward_features(x)
        assert dynamic.shape == (1, 1 + 4 * 256, 32)
        vit.set_img_size(128)
        assert vit.grid_size == (16, 16) and vit.pos_embed.shape == (1, 256, 32)
        stored = vit.forward_features(x)
        fresh = make_vit("satmae", img_size=128)
        fresh.load_state_dict(vit.state_dict(), strict=True)
        rebuilt = fresh.forward_features(x)
    assert torch.allclose(dynamic, stored, atol=1e-5)
    assert torch.allclose(dynamic, rebuilt, atol=1e-5)


def test_select_bands_rgb_from_12(make_vit):
    vit = make_vit("satmae")
    with torch.no_grad():
        vit.group_embed.normal_()
    rgb = vit.select_bands(["B04", "B03", "B02"])
    assert rgb.bands == ["B04", "B03", "B02"]
    assert rgb.groups == [["B02", "B03", "B04"]]
    # the group keeps its original wavelength and learned embedding
    assert rgb.group_wavelengths == [vit.group_wavelengths[0]]
    assert torch.equal(rgb.group_embed, vit.group_embed[:1])
    # conv weight: channels B02, B03, B04 of the 4-band group, scaled by 4/3
    old = vit.patch_embed.projs[0].weight  # (D, 4, p, p): B02 B03 B04 B08
    assert torch.allclose(rgb.patch_embed.projs[0].weight, old[:, :3] * 4 / 3)
    assert torch.equal(rgb.patch_embed.projs[0].bias, vit.patch_embed.projs[0].bias)
    # transformer weights are copied, not re-initialized
    for key, value in vit.blocks.state_dict().items():
        assert torch.equal(rgb.blocks.state_dict()[key], value)
    assert torch.equal(rgb.cls_token, vit.cls_token)
    assert rgb(torch.zeros(2, 3, 32, 32)).shape == (2, 32)
    # the new model shares no storage with the old one
    with torch.no_grad():
        rgb.cls_token.add_(1)
    assert not torch.equal(rgb.cls_token, vit.cls_token)


def test_select_bands_full_groups_give_identical_tokens(image12, make_vit):
    vit = make_vit("satmae")
    with torch.no_grad():
        vit.group_embed.normal_()
    sub_bands = ["B11", "B02", "B03", "B04", "B08", "B12"]  # groups 0 and 2 complete
    sub = vit.select_bands(sub_bands)
    assert sub.groups == [["B02", "B03", "B04", "B08"], ["B11", "B12"]]
    x_sub = image12[:, [L2A_BANDS.index(b) for b in sub_bands]]
    with torch.no_grad():
        full_tokens = vit.tokenize(image12).view(2, 4, 16, 32)[:, [0, 2]]
        sub_tokens = sub.tokenize(x_sub).view(2, 2, 16, 32)
    assert torch.allclose(sub_tokens, full_tokens, atol=1e-6)


def test_select_bands_unknown_band(make_vit):
    vit = make_vit("satmae", bands=["B02", "B03", "B04"])
    with pytest.raises(BandError, match=r"\['B08'\] are not in this model"):
        vit.select_bands(["B02", "B08"])
    with pytest.raises(BandError, match="unknown Sentinel-2 band 'B77'"):
        vit.select_bands(["B77"])


def test_timm_create_model():
    model = timm.create_model(
        "geomae_vit_tiny_patch16",
        bands=["B02", "B03", "B04", "B08", "B05"],
        groups="satmae",
        img_size=32,
        num_classes=7,
    )
    assert isinstance(model, ChannelViT)
    assert model.embed_dim == 192 and len(model.blocks) == 12 and model.patch_size == 16
    assert model.groups == [["B02", "B03", "B04", "B08"], ["B05"]]
    assert model(torch.zeros(1, 5, 32, 32)).shape == (1, 7)
    assert timm.create_model("geomae_vit_small_patch8", img_size=16).bands == list(L2A_BANDS)


def test_timm_create_model_errors():
    with pytest.raises(ConfigError, match="pretrained=False"):
        timm.create_model("geomae_vit_tiny_patch16", pretrained=True, bands="rgb")
    with pytest.raises(ConfigError, match="in_chans=3 does not match the 4 bands"):
        timm.create_model("geomae_vit_tiny_patch16", bands="rgbn", in_chans=3, img_size=32)


def test_timm_interface_group_matcher_and_layer_decay(make_vit):
    from timm.optim import create_optimizer_v2

    vit = make_vit()
    matcher = vit.group_matcher()
    assert set(matcher) == {"stem", "blocks", "head"}
    # timm's layer-decay factory gives the stem depth 0, block i depth i + 1 and the
    # final norm with the classifier depth + 1 (full lr), as MAE's fine-tuning does
    opt = create_optimizer_v2(vit, "adamw", lr=1.0, weight_decay=0.05, layer_decay=0.5)
    depth = vit.depth
    scale_of = {id(p): g["lr_scale"] for g in opt.param_groups for p in g["params"]}
    params = dict(vit.named_parameters())
    assert scale_of[id(params["cls_token"])] == 0.5 ** (depth + 1)
    assert scale_of[id(params["blocks.0.attn.qkv.weight"])] == 0.5**depth
    assert scale_of[id(params[f"blocks.{depth - 1}.mlp.fc2.weight"])] == 0.5
    assert scale_of[id(params["norm.weight"])] == 1.0
    assert set(scale_of.values()) == {0.5 ** (depth + 1 - i) for i in range(depth + 2)}
    # the no-weight-decay hook reaches timm: cls and group embeddings are not decayed
    names = {id(p): n for n, p in vit.named_parameters()}
    undecayed = {
        names[id(p)] for g in opt.param_groups if g["weight_decay"] == 0 for p in g["params"]
    }
    assert {"cls_token", "group_embed"} <= undecayed
    assert vit.get_classifier() is vit.head


def test_grad_checkpointing_gives_the_same_gradients(image12, make_vit):
    torch.manual_seed(0)
    vit = make_vit()
    vit.train()
    vit(image12).sum().backward()
    plain = {n: p.grad.clone() for n, p in vit.named_parameters() if p.grad is not None}
    vit.zero_grad()
    vit.set_grad_checkpointing(True)
    assert vit.grad_checkpointing
    vit(image12).sum().backward()
    for name, grad in plain.items():
        torch.testing.assert_close(dict(vit.named_parameters())[name].grad, grad)


def test_prune_intermediate_layers_keeps_the_taken_features(image12, make_vit):
    vit = make_vit()
    vit.eval()
    full = vit.forward_intermediates(image12, indices=[0], intermediates_only=True)
    take = vit.prune_intermediate_layers(indices=[0])
    assert take == [0] and len(vit.blocks) == 1 and vit.depth == 1
    pruned = vit.forward_intermediates(image12, indices=[0], intermediates_only=True)
    torch.testing.assert_close(pruned[0], full[0])
