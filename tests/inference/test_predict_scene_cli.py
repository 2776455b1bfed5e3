"""`geomae predict-scene` end to end on generated scenes: COG class maps, zarr cubes, errors."""

import json
import shutil

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr

from geomae.cli.predict_scene import main as predict_main
from geomae.convert import load_backbone
from geomae.errors import BandError, CheckpointError, ConfigError
from geomae.inference.scene import SceneReader
from geomae.main import main
from geomae.transforms import BandPipeline

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def _b02(folder):
    return next(folder.glob("*_B02.tif"))


def test_class_map_is_a_cog_on_the_scene_grid(seg_ckpt, landcover_paths, landcover_data, tmp_path):
    scene = landcover_paths["scene"]
    out, probs = tmp_path / "map.tif", tmp_path / "probs.tif"
    args = [str(seg_ckpt), str(scene), "-o", str(out), "--probabilities", str(probs)]
    assert main(["predict-scene", *args, "--overlap", "4", "--no-progress"]) == 0
    with rasterio.open(_b02(scene)) as ref, rasterio.open(out) as src:
        assert src.crs == ref.crs and src.transform == ref.transform
        assert (src.width, src.height) == (ref.width, ref.height)
        assert src.count == 1 and src.dtypes[0] == "uint8" and src.nodata == 255
        assert src.profile["tiled"] and src.overviews(1)  # tiled with overviews: a COG
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        tags = src.tags()
        assert json.loads(tags["class_names"]) == list(landcover_data.CLASSES)
        assert tags["CLASS_1"] == "forest"
        assert src.colormap(1)[0][3] == 255
        classes = src.read(1)
    corner = landcover_data.NODATA_CORNER
    assert (classes[:corner, :corner] == 255).all()  # nodata in every band -> nodata
    assert classes[corner:, :].max() < 3 and (classes[:, corner:] < 3).all()
    with rasterio.open(probs) as src:
        assert src.count == 3 and src.descriptions == tuple(landcover_data.CLASSES)
        p = src.read().astype(int)  # (3, H, W)
    total = p.sum(0)
    assert (np.abs(total[corner:, corner:] - 255) <= 2).all()  # rounding of 3 bands
    assert (p.argmax(0)[corner:, corner:] == classes[corner:, corner:]).all()
    assert (total[:corner, :corner] == 0).all()


def test_embedding_cube_dims_coords_attrs_and_vectors(encoder_weights, s2_scene, tmp_path):
    out = tmp_path / "emb.zarr"
    args = [str(encoder_weights), str(s2_scene), "-o", str(out), "--overlap", "0"]
    assert predict_main([*args, "--no-progress", "--batch-size", "2"]) == 0
    cube = xr.open_zarr(out)
    assert cube.embedding.dims == ("y", "x", "feature")
    assert cube.embedding.shape == (12, 12, 16)  # 96 px / patch 8, D = 16
    with rasterio.open(_b02(s2_scene)) as ref:
        t, crs = ref.transform, ref.crs
    assert rasterio.crs.CRS.from_wkt(cube.attrs["crs"]) == crs
    assert cube.attrs["transform"] == [8 * t.a, 0.0, t.c, 0.0, 8 * t.e, t.f]
    assert np.allclose(cube.x.values, t.c + (np.arange(12) + 0.5) * 80)
    assert np.allclose(cube.y.values, t.f - (np.arange(12) + 0.5) * 80)
    assert "GeoTransform" in cube.spatial_ref.attrs
    # nodata block (24 px = 3 patches) has no vectors
    emb = cube.embedding.values
    assert np.isnan(emb[:3, :3]).all() and np.isfinite(emb[3:, :]).all()
    assert (cube.valid_fraction.values[:3, :3] == 0).all()

    # the vectors of the window at rows 32..63, columns 64..95 are the encoder's features
    model = load_backbone(encoder_weights).eval()
    meta = model.geomae_metadata
    reader = SceneReader(paths=s2_scene, bands=meta.bands)
    tile = torch.from_numpy(reader.read(32, 32, 64, 32))[None]  # (1, 12, 32, 32) raw DN
    pipeline = BandPipeline(
        source_bands=meta.bands, bands=meta.bands, stats=meta.stats, nodata=0, augment="none"
    )
    with torch.no_grad():
        x = pipeline({"image": tile}, augment=False)["image"]
        feats = model.forward_intermediates(x, indices=1, norm=True, intermediates_only=True)[0]
    expected = feats[0].permute(1, 2, 0).numpy()  # (4, 4, D)
    assert np.allclose(emb[4:8, 8:12], expected, atol=1e-5)


def test_overlapping_embedding_windows_blend(encoder_weights, s2_scene, tmp_path):
    out = tmp_path / "emb.zarr"
    assert predict_main([str(encoder_weights), str(s2_scene), "-o", str(out), "--no-progress"]) == 0
    cube = xr.open_zarr(out)
    assert cube.embedding.shape == (12, 12, 16) and np.isfinite(cube.embedding.values[3:]).all()


def test_existing_output_needs_overwrite(seg_ckpt, landcover_paths, tmp_path, capsys):
    out = tmp_path / "map.tif"
    out.write_bytes(b"old")
    args = ["predict-scene", str(seg_ckpt), str(landcover_paths["scene"]), "-o", str(out)]
    assert main([*args, "--no-progress"]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert out.read_bytes() == b"old"
    assert main([*args, "--no-progress", "--overwrite"]) == 0
    with rasterio.open(out) as src:
        assert src.count == 1


def test_the_output_folder_is_created_and_a_file_in_its_way_is_named(
    seg_ckpt, landcover_paths, tmp_path
):
    out = tmp_path / "maps" / "2017" / "map.tif"
    args = [str(seg_ckpt), str(landcover_paths["scene"]), "--no-progress", "--overlap", "0"]
    assert predict_main([*args, "-o", str(out)]) == 0
    with rasterio.open(out) as src:
        assert src.count == 1
    (tmp_path / "blocked").write_text("a file, not a folder")
    with pytest.raises(ConfigError, match="folder .*blocked cannot be created"):
        predict_main([*args, "-o", str(tmp_path / "blocked" / "map.tif")])


def test_a_file_that_is_no_checkpoint_is_refused(landcover_paths, tmp_path):
    bogus = tmp_path / "model.ckpt"
    bogus.write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="model.ckpt"):
        predict_main([str(bogus), str(landcover_paths["scene"]), "-o", str(tmp_path / "m.tif")])
    with pytest.raises(CheckpointError, match="does not exist"):
        predict_main([str(tmp_path / "x.ckpt"), str(landcover_paths["scene"]), "-o", "m.tif"])
    fake = tmp_path / "w.safetensors"
    fake.write_bytes(b"\x00" * 16)
    with pytest.raises(CheckpointError):
        predict_main([str(fake), str(landcover_paths["scene"]), "-o", str(tmp_path / "e.zarr")])


def test_a_band_the_checkpoint_needs_is_missing_from_the_scene(seg_ckpt, landcover_paths, tmp_path):
    scene = tmp_path / "scene"
    shutil.copytree(landcover_paths["scene"], scene)
    next(scene.glob("*_B8A.tif")).unlink()
    with pytest.raises(BandError, match="B8A") as err:
        predict_main([str(seg_ckpt), str(scene), "-o", str(tmp_path / "m.tif")])
    assert "seg.ckpt" in str(err.value)
    assert not list(tmp_path.glob("*.partial"))


def test_output_suffix_must_fit_the_model(seg_ckpt, landcover_paths, tmp_path):
    with pytest.raises(ConfigError, match=r"\.tif"):
        predict_main([str(seg_ckpt), str(landcover_paths["scene"]), "-o", str(tmp_path / "m.zarr")])


def test_a_classification_checkpoint_gives_a_window_resolution_map(
    eurosat_root, s2_scene, tmp_path
):
    import lightning

    from geomae.datamodules import EuroSATDataModule
    from geomae.trainers import ClassificationTask

    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2, processing_level=None)
    dm.setup("fit")
    arch = {"size": "tiny", "groups": "single", "embed_dim": 16, "depth": 1, "num_heads": 2}
    task = ClassificationTask(arch={**arch, "patch_size": 16}, mode="linear")
    task.setup_from_datamodule(dm)
    ckpt = {
        "state_dict": task.state_dict(),
        "hyper_parameters": dict(task.hparams),
        "pytorch-lightning_version": lightning.__version__,
    }
    task.on_save_checkpoint(ckpt)
    path = tmp_path / "cls.ckpt"
    torch.save(ckpt, path)
    out = tmp_path / "cls.tif"
    assert predict_main([str(path), str(s2_scene), "-o", str(out), "--overlap", "0"]) == 0
    with rasterio.open(out) as src:
        classes = src.read(1)
        assert src.count == 1 and (src.width, src.height) == (96, 96)
        assert len(json.loads(src.tags()["class_names"])) == dm.num_classes
    # windows at 0 and 32 px (the last moved back): each block that the same windows
    # cover holds one class (nodata aside)
    for r in (0, 32, 64):
        for c in (0, 32, 64):
            block = classes[r : r + 32, c : c + 32]
            assert len(np.unique(block[block != 255])) == 1
