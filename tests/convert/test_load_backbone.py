"""load_backbone: band subsets, image size, random init, timm round trip, registry, errors."""

import subprocess
import sys

import pytest
import timm
import torch
from convert_helpers import STATS, make_mae, metadata_of, save_checkpoint

import geomae
from geomae.convert import export_weights, load_backbone, mae_to_vit
from geomae.errors import BandError, CheckpointError, ConfigError
from geomae.models.pos_embed import sincos_2d
from geomae.weights import read_weights_file, write_weights


def _features(model, x):
    with torch.no_grad():
        return model.eval().forward_features(x)


def test_metadata_is_attached(exports, maes):
    model = load_backbone(exports["satmae"])
    meta = model.geomae_metadata
    assert meta.bands == model.bands == maes["satmae"].encoder.bands
    assert meta.groups == model.groups and meta.stats.bands == STATS.bands
    assert meta.img_size == 32 and meta.patch_size == 8 and meta.offset == 1000.0
    assert meta.arch == model.arch_kwargs()
    assert meta.extra["weights"] == "satmae.safetensors" and meta.extra["pretrained"] is True


def test_rgb_from_a_12_band_satmae_model(exports, maes):
    original = maes["satmae"].encoder
    model = load_backbone(exports["satmae"], bands="rgb")
    assert model.bands == ["B04", "B03", "B02"]  # the requested order
    assert model.groups == [["B02", "B03", "B04"]]  # groups without RGB dropped
    meta = model.geomae_metadata
    assert meta.bands == ["B04", "B03", "B02"] and meta.groups == [["B02", "B03", "B04"]]
    assert list(meta.stats.bands) == ["B04", "B03", "B02"]
    assert meta.stats.bands["B03"] == STATS.bands["B03"]
    assert meta.arch["group_wavelengths"] == original.group_wavelengths[:1]
    state = model.state_dict()
    # group 0 kept 3 of its 4 bands (B02 B03 B04 of B02 B03 B04 B08): sliced and rescaled
    expected = original.patch_embed.projs[0].weight[:, :3] * (4 / 3)
    assert torch.allclose(state["patch_embed.projs.0.weight"], expected)
    assert torch.equal(state["patch_embed.projs.0.bias"], original.patch_embed.projs[0].bias)
    assert torch.equal(state["group_embed"], original.group_embed[:1])
    assert torch.equal(state["blocks.1.mlp.fc2.weight"], original.blocks[1].mlp.fc2.weight)
    out = _features(model, torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 1 + 16, 32) and torch.isfinite(out).all()


def test_dropping_whole_groups_keeps_their_tokens_exact(exports, maes):
    # per-band model: selecting bands drops groups only, so the kept tokens before the
    # transformer are exactly the original ones
    original = maes["per-band"].encoder
    model = load_backbone(exports["per-band"], bands=["B08", "B11"])
    x = torch.randn(1, 12, 32, 32)
    with torch.no_grad():
        full = original.tokenize(x).view(1, 12, 16, 32)  # (B, G, L, D)
        kept = model.tokenize(x[:, [7, 10]]).view(1, 2, 16, 32)
    assert torch.allclose(kept, full[:, [7, 10]], atol=1e-6)


def test_a_band_the_weights_never_saw(tmp_path):
    mae = make_mae("satmae", bands=["B02", "B03", "B04", "B08"], seed=3)
    out = export_weights(
        save_checkpoint(mae, tmp_path / "rgbn.ckpt"), tmp_path / "rgbn.safetensors"
    )
    with pytest.raises(BandError) as err:
        load_backbone(out, bands=["B04", "B05", "B11"])
    msg = str(err.value)
    assert "band(s) ['B05', 'B11'] are not in the weights" in msg and str(out) in msg
    assert "trained on ['B02', 'B03', 'B04', 'B08']" in msg
    with pytest.raises(BandError, match="B99"):
        load_backbone(out, bands=["B02", "B99"])


def test_another_image_size(exports):
    model = load_backbone(exports["satmae"], img_size=64)
    out = _features(model, torch.randn(2, 12, 64, 64))
    assert out.shape == (2, 1 + 4 * 64, 32) and torch.isfinite(out).all()
    assert torch.equal(model.pos_embed[0], sincos_2d((8, 8), 32))
    assert model.geomae_metadata.img_size == 64
    with pytest.raises(ConfigError, match="divisible by the patch size 8"):
        load_backbone(exports["satmae"], img_size=60)


def test_random_init_keeps_architecture_and_metadata(exports):
    pretrained = load_backbone(exports["satmae"]).state_dict()
    torch.manual_seed(0)
    model = load_backbone(exports["satmae"], pretrained=False)
    state = model.state_dict()
    assert {k: v.shape for k, v in state.items()} == {k: v.shape for k, v in pretrained.items()}
    assert not torch.equal(
        state["blocks.0.attn.qkv.weight"], pretrained["blocks.0.attn.qkv.weight"]
    )
    assert model.geomae_metadata.extra["pretrained"] is False
    assert model.geomae_metadata.stats.bands == STATS.bands


def test_head_pool_and_drop_path(exports):
    model = load_backbone(exports["satmae"], num_classes=5, global_pool="avg", drop_path_rate=0.1)
    assert model.global_pool == "avg" and model.drop_path_rate == 0.1
    assert model(torch.randn(2, 12, 32, 32)).shape == (2, 5)
    assert model.geomae_metadata.arch["num_classes"] == 5


def test_timm_target_maps_back_to_the_group_embedding(exports, maes, x):
    assert read_weights_file(exports["single"])[2] == "timm"
    model = load_backbone(exports["single"])
    original = maes["single"].encoder
    assert (model.group_embed - original.group_embed).abs().max() < 1e-6
    for key, value in original.state_dict().items():
        if key != "group_embed":
            assert torch.equal(model.state_dict()[key], value), key
    assert (_features(model, x) - _features(original, x)).abs().max() <= 1e-5


def test_a_learned_position_embedding_is_refused(exports, tmp_path):
    tensors, meta, _ = read_weights_file(exports["single"])
    tensors["pos_embed"] = tensors["pos_embed"] + 0.01 * torch.randn_like(tensors["pos_embed"])
    path, _ = write_weights(tmp_path / "learned.safetensors", tensors, meta, target="timm")
    with pytest.raises(CheckpointError, match="pos_embed is not geomae's fixed 2-D sin-cos"):
        load_backbone(path)


def test_weights_that_do_not_fit_are_refused(exports, tmp_path):
    tensors, meta, _ = read_weights_file(exports["satmae"])
    del tensors["blocks.1.norm1.weight"]
    tensors["patch_embed.projs.3.bias"] = torch.zeros(33)
    path, _ = write_weights(tmp_path / "broken.safetensors", tensors, meta, target="geomae")
    with pytest.raises(CheckpointError) as err:
        load_backbone(path)
    msg = str(err.value)
    assert f"weights {path}" in msg and "missing keys [blocks.1.norm1.weight]" in msg
    assert "patch_embed.projs.3.bias: (33,) vs expected (32,)" in msg


def test_a_checkpoint_loads_directly(checkpoints, maes, x):
    model = load_backbone(checkpoints["per-band"], bands="10m")
    assert model.bands == ["B02", "B03", "B04", "B08"]
    full = load_backbone(checkpoints["per-band"])
    assert (_features(full, x) - _features(maes["per-band"].encoder, x)).abs().max() <= 1e-5


def test_real_checkpoint_loads_directly(real_checkpoint, x):
    path, task = real_checkpoint
    model = load_backbone(path)
    assert model.geomae_metadata.extra["source_checkpoint"] == path.name
    assert (_features(model, x) - _features(task.model.encoder, x)).abs().max() <= 1e-5


def test_bf16_weights(maes, tmp_path, x):
    mae = maes["single"]
    state = {k: v.to(torch.bfloat16) for k, v in mae.state_dict().items()}
    meta = metadata_of(mae)
    tensors = mae_to_vit(state, meta, target="timm")
    from geomae.convert import vit_metadata

    path, _ = write_weights(
        tmp_path / "bf16.safetensors", tensors, vit_metadata(meta, target="timm"), target="timm"
    )
    model = load_backbone(path)  # the pos_embed check allows bf16 rounding
    assert model.cls_token.dtype == torch.float32
    assert (_features(model, x) - _features(mae.encoder, x)).abs().max() < 0.1


# ---- package and registry ------------------------------------------------------------
def test_import_geomae_exposes_load_backbone_and_registers_timm_models():
    assert geomae.load_backbone is load_backbone
    code = (
        "import geomae, timm; "
        "m = timm.create_model('geomae_vit_tiny_patch16', bands='rgb', img_size=32); "
        "print(type(m).__name__, 'load_backbone' in dir(geomae))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["ChannelViT", "True"]


def test_timm_registry_loads_a_geomae_export(exports):
    model = timm.create_model(
        "geomae_vit_tiny_patch8",
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(exports["satmae"])),
        embed_dim=32,
        depth=2,
        num_heads=2,
        bands="rgbn",
        num_classes=3,
    )
    direct = load_backbone(exports["satmae"], bands="rgbn")
    assert model.bands == direct.bands and model.num_classes == 3
    state = model.state_dict()
    for key, value in direct.state_dict().items():
        assert torch.equal(state[key], value), key
    assert model.geomae_metadata.bands == ["B04", "B03", "B02", "B08"]


def test_timm_registry_checks_the_architecture(exports):
    overlay = dict(file=str(exports["satmae"]))
    kw = dict(pretrained=True, pretrained_cfg_overlay=overlay, embed_dim=32, depth=2, num_heads=2)
    with pytest.raises(CheckpointError, match="patch_size: requested 16, file 8"):
        timm.create_model("geomae_vit_tiny_patch16", **kw)
    with pytest.raises(CheckpointError, match="embed_dim: requested 192, file 32"):
        timm.create_model("geomae_vit_tiny_patch8", pretrained=True, pretrained_cfg_overlay=overlay)
    with pytest.raises(CheckpointError, match="groups: requested"):
        timm.create_model("geomae_vit_tiny_patch8", groups="per-band", **kw)
    with pytest.raises(ConfigError, match=r"\['foo'\] cannot be applied to pretrained weights"):
        timm.create_model("geomae_vit_tiny_patch8", foo=1, **kw)
    with pytest.raises(ConfigError, match="pretrained_cfg_overlay=dict"):
        timm.create_model("geomae_vit_tiny_patch8", pretrained=True)
