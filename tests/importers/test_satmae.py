"""satmae import: parity with a reference forward of SatMAE's architecture, checkpoints."""

import logging

import pytest
import torch
from importer_helpers import features
from satmae_reference import make_satmae_state, satmae_forward_features, save_satmae_checkpoint

from geomae.convert import load_backbone, read_weights_metadata
from geomae.errors import BandError, CheckpointError
from geomae.importers import ImportOptions, import_weights
from geomae.importers.satmae import SATMAE_BANDS, SATMAE_GROUPS

TOL = 1e-5
OPTS = ImportOptions(normalization="scale:10000", num_heads=4, level="L1C")


@pytest.fixture(scope="module")
def imported(satmae_file, tmp_path_factory):
    out = tmp_path_factory.mktemp("satmae_out") / "satmae.safetensors"
    return import_weights("satmae", satmae_file, out, OPTS)


def test_parity_with_the_reference_forward(imported, satmae_state, x10):
    model = load_backbone(imported)
    assert model.bands == list(SATMAE_BANDS)
    assert model.groups == [list(g) for g in SATMAE_GROUPS]
    ours = features(model, x10)
    with torch.no_grad():
        theirs = satmae_forward_features(satmae_state, x10, num_heads=4)
    assert ours.shape == theirs.shape == (2, 1 + 3 * 16, 64)
    diff = (ours - theirs).abs().max().item()
    assert diff <= TOL, diff


def test_a_subset_of_whole_groups(imported, satmae_state, x10):
    """Bands of group 0 only: SatMAE's encoder run on that group's tokens alone."""
    model = load_backbone(imported, bands=["B02", "B03", "B04", "B08"])
    assert model.groups == [["B02", "B03", "B04", "B08"]]
    ours = features(model, x10[:, [0, 1, 2, 6]])
    with torch.no_grad():
        theirs = satmae_forward_features(satmae_state, x10, num_heads=4, keep_groups=[0])
    assert (ours - theirs).abs().max().item() <= TOL
    rgb = load_backbone(imported, bands="rgb")  # part of a group: sliced and rescaled
    assert features(rgb, x10[:, [2, 1, 0]]).shape == (2, 17, 64)


def test_metadata(imported, satmae_file):
    meta, target = read_weights_metadata(imported)
    assert target == "geomae" and meta.groups == [list(g) for g in SATMAE_GROUPS]
    assert meta.source["kind"] == "satmae" and len(meta.source["sha256"]) == 64
    assert meta.source["channel_embed_dim"] == 16 and meta.source["final_norm"] == "norm"
    assert meta.img_size == 32 and meta.patch_size == 8 and meta.processing_level == "L1C"
    assert meta.arch["pos_embed_type"] == "learned"


def test_a_plain_state_dict_without_decoder_or_channel_cls_embed(tmp_path, x10):
    sd = make_satmae_state(decoder=False, seed=5)
    del sd["channel_cls_embed"]  # absent from some checkpoints: zeros
    path = tmp_path / "enc.pth"
    torch.save(sd, path)
    out = import_weights("satmae", path, tmp_path / "o.safetensors", OPTS)
    theirs_sd = {**sd, "channel_cls_embed": torch.zeros(1, 1, 16)}
    with torch.no_grad():
        theirs = satmae_forward_features(theirs_sd, x10, num_heads=4)
    assert (features(load_backbone(out), x10) - theirs).abs().max().item() <= TOL


def test_fine_tuned_fc_norm_becomes_the_norm_with_a_warning(tmp_path, caplog):
    sd = make_satmae_state(decoder=False, seed=6)
    sd["fc_norm.weight"], sd["fc_norm.bias"] = sd.pop("norm.weight"), sd.pop("norm.bias")
    sd["head.weight"], sd["head.bias"] = torch.zeros(62, 64), torch.zeros(62)
    path = save_satmae_checkpoint(sd, tmp_path / "ft.pth")
    with caplog.at_level(logging.WARNING):
        out = import_weights("satmae", path, tmp_path / "o.safetensors", OPTS)
    assert "fc_norm" in caplog.text
    assert torch.equal(load_backbone(out).norm.weight, sd["fc_norm.weight"])


def test_a_missing_group_is_named(tmp_path):
    sd = make_satmae_state(decoder=False)
    for key in [k for k in sd if k.startswith("patch_embed.2.")]:
        del sd[key]
    path = save_satmae_checkpoint(sd, tmp_path / "two.pth")
    out = tmp_path / "o.safetensors"
    with pytest.raises(CheckpointError, match=r"lacks the patch embedding of group 2 \(B11, B12\)"):
        import_weights("satmae", path, out, OPTS)
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_a_group_with_the_wrong_channel_count(tmp_path):
    sd = make_satmae_state(decoder=False)
    sd["patch_embed.2.proj.weight"] = torch.zeros(64, 3, 8, 8)
    path = save_satmae_checkpoint(sd, tmp_path / "bad.pth")
    with pytest.raises(BandError, match="3 input channels, but group 2 has 2 bands"):
        import_weights("satmae", path, tmp_path / "o.safetensors", OPTS)


def test_satmae_needs_a_normalization(satmae_file, tmp_path):
    with pytest.raises(Exception, match="needs --normalization"):
        import_weights("satmae", satmae_file, tmp_path / "o.safetensors", ImportOptions())
