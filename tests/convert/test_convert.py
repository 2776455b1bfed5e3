"""MAE checkpoint -> ViT weights: reading, key-by-key conversion, export, errors, CLI."""

import json
import logging

import pytest
import timm
import torch
from convert_helpers import PRESETS, STATS, make_mae, metadata_of, save_checkpoint
from safetensors import safe_open
from safetensors.torch import save_file

from geomae.convert import (
    export_weights,
    load_backbone,
    mae_to_vit,
    read_mae_checkpoint,
    read_weights,
)
from geomae.errors import CheckpointError, ConfigError
from geomae.main import main
from geomae.metadata import GeoMetadata
from geomae.weights import read_weights_file, write_weights

TOL = 1e-5


def _features(model, x):
    with torch.no_grad():
        return model.eval().forward_features(x)


def _max_diff(a, b):
    return (a - b).abs().max().item()


# ---- reading -------------------------------------------------------------------------
def test_read_mae_checkpoint(checkpoints, maes):
    state, meta = read_mae_checkpoint(checkpoints["satmae"])
    assert set(state) == {f"model.{k}" for k in maes["satmae"].state_dict()}
    assert meta.bands == list(maes["satmae"].encoder.bands)
    assert meta.groups == maes["satmae"].encoder.groups and len(meta.groups) == 4
    assert meta.stats.bands == STATS.bands and meta.offset == 1000.0


def test_read_real_lightning_checkpoint(real_checkpoint):
    path, task = real_checkpoint
    state, meta = read_mae_checkpoint(path)
    assert meta.bands[0] == "B01" and len(meta.bands) == 12
    assert meta.arch["embed_dim"] == 32 and meta.img_size == 32
    for key, value in task.model.state_dict().items():
        assert torch.equal(state[f"model.{key}"], value), key


# ---- mae_to_vit ----------------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_mae_to_vit_keeps_the_encoder_and_drops_the_decoder(maes, preset, caplog):
    mae = maes[preset]
    state = {f"model.{k}": v for k, v in mae.state_dict().items()}
    before = dict(state)
    with caplog.at_level(logging.INFO, logger="geomae.convert"):
        out = mae_to_vit(state, metadata_of(mae))
    expected = mae.encoder.state_dict()
    assert set(out) == set(expected)
    for key, value in expected.items():
        assert torch.equal(out[key], value), key
    assert state == before  # the input is left alone
    n_decoder = sum(k.startswith("decoder.") for k in mae.state_dict())
    assert f"dropped {n_decoder} MAE weights" in caplog.text
    assert "decoder.mask_token (1)" in caplog.text
    assert f"decoder.heads ({2 * mae.encoder.num_groups})" in caplog.text


def test_mae_to_vit_accepts_a_bare_channelmae_state_dict(maes):
    mae = maes["per-band"]
    out = mae_to_vit(mae.state_dict(), metadata_of(mae))
    assert torch.equal(out["patch_embed.projs.11.weight"], mae.encoder.patch_embed.projs[11].weight)


def test_mae_to_vit_refuses_keys_it_does_not_know(maes):
    mae = maes["satmae"]
    state = {f"model.{k}": v for k, v in mae.state_dict().items()}
    state["model.probe.weight"] = torch.zeros(3)
    state["ema.encoder.cls_token"] = torch.zeros(1, 1, 32)
    with pytest.raises(CheckpointError) as err:
        mae_to_vit(state, metadata_of(mae))
    msg = str(err.value)
    assert "2 state-dict keys are neither MAE encoder nor decoder weights" in msg
    assert "model.probe.weight" in msg and "ema.encoder.cls_token" in msg


def test_mae_to_vit_lists_every_key_that_does_not_fit(maes):
    mae = maes["satmae"]
    state = {f"model.{k}": v for k, v in mae.state_dict().items()}
    del state["model.encoder.blocks.1.norm1.bias"]
    state["model.encoder.blocks.2.norm1.bias"] = torch.zeros(32)
    state["model.encoder.patch_embed.projs.2.weight"] = torch.zeros(32, 3, 8, 8)
    with pytest.raises(CheckpointError) as err:
        mae_to_vit(state, metadata_of(mae))
    msg = str(err.value)
    assert "missing keys [blocks.1.norm1.bias]" in msg
    assert "unexpected keys [blocks.2.norm1.bias]" in msg
    assert "patch_embed.projs.2.weight: (32, 3, 8, 8) vs expected (32, 2, 8, 8)" in msg


def test_mae_to_vit_checks_against_the_metadata_architecture(maes):
    mae = maes["single"]
    meta = metadata_of(mae)
    meta.arch = {**meta.arch, "embed_dim": 64, "num_heads": 4}
    with pytest.raises(CheckpointError, match=r"cls_token: \(1, 1, 32\) vs expected \(1, 1, 64\)"):
        mae_to_vit(mae.state_dict(), meta)


def test_timm_target_needs_a_single_group(maes):
    mae = maes["satmae"]
    with pytest.raises(CheckpointError, match="4 band groups .* use the 'geomae' target"):
        mae_to_vit(mae.state_dict(), metadata_of(mae), target="timm")


def test_timm_target_keys(maes):
    mae = maes["single"]
    out = mae_to_vit(mae.state_dict(), metadata_of(mae), target="timm")
    assert "patch_embed.proj.weight" in out and "group_embed" not in out
    assert out["pos_embed"].shape == (1, 1 + 16, 32)
    assert torch.count_nonzero(out["pos_embed"][:, 0]) == 0  # cls token: no position
    enc = mae.encoder
    patch_rows = enc.pos_embed[0] + enc.group_token_embed()[0]  # (L, D)
    assert _max_diff(out["pos_embed"][0, 1:], patch_rows) < 1e-6


# ---- export and parity ---------------------------------------------------------------
@pytest.mark.parametrize("preset", PRESETS)
def test_exported_backbone_matches_the_mae_encoder(maes, exports, x, preset):
    model = load_backbone(exports[preset])
    assert model.groups == maes[preset].encoder.groups
    expected = _features(maes[preset].encoder, x)
    got = _features(model, x)
    assert got.shape == expected.shape == (2, 1 + 16 * len(model.groups), 32)
    assert _max_diff(got, expected) <= TOL


def test_real_checkpoint_export_matches_the_trained_encoder(real_checkpoint, tmp_path, x):
    path, task = real_checkpoint
    out = export_weights(path, tmp_path / "real.safetensors")
    _, meta, target = read_weights_file(out)
    assert target == "geomae" and len(meta.groups) == 4
    assert _max_diff(_features(load_backbone(out), x), _features(task.model.encoder, x)) <= TOL


def test_single_group_export_loads_in_plain_timm(maes, exports, x):
    single = exports["single"]
    model = timm.create_model(
        "vit_small_patch16_224",
        in_chans=12,
        img_size=32,
        patch_size=8,
        embed_dim=32,
        depth=2,
        num_heads=2,
        num_classes=0,
        pretrained=True,
        pretrained_cfg_overlay=dict(file=str(single)),
    )
    encoder = maes["single"].encoder
    assert _max_diff(_features(model, x), _features(encoder, x)) <= TOL
    with torch.no_grad():
        assert _max_diff(model(x), encoder(x)) <= TOL  # cls pooling, no head


def test_recorded_timm_recipe_rebuilds_the_model(maes, exports, x, caplog):
    _, meta, _ = read_weights_file(exports["single"])
    assert meta.extra["timm_model"] == "vit_tiny_patch16_224"
    overlay = meta.extra["timm_pretrained_cfg_overlay"]
    assert overlay == {"input_size": [12, 32, 32], "first_conv": None}
    with caplog.at_level(logging.WARNING):
        model = timm.create_model(
            meta.extra["timm_model"],
            pretrained=True,
            pretrained_cfg_overlay=dict(file=str(exports["single"]), **overlay),
            **meta.extra["timm_kwargs"],
        )
    assert not [r for r in caplog.records if r.name.startswith("timm")]  # nothing adapted
    assert _max_diff(_features(model, x), _features(maes["single"].encoder, x)) <= TOL


def test_header_and_sidecar_carry_the_metadata(exports, maes):
    path = exports["satmae"]
    with safe_open(str(path), framework="pt") as f:
        header = f.metadata()
    assert header["format"] == "pt" and header["target"] == "geomae"
    meta = json.loads(header["geomae"])
    enc = maes["satmae"].encoder
    assert meta["bands"] == enc.bands
    assert meta["wavelengths_nm"] == GeoMetadata.from_dict(meta).wavelengths_nm
    assert meta["wavelengths_nm"][1] == pytest.approx(492.4, abs=1.0)  # B02
    assert meta["groups"] == enc.groups
    assert meta["stats"] == STATS.to_dict()
    assert meta["patch_size"] == 8 and meta["img_size"] == 32 and meta["offset"] == 1000.0
    arch = meta["arch"]
    assert {k: arch[k] for k in ("embed_dim", "depth", "num_heads", "patch_size")} == {
        "embed_dim": 32,
        "depth": 2,
        "num_heads": 2,
        "patch_size": 8,
    }
    assert arch["group_wavelengths"] == enc.group_wavelengths
    assert meta["extra"]["mae_arch"]["decoder_embed_dim"] == 16
    assert meta["extra"]["source_checkpoint"] == "satmae.ckpt"
    sidecar = json.loads(path.with_suffix(".json").read_text())
    assert sidecar == {"format": "pt", "target": "geomae", "geomae": meta}


def test_explicit_targets(checkpoints, tmp_path):
    out = export_weights(checkpoints["single"], tmp_path / "g.safetensors", target="geomae")
    tensors, _, target = read_weights_file(out)
    assert target == "geomae" and "patch_embed.projs.0.weight" in tensors
    with pytest.raises(CheckpointError, match="use the 'geomae' target"):
        export_weights(checkpoints["satmae"], tmp_path / "t.safetensors", target="timm")
    assert not (tmp_path / "t.safetensors").exists()
    with pytest.raises(ConfigError, match="must end in .safetensors"):
        export_weights(checkpoints["single"], tmp_path / "w.pt")


def test_read_weights_converts_a_checkpoint_on_the_fly(checkpoints, exports):
    tensors, meta, target = read_weights(checkpoints["satmae"])
    exported, exported_meta, _ = read_weights(exports["satmae"])
    assert target == "geomae" and set(tensors) == set(exported)
    assert all(torch.equal(tensors[k], exported[k]) for k in tensors)
    assert meta.arch == exported_meta.arch


def test_tensors_are_written_contiguous(maes, tmp_path):
    mae = maes["single"]
    meta = metadata_of(mae)
    state = dict(mae.encoder.state_dict())
    state["cls_token"] = state["cls_token"].expand(1, 1, 32)  # a view
    state["blocks.0.attn.qkv.weight"] = state["blocks.0.attn.qkv.weight"].t().contiguous().t()
    out, _ = write_weights(tmp_path / "w.safetensors", state, meta, target="geomae")
    tensors, _, _ = read_weights_file(out)
    assert torch.equal(tensors["blocks.0.attn.qkv.weight"], state["blocks.0.attn.qkv.weight"])


# ---- bad input -----------------------------------------------------------------------
def test_a_plain_timm_state_dict_is_not_a_geomae_checkpoint(tmp_path):
    path = tmp_path / "vit.pth"
    vit = timm.create_model("vit_tiny_patch16_224", img_size=32, patch_size=8, depth=1)
    torch.save(vit.state_dict(), path)
    with pytest.raises(CheckpointError) as err:
        read_mae_checkpoint(path)
    msg = str(err.value)
    assert f"checkpoint {path} is not a geomae MAE checkpoint" in msg
    assert "no 'geomae' metadata (a bare state dict with" in msg and "cls_token" in msg


def test_a_checkpoint_without_encoder_weights(maes, tmp_path):
    path = tmp_path / "other.ckpt"
    torch.save({"state_dict": {"net.weight": torch.zeros(2)}, "geomae": {}}, path)
    with pytest.raises(CheckpointError, match=r"no 'model.encoder.\*' weights \(1 keys, e.g. net"):
        read_mae_checkpoint(path)


def test_a_checkpoint_of_another_task(maes, tmp_path):
    path = save_checkpoint(maes["single"], tmp_path / "cls.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    checkpoint["geomae"]["extra"]["task"] = "ClassificationTask"
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match="written by ClassificationTask, not by MAETask"):
        read_mae_checkpoint(path)


def test_incomplete_metadata(maes, tmp_path):
    path = save_checkpoint(maes["single"], tmp_path / "meta.ckpt")
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint["geomae"]["stats"]
    torch.save(checkpoint, path)
    with pytest.raises(
        CheckpointError, match=r"incomplete or invalid geomae metadata: .*\['stats'\]"
    ):
        read_mae_checkpoint(path)


def test_truncated_checkpoint(real_checkpoint, tmp_path):
    path, _ = real_checkpoint
    cut = tmp_path / "cut.ckpt"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError, match=f"checkpoint {cut} cannot be read: it is truncated or corrupt"
    ):
        read_mae_checkpoint(cut)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match=f"checkpoint {tmp_path / 'no.ckpt'} does not exist"):
        read_mae_checkpoint(tmp_path / "no.ckpt")


CALLED = []


def _record(value):
    CALLED.append(value)
    return value


class Payload:
    """Unpickling this would call `_record` (arbitrary code)."""

    def __reduce__(self):
        return (_record, ("unpickled",))


def test_pickled_objects_are_refused_unexecuted(maes, tmp_path):
    path = save_checkpoint(maes["single"], tmp_path / "evil.ckpt", payload=Payload())
    with pytest.raises(CheckpointError) as err:
        read_mae_checkpoint(path)
    msg = str(err.value)
    assert "weights_only=True" in msg and "refuses" in msg and "_record" in msg
    assert CALLED == []  # nothing was executed


def test_safetensors_without_geomae_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"format": "pt"})
    with pytest.raises(CheckpointError) as err:
        read_weights(path)
    msg = str(err.value)
    assert f"weights file {path} is not a geomae export" in msg
    assert "convert a MAE checkpoint with `geomae convert`" in msg


def test_truncated_safetensors(exports, tmp_path):
    cut = tmp_path / "cut.safetensors"
    data = exports["satmae"].read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"weights file {cut} cannot be read as safetensors"):
        read_weights(cut)
    junk = tmp_path / "junk.safetensors"
    junk.write_text("not weights")
    with pytest.raises(CheckpointError, match=f"weights file {junk} is not a safetensors file"):
        read_weights(junk)


# ---- CLI -----------------------------------------------------------------------------
def test_cli_convert(checkpoints, tmp_path, caplog):
    out = tmp_path / "cli" / "w.safetensors"
    with caplog.at_level(logging.INFO, logger="geomae.convert"):
        assert main(["convert", str(checkpoints["per-band"]), "-o", str(out)]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file()
    assert f"wrote {out}" in caplog.text and "geomae target" in caplog.text
    tensors, meta, target = read_weights_file(out)
    assert target == "geomae" and len(meta.groups) == 12 and len(tensors) == 52


def test_cli_convert_default_output_and_target(checkpoints, tmp_path):
    ckpt = tmp_path / "single.ckpt"
    ckpt.write_bytes(checkpoints["single"].read_bytes())
    assert main(["convert", str(ckpt), "--target", "geomae"]) == 0
    _, _, target = read_weights_file(tmp_path / "single.safetensors")
    assert target == "geomae"


def test_cli_convert_bad_checkpoint(tmp_path, capsys):
    bad = tmp_path / "bad.ckpt"
    torch.save({"weights": torch.zeros(3)}, bad)
    assert main(["convert", str(bad), "-o", str(tmp_path / "w.safetensors")]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("geomae: error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert f"checkpoint {bad} is not a geomae MAE checkpoint" in lines[0]
    assert not (tmp_path / "w.safetensors").exists()


def test_cli_convert_timm_target_for_groups(checkpoints, tmp_path, capsys):
    rc = main(["convert", str(checkpoints["satmae"]), "-o", str(tmp_path / "w.safetensors"),
               "--target", "timm"])  # fmt: skip
    assert rc == 2
    assert "use the 'geomae' target" in capsys.readouterr().err


def test_parity_holds_for_a_model_of_other_bands(tmp_path):
    # 4 bands, one group: the timm export encodes the mean wavelength of exactly these bands
    mae = make_mae("single", bands=["B04", "B03", "B02", "B08"], seed=7)
    ckpt = save_checkpoint(mae, tmp_path / "rgbn.ckpt")
    out = export_weights(ckpt, tmp_path / "rgbn.safetensors")
    x = torch.randn(1, 4, 32, 32)
    assert _max_diff(_features(load_backbone(out), x), _features(mae.encoder, x)) <= TOL
