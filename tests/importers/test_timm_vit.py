"""timm-vit import: parity with timm, file layouts, metadata, band subsets, CLI."""

import hashlib
import json
import logging
from dataclasses import replace

import pytest
import timm
import torch
from importer_helpers import L1C_13, TINY_TIMM, features
from safetensors.torch import save_file

from geomae.convert import load_backbone, read_weights_metadata
from geomae.importers import ImportOptions, import_weights
from geomae.main import main

TOL = 1e-5
SCALE = ImportOptions(bands=L1C_13, normalization="scale:10000", level="L1C")


def tiny(**changes):
    """Options of the inferred tiny ViT (width 32 has no standard head count)."""
    return replace(SCALE, num_heads=2, **changes)


def test_parity_with_timm_vit_tiny(vit_tiny, x13, tmp_path):
    path = tmp_path / "vit_tiny.pth"
    torch.save(vit_tiny.state_dict(), path)
    out = import_weights(
        "timm-vit",
        path,
        tmp_path / "out.safetensors",
        ImportOptions(bands=L1C_13, normalization="scale:10000", arch="vit_tiny_patch16_224"),
    )
    model = load_backbone(out)
    reference = vit_tiny  # timm.create_model("vit_tiny_patch16_224", in_chans=13, num_classes=0,
    # img_size=32) holding the very state dict that was imported
    ours, theirs = features(model, x13), features(reference, x13)
    assert ours.shape == theirs.shape == (2, 1 + 4, 192)
    diff = (ours - theirs).abs().max().item()
    assert diff <= TOL, diff
    with torch.no_grad():
        pooled = (model.eval()(x13) - reference.eval()(x13)).abs().max().item()
    assert pooled <= TOL, pooled


def test_parity_with_an_inferred_architecture(tiny_timm, tiny_timm_file, x13, tmp_path):
    out = import_weights(
        "timm-vit",
        tiny_timm_file,
        tmp_path / "out.safetensors",
        ImportOptions(bands=L1C_13, normalization="scale:10000", num_heads=2),
    )
    model = load_backbone(out)
    reference = timm.create_model("vit_tiny_patch16_224", in_chans=13, num_classes=0, **TINY_TIMM)
    state = {k: v for k, v in tiny_timm.state_dict().items() if not k.startswith("head.")}
    reference.load_state_dict(state, strict=True)
    assert (features(model, x13) - features(reference, x13)).abs().max().item() <= TOL
    assert "head.weight" in read_weights_metadata(out)[0].source["dropped_keys"]


@pytest.mark.parametrize(
    "layout",
    ["state_dict", "model+module", "backbone", "teacher+backbone+extra", "safetensors"],
)
def test_wrappers_and_prefixes(layout, tiny_timm, x13, tmp_path):
    sd = tiny_timm.state_dict()
    path = tmp_path / ("w.safetensors" if layout == "safetensors" else "w.pth")
    if layout == "state_dict":
        torch.save({"state_dict": sd, "epoch": 3}, path)
    elif layout == "model+module":
        torch.save({"model": {f"module.{k}": v for k, v in sd.items()}, "epoch": 3}, path)
    elif layout == "backbone":
        torch.save({f"backbone.{k}": v for k, v in sd.items()}, path)
    elif layout == "teacher+backbone+extra":
        teacher = {f"backbone.{k}": v for k, v in sd.items()}
        teacher["head.mlp.0.weight"] = torch.zeros(4, 4)  # a DINO projection head
        torch.save({"teacher": teacher, "epoch": 1}, path)
    else:
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    out = import_weights(
        "timm-vit",
        path,
        tmp_path / "o.safetensors",
        tiny(),
    )
    plain = tmp_path / "plain.pth"
    torch.save(sd, plain)
    ref = import_weights(
        "timm-vit",
        plain,
        tmp_path / "r.safetensors",
        tiny(),
    )
    assert torch.equal(features(load_backbone(out), x13), features(load_backbone(ref), x13))


def test_two_encoders_need_a_prefix(tiny_timm, x13, tmp_path):
    sd = tiny_timm.state_dict()
    both = {f"module.base_encoder.{k}": v for k, v in sd.items()}
    both.update({f"module.momentum_encoder.{k}": v + 1 for k, v in sd.items()})
    path = tmp_path / "moco.pth"
    torch.save({"state_dict": both}, path)
    with pytest.raises(Exception, match="2 encoders .*--prefix"):
        import_weights("timm-vit", path, tmp_path / "o.safetensors", tiny())
    out = import_weights(
        "timm-vit",
        path,
        tmp_path / "o.safetensors",
        tiny(prefix="module.base_encoder."),
    )
    plain = tmp_path / "plain.pth"
    torch.save(sd, plain)
    ref = import_weights("timm-vit", plain, tmp_path / "r.safetensors", tiny())
    assert torch.equal(features(load_backbone(out), x13), features(load_backbone(ref), x13))


def test_metadata_of_an_import(tiny_timm_file, tmp_path):
    out = import_weights(
        "timm-vit",
        tiny_timm_file,
        tmp_path / "o.safetensors",
        tiny(),
    )
    meta, target = read_weights_metadata(out)
    assert target == "geomae"
    assert meta.bands == L1C_13 and meta.groups == [L1C_13]
    assert meta.wavelengths_nm[0] == 442.7 and len(meta.wavelengths_nm) == 13
    assert meta.normalization.kind == "scale" and meta.normalization.scale == 10000
    assert {(s.mean, s.std) for s in meta.stats.bands.values()} == {(0.0, 10000.0)}
    assert meta.processing_level == "L1C" and meta.offset == 0.0
    assert meta.img_size == 32 and meta.patch_size == 8
    assert meta.source["kind"] == "timm-vit"
    assert meta.source["sha256"] == hashlib.sha256(tiny_timm_file.read_bytes()).hexdigest()
    assert meta.source["file"] == "tiny.pth"
    sidecar = json.loads(out.with_suffix(".json").read_text())
    assert sidecar["geomae"]["normalization"] == {"kind": "scale", "scale": 10000.0}
    assert sidecar["geomae"]["processing_level"] == "L1C"


def test_band_subsets_and_image_size(tiny_timm_file, x13, tmp_path):
    out = import_weights(
        "timm-vit",
        tiny_timm_file,
        tmp_path / "o.safetensors",
        tiny(),
    )
    full = load_backbone(out)
    same = load_backbone(out, bands=L1C_13)
    assert torch.equal(features(full, x13), features(same, x13))
    l2a = load_backbone(out, bands="all")  # the 12 L2A bands: B10 dropped
    assert l2a.bands == [b for b in L1C_13 if b != "B10"]
    keep = [i for i, b in enumerate(L1C_13) if b != "B10"]
    assert features(l2a, x13[:, keep]).shape == (2, 17, 32)
    assert l2a.geomae_metadata.normalization.kind == "scale"
    assert l2a.geomae_metadata.processing_level == "L1C"
    big = load_backbone(out, img_size=64)
    assert features(big, torch.randn(1, 13, 64, 64)).shape == (1, 1 + 64, 32)
    # the resampled position embedding of the same grid is the stored one
    resized = load_backbone(out, img_size=32)
    assert torch.equal(features(resized, x13), features(full, x13))


def test_img_size_option_resamples(tiny_timm_file, tmp_path):
    out = import_weights(
        "timm-vit",
        tiny_timm_file,
        tmp_path / "o.safetensors",
        tiny(img_size=48),
    )
    meta, _ = read_weights_metadata(out)
    assert meta.img_size == 48
    model = load_backbone(out)
    assert model.pos_embed_learned.shape == (1, 36, 32)


def test_missing_final_norm_is_the_identity(tiny_timm, x13, tmp_path, caplog):
    sd = {k: v for k, v in tiny_timm.state_dict().items() if not k.startswith(("norm.", "head."))}
    path = tmp_path / "enc.pth"
    torch.save(sd, path)
    with caplog.at_level(logging.WARNING):
        out = import_weights(
            "timm-vit",
            path,
            tmp_path / "o.safetensors",
            tiny(),
        )
    assert "no final norm" in caplog.text
    reference = timm.create_model("vit_tiny_patch16_224", in_chans=13, num_classes=0, **TINY_TIMM)
    missing, unexpected = reference.load_state_dict(sd, strict=False)  # as torchgeo loads
    assert set(missing) == {"norm.weight", "norm.bias"} and not unexpected
    assert (features(load_backbone(out), x13) - features(reference, x13)).abs().max() <= TOL


def test_cli_import(tiny_timm_file, tmp_path, capsys):
    out = tmp_path / "cli.safetensors"
    rc = main(
        [
            "import",
            "timm-vit",
            str(tiny_timm_file),
            "-o",
            str(out),
            "--bands",
            ",".join(L1C_13),
            "--normalization",
            "scale:10000",
            "--level",
            "L1C",
            "--num-heads",
            "2",
        ]
    )
    assert rc == 0 and out.is_file() and out.with_suffix(".json").is_file()
    assert load_backbone(out).bands == L1C_13


def test_the_timm_registry_loads_an_import(vit_tiny, x13, tmp_path):
    path = tmp_path / "vit_tiny.pth"
    torch.save(vit_tiny.state_dict(), path)
    out = import_weights(
        "timm-vit",
        path,
        tmp_path / "out.safetensors",
        ImportOptions(bands=L1C_13, normalization="scale:10000", arch="vit_tiny_patch16_224"),
    )
    model = timm.create_model(
        "geomae_vit_tiny_patch16", pretrained=True, pretrained_cfg_overlay={"file": str(out)}
    )
    assert (features(model, x13) - features(vit_tiny, x13)).abs().max().item() <= TOL
