"""Presets, the geomae source, and the bad-input rows of docs/errors.md for `geomae import`."""

import logging

import pytest
import timm
import torch
from importer_helpers import L1C_13, features

from geomae.convert import load_backbone, read_weights_metadata
from geomae.errors import BandError, CheckpointError, ConfigError
from geomae.importers import PRESETS, ImportOptions, import_weights
from geomae.main import main

SMALL_MAE = "ssl4eo-s12-vit-small-patch16-mae"


@pytest.fixture(scope="module")
def small_patch16_file(tmp_path_factory):
    """A vit_small_patch16_224 encoder over 13 bands, saved like the SSL4EO MAE
    `_enc.pth` files: a plain state dict without head (here also without final norm).

    Built on the meta device and filled with random values (timm's own init of 22 M
    parameters is slow on a busy CPU).
    """
    with torch.device("meta"):
        model = timm.create_model("vit_small_patch16_224", in_chans=13, num_classes=0)
    model.to_empty(device="cpu")
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(
                torch.randn(p.shape, generator=g) * 0.05
                + (1.0 if "norm" in name and name.endswith("weight") else 0.0)
            )
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("norm.")}
    path = tmp_path_factory.mktemp("preset") / "B13_vits16_mae_ep99_enc.pth"
    torch.save(sd, path)
    return path, model.eval()


def test_presets_list_the_torchgeo_ssl4eo_weights():
    names = set(PRESETS)
    for size, patch in (("small", 16), ("base", 16), ("large", 16), ("huge", 14)):
        assert f"ssl4eo-s12-vit-{size}-patch{patch}-mae" in names
        assert f"ssl4eo-s12-vit-{size}-patch{patch}-fgmae" in names
    assert {"ssl4eo-s12-vit-small-patch16-moco", "ssl4eo-s12-vit-small-patch16-dino"} <= names
    for preset in PRESETS.values():
        assert preset.bands == tuple(L1C_13) and preset.level == "L1C"
        assert preset.normalization.spec() == "scale:10000" and preset.img_size == 224


def test_a_preset_needs_only_the_file(small_patch16_file, tmp_path):
    """The preset knows bands, normalization, level and the architecture."""
    path, model = small_patch16_file
    out = import_weights(SMALL_MAE, path, tmp_path / "o.safetensors")
    meta, _ = read_weights_metadata(out)
    assert meta.bands == L1C_13 and meta.processing_level == "L1C"
    assert meta.normalization.describe() == "x / 10000" and meta.img_size == 224
    assert (
        meta.source["preset"] == SMALL_MAE and meta.source["timm_arch"] == "vit_small_patch16_224"
    )
    assert meta.source["torchgeo"].endswith("ViTSmall16_Weights.SENTINEL2_ALL_MAE")
    # the mapping of a timm ViT (its features are checked in test_timm_vit.py)
    ours = load_backbone(out).state_dict()
    theirs = model.state_dict()
    assert torch.equal(ours["patch_embed.projs.0.weight"], theirs["patch_embed.proj.weight"])
    assert torch.equal(ours["blocks.11.mlp.fc2.weight"], theirs["blocks.11.mlp.fc2.weight"])
    assert torch.equal(ours["pos_embed_learned"], theirs["pos_embed"][:, 1:])
    assert torch.equal(ours["cls_token"], theirs["cls_token"] + theirs["pos_embed"][:, :1])
    # torchgeo loads these files with strict=False: the final norm stays timm's initial one
    assert torch.equal(ours["norm.weight"], torch.ones(384))
    assert torch.equal(ours["norm.bias"], torch.zeros(384))


def test_an_unknown_preset_lists_the_known_ones(tmp_path):
    with pytest.raises(ConfigError, match="unknown import source 'ssl4eo-vit-tiny'") as err:
        import_weights("ssl4eo-vit-tiny", tmp_path / "w.pth", tmp_path / "o.safetensors")
    assert SMALL_MAE in str(err.value) and "timm-vit" in str(err.value)


def test_a_normalization_that_contradicts_the_preset(small_patch16_file, tmp_path):
    path, _ = small_patch16_file
    out = tmp_path / "o.safetensors"
    with pytest.raises(ConfigError, match=r"contradicts .*--normalization none .*scale:10000"):
        import_weights(SMALL_MAE, path, out, ImportOptions(normalization="none"))
    with pytest.raises(ConfigError, match=r"--level L2A \(preset: L1C\)"):
        import_weights(SMALL_MAE, path, out, ImportOptions(level="L2A"))
    assert not out.exists()
    # restating the preset is fine
    import_weights(SMALL_MAE, path, out, ImportOptions(normalization="scale:1e4", level="l1c"))


def test_patch_embedding_channels_differ_from_bands(tiny_timm_file, tmp_path):
    out = tmp_path / "o.safetensors"
    with pytest.raises(BandError, match=r"takes 13 input channels but --bands lists 12"):
        import_weights(
            "timm-vit",
            tiny_timm_file,
            out,
            ImportOptions(bands="all", normalization="scale:10000", num_heads=2),
        )
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_timm_vit_needs_bands_and_normalization(tiny_timm_file, tmp_path):
    with pytest.raises(ConfigError, match="needs --bands, --normalization"):
        import_weights("timm-vit", tiny_timm_file, tmp_path / "o.safetensors")


def test_zscore_stats_must_cover_the_bands(tiny_timm_file, tmp_path):
    from geomae.stats import BandStats

    stats = tmp_path / "stats.yaml"
    BandStats.default().select(["B02", "B03"]).save(stats)
    with pytest.raises(BandError, match="no statistics for band"):
        import_weights(
            "timm-vit",
            tiny_timm_file,
            tmp_path / "o.safetensors",
            ImportOptions(bands=L1C_13, normalization=f"zscore:{stats}", num_heads=2),
        )


def test_a_vit_with_layer_scale_is_refused(tmp_path):
    model = timm.create_model(
        "vit_tiny_patch16_224", in_chans=13, embed_dim=32, depth=1, num_heads=2, init_values=1e-5
    )
    path = tmp_path / "ls.pth"
    torch.save(model.state_dict(), path)
    with pytest.raises(CheckpointError, match="layer scale"):
        import_weights(
            "timm-vit",
            path,
            tmp_path / "o.safetensors",
            ImportOptions(bands=L1C_13, normalization="none", num_heads=2),
        )


def test_satmae_file_given_to_timm_vit(satmae_file, tmp_path):
    with pytest.raises(CheckpointError, match="satmae source"):
        import_weights(
            "timm-vit",
            satmae_file,
            tmp_path / "o.safetensors",
            ImportOptions(bands="10m20m", normalization="none"),
        )


def test_cli_errors_are_one_line(tiny_timm_file, tmp_path, capsys):
    rc = main(["import", "nope", str(tiny_timm_file), "-o", str(tmp_path / "o.safetensors")])
    err = capsys.readouterr().err
    assert rc == 2 and "geomae: error: unknown import source 'nope'" in err
    assert "Traceback" not in err


def test_geomae_source_delegates_to_convert(tmp_path, caplog):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "convert"))
    from convert_helpers import make_mae, save_checkpoint

    from geomae.convert import export_weights

    ckpt = save_checkpoint(make_mae("satmae", seed=3), tmp_path / "mae.ckpt")
    ours = import_weights("geomae", ckpt, tmp_path / "i.safetensors", ImportOptions(level="L2A"))
    theirs = export_weights(ckpt, tmp_path / "c.safetensors")
    x = torch.randn(1, 12, 32, 32)
    assert torch.equal(features(load_backbone(ours), x), features(load_backbone(theirs), x))
    meta, _ = read_weights_metadata(ours)
    assert meta.source["kind"] == "geomae" and meta.processing_level == "L2A"
    assert meta.normalization.kind == "zscore"
    with pytest.raises(ConfigError, match="--bands cannot be applied"):
        import_weights("geomae", ckpt, tmp_path / "x.safetensors", ImportOptions(bands="rgb"))
    del caplog


def test_old_weight_files_still_load(tmp_path):
    """A version-1 header (no normalization, level or source) reads as zscore, unknown."""
    from geomae.metadata import GeoMetadata

    sys_path_meta = {
        "format_version": 1,
        "bands": ["B02", "B03"],
        "wavelengths_nm": [492.4, 559.8],
        "groups": [["B02", "B03"]],
        "stats": {"bands": {"B02": {"mean": 1.0, "std": 2.0}, "B03": {"mean": 3, "std": 4}}},
        "patch_size": 8,
        "img_size": 32,
        "arch": {"embed_dim": 32, "depth": 1, "num_heads": 2},
        "offset": 0.0,
        "extra": {},
    }
    meta = GeoMetadata.from_dict(sys_path_meta)
    assert meta.normalization.kind == "zscore" and meta.processing_level is None
    assert meta.source == {}
    logging.getLogger(__name__).info("ok")
