"""Fine-tuning DataModules: EuroSAT, BigEarthNet and land-cover segmentation."""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.datamodules.base import GeomaeDataModule, stats_differences
from geomae.datamodules.bigearthnet import BigEarthNetDataModule
from geomae.datamodules.eurosat import EuroSATDataModule
from geomae.datamodules.segmentation import (
    LandCoverSegmentationDataModule,
    spatial_split_rois,
)
from geomae.errors import BandError, ConfigError, DataError
from geomae.stats import BandStat, BandStats

DATA = Path(__file__).parents[1] / "data"
SAMPLE = Path(__file__).parents[2] / "datasets" / "sentinel2_sample"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"{name}_fixture", DATA / name / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


eurosat = _load("eurosat")
bigearthnet = _load("bigearthnet")
landcover = _load("landcover")


@pytest.fixture(scope="module")
def eurosat_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("eurosat")
    eurosat.write_eurosat(root)
    return root


@pytest.fixture(scope="module")
def ben_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("bigearthnet")
    bigearthnet.write_bigearthnet(root)
    return root


@pytest.fixture(scope="module")
def lc_paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return landcover.write_landcover(tmp_path_factory.mktemp("landcover"))


def _stats(values: dict[str, float], std: float = 100.0) -> BandStats:
    return BandStats({b: BandStat(v, std) for b, v in values.items()})


def _batch(dm, split: str = "train") -> dict[str, torch.Tensor]:
    loader = getattr(dm, f"{split}_dataloader")()
    return next(iter(loader))


# ---- EuroSAT ---------------------------------------------------------------------------
def test_eurosat_batch_through_pipeline(eurosat_root: Path) -> None:
    stats = _stats({b: eurosat.value_of(b) for b in L2A_BANDS})
    dm = EuroSATDataModule(root=eurosat_root, batch_size=4, stats=stats)
    assert isinstance(dm, GeomaeDataModule)
    assert dm.task == "multiclass" and dm.num_classes == 10
    assert dm.class_names[0] == "AnnualCrop" and dm.class_names[-1] == "SeaLake"
    dm.setup("fit")
    raw = _batch(dm)
    assert set(raw) == {"image", "label"}
    assert raw["image"].shape == (4, 12, 64, 64) and raw["label"].shape == (4,)
    out = dm.on_after_batch_transfer(raw, 0)
    assert out["image"].shape == (4, 12, 64, 64) and out["image"].dtype == torch.float32
    assert out["valid"].shape == (4, 1, 64, 64) and out["valid"].dtype == torch.bool
    assert out["label"].dtype == torch.int64
    # (value + noise in [0, 50) - mean) / 100 lies in [0, 0.5) for every band, in order
    assert float(out["image"].min()) >= 0.0 and float(out["image"].max()) < 0.5
    # train: 20 images, drop_last -> 5 batches; val: 10 images kept -> 3 batches
    assert len(dm.train_dataloader()) == 5 and len(dm.val_dataloader()) == 3


def test_eurosat_rgb_subset(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(
        root=eurosat_root, bands="rgb", batch_size=2, stats=_stats({"B02": 0, "B03": 0, "B04": 0})
    )
    assert dm.bands == ["B02", "B03", "B04"] and dm.source_bands == dm.bands
    dm.setup("validate")
    out = dm.on_after_batch_transfer(_batch(dm, "val"), 0)
    assert out["image"].shape == (2, 3, 64, 64)
    levels = (out["image"] * 100).amin(dim=(0, 2, 3)).round()  # raw DN of each channel
    assert levels.tolist() == [eurosat.value_of(b) for b in ("B02", "B03", "B04")]


def test_eurosat_augments_only_while_training(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=eurosat_root, batch_size=4, augment="flip")
    dm.setup("fit")
    raw = _batch(dm)
    plain = dm.on_after_batch_transfer(dict(raw), 0)
    torch.manual_seed(0)
    dm.trainer = SimpleNamespace(training=True)
    augmented = dm.on_after_batch_transfer(dict(raw), 0)
    assert augmented["image"].shape == plain["image"].shape
    assert not torch.equal(augmented["image"], plain["image"])  # 4 samples, p=0.5 flips
    # flips only reorder pixels
    assert torch.allclose(augmented["image"].sum(dim=(2, 3)), plain["image"].sum(dim=(2, 3)))


def test_eurosat_pin_memory_and_describe(eurosat_root: Path, monkeypatch) -> None:
    dm = EuroSATDataModule(root=eurosat_root, batch_size=2, pin_memory=True, offset=10.0)
    dm.setup("test")
    assert dm.test_dataloader().pin_memory is torch.cuda.is_available()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert dm.test_dataloader().pin_memory is True  # (the loader is not iterated here)
    dm.pin_memory = False
    assert dm.test_dataloader().pin_memory is False
    info = dm.describe()
    assert info["bands"] == list(L2A_BANDS) and info["offset"] == 10.0
    assert set(info["stats"]["bands"]) == set(L2A_BANDS)


def test_eurosat_download_and_missing_root(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=f"never downloads.*{tmp_path}"):
        EuroSATDataModule(root=tmp_path, download=True)
    with pytest.raises(DataError, match=str(tmp_path / "missing")):
        EuroSATDataModule(root=tmp_path / "missing")


# ---- stats handling --------------------------------------------------------------------
def test_default_stats_warn_once_at_the_first_batch(eurosat_root: Path, caplog) -> None:
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2)
    assert dm.stats_source == "default"
    with caplog.at_level(logging.WARNING):
        dm.setup("validate")
        assert caplog.text == ""  # a task may still provide its backbone's stats
        dm.on_after_batch_transfer(_batch(dm, "val"), 0)
        dm.on_after_batch_transfer(_batch(dm, "val"), 0)
    assert caplog.text.count("approximate global L1C defaults") == 1
    assert dm.stats.bands["B02"] == BandStats.default().bands["B02"]


def test_set_stats_replaces_defaults_silently(eurosat_root: Path, caplog) -> None:
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2)
    backbone = _stats({"B02": 1.0, "B03": 2.0, "B04": 3.0, "B08": 4.0})
    with caplog.at_level(logging.WARNING):
        dm.set_stats(backbone, source="backbone ckpt.ckpt")
        dm.setup("validate")
    assert caplog.text == ""
    assert dm.stats_source == "backbone ckpt.ckpt"
    assert list(dm.stats.bands) == ["B02", "B03", "B04"]
    assert dm.stats.bands["B03"].mean == 2.0
    out = dm.on_after_batch_transfer(_batch(dm, "val"), 0)
    expected = (eurosat.value_of("B03") - 2.0) / 100.0
    assert abs(float(out["image"][:, 1].min()) - expected) < 1e-4


def test_user_stats_override_backbone_with_warning(eurosat_root: Path, caplog) -> None:
    user = _stats({"B02": 1400.0, "B03": 1300.0, "B04": 1200.0})
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", stats=user)
    backbone = _stats({"B02": 1400.0, "B03": 1350.0, "B04": 1200.0}, std=100.0)
    backbone.bands["B04"] = BandStat(1200.0, 90.0)
    with caplog.at_level(logging.WARNING):
        dm.set_stats(backbone, source="backbone model.safetensors")
    assert "backbone model.safetensors" in caplog.text
    assert "B03: mean 1300 vs 1350" in caplog.text and "B04: std 100 vs 90" in caplog.text
    assert "B02" not in caplog.text
    assert dm.stats.bands["B03"].mean == 1300.0  # the user's stats win
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dm.set_stats(user, source="same stats")
    assert caplog.text == ""


def test_set_stats_missing_band_is_an_error(eurosat_root: Path) -> None:
    dm = EuroSATDataModule(root=eurosat_root, bands="rgbn")
    with pytest.raises(BandError, match="B08"):
        dm.set_stats(_stats({"B02": 1.0, "B03": 1.0, "B04": 1.0}), source="backbone")


def test_stats_differences_lists_missing_bands() -> None:
    ours = _stats({"B02": 1.0, "B03": 2.0})
    theirs = _stats({"B02": 1.0})
    assert stats_differences(ours, theirs, ["B02", "B03"]) == [
        "B03: missing from the compared stats"
    ]
    assert stats_differences(ours, ours, ["B02", "B03"]) == []


# ---- BigEarthNet -----------------------------------------------------------------------
def test_bigearthnet_batch_through_pipeline(ben_root: Path) -> None:
    dm = BigEarthNetDataModule(root=ben_root, batch_size=2)
    assert dm.task == "multilabel" and dm.num_classes == 19 and len(dm.class_names) == 19
    dm.setup("fit")
    raw = _batch(dm)
    out = dm.on_after_batch_transfer(raw, 0)
    assert out["image"].shape == (2, 12, 120, 120) and out["image"].dtype == torch.float32
    assert out["valid"].shape == (2, 1, 120, 120) and bool(out["valid"].all())
    assert out["label"].shape == (2, 19) and out["label"].dtype == torch.float32
    assert set(out["label"].unique().tolist()) <= {0.0, 1.0}
    # normalized with the default stats, channel by channel in canonical order
    default = BandStats.default()
    for i, band in enumerate(L2A_BANDS):
        expected = (bigearthnet.value_of(band) - default.bands[band].mean) / default.bands[band].std
        assert abs(float(out["image"][0, i, 0, 0]) - expected) < 1e-4


def test_bigearthnet_43_classes_and_subset(ben_root: Path) -> None:
    dm = BigEarthNetDataModule(root=ben_root, batch_size=1, num_classes=43, bands="10m")
    assert dm.num_classes == 43 and dm.bands == ["B02", "B03", "B04", "B08"]
    dm.setup("validate")
    out = dm.on_after_batch_transfer(_batch(dm, "val"), 0)
    assert out["image"].shape == (1, 4, 120, 120) and out["label"].shape == (1, 43)


def test_bigearthnet_config_errors(ben_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="19 or 43"):
        BigEarthNetDataModule(root=ben_root, num_classes=10)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="never downloads"):
        BigEarthNetDataModule(root=ben_root, download=True)
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        BigEarthNetDataModule(root=tmp_path / "nope")


# ---- land-cover segmentation -----------------------------------------------------------
def test_spatial_split_rois_are_adjacent_strips() -> None:
    rois = spatial_split_rois((0.0, 0.0, 100.0, 40.0), (0.5, 0.25, 0.25))
    assert [r.bounds for r in rois] == [
        (0.0, 0.0, 50.0, 40.0),
        (50.0, 0.0, 75.0, 40.0),
        (75.0, 0.0, 100.0, 40.0),
    ]
    tall = spatial_split_rois((0.0, 0.0, 10.0, 40.0), (0.5, 0.5), axis="auto")
    assert [r.bounds for r in tall] == [(0.0, 0.0, 10.0, 20.0), (0.0, 20.0, 10.0, 40.0)]
    with pytest.raises(ConfigError, match="sum to 1"):
        spatial_split_rois((0.0, 0.0, 1.0, 1.0), (0.5, 0.2))


def _segmentation(lc_paths, **kwargs) -> LandCoverSegmentationDataModule:
    options = {
        "paths": lc_paths["scene"],
        "label_paths": lc_paths["vector"],
        "classes": list(landcover.CLASSES),
        "patch_size": 16,
        "batch_size": 3,
        "length": 6,
    }
    options.update(kwargs)
    return LandCoverSegmentationDataModule(**options)


def test_segmentation_vector_batch_through_pipeline(lc_paths) -> None:
    dm = _segmentation(lc_paths)
    assert dm.task == "segmentation" and dm.num_classes == 3 and dm.ignore_index == 255
    assert dm.class_names == ["farm", "forest", "water"]
    dm.setup("fit")
    raw = _batch(dm)
    assert set(raw) == {"image", "valid", "mask"}
    out = dm.on_after_batch_transfer(raw, 0)
    assert out["image"].shape == (3, 12, 16, 16) and out["image"].dtype == torch.float32
    assert out["valid"].shape == (3, 1, 16, 16) and out["valid"].dtype == torch.bool
    assert out["mask"].shape == (3, 16, 16) and out["mask"].dtype == torch.int64
    assert set(out["mask"].unique().tolist()) <= {0, 1, 2, 255}
    assert bool((out["mask"][~out["valid"][:, 0]] == 255).all())
    assert len(dm.train_dataloader()) == 2  # length 6 / batch 3


def test_segmentation_train_augment_moves_mask_with_image(lc_paths) -> None:
    dm = _segmentation(lc_paths, bands="B02", stats=_stats({"B02": 0.0}, std=1.0))
    dm.trainer = SimpleNamespace(training=True)
    generator = torch.Generator().manual_seed(0)
    mask = torch.randint(0, 3, (8, 16, 16), generator=generator)
    batch = {
        "image": mask[:, None].float() * 10.0,  # (B, 1, H, W): the image encodes the mask
        "valid": torch.ones(8, 1, 16, 16, dtype=torch.bool),
        "mask": mask,
    }
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(batch, 0)
    assert not torch.equal(out["mask"], mask)  # 8 samples: some were flipped or rotated
    assert torch.equal(out["image"][:, 0], out["mask"].float() * 10.0)


def test_segmentation_loader_with_a_worker_process(lc_paths) -> None:
    dm = _segmentation(lc_paths, num_workers=1, length=3, pin_memory=True)
    dm.setup("fit")
    loader = dm.train_dataloader()
    assert loader.pin_memory is torch.cuda.is_available()
    batches = list(loader)
    assert len(batches) == 1 and batches[0]["mask"].shape == (3, 16, 16)


def test_segmentation_strips_do_not_overlap(lc_paths) -> None:
    dm = _segmentation(lc_paths, patch_size=8)
    dm.setup("fit")
    dm.setup("test")
    train, val, test = (dm.train_dataset, dm.val_dataset, dm.test_dataset)
    extents = [(ds.bounds[0].start, ds.bounds[0].stop) for ds in (train, val, test)]
    x0 = landcover.ORIGIN[0]
    # the labelled area (scene ∩ polygons, 1100 m wide) split 0.7 / 0.15 / 0.15 west to east
    assert extents == [(x0, x0 + 770.0), (x0 + 770.0, x0 + 935.0), (x0 + 935.0, x0 + 1100.0)]
    for query in dm.train_batch_sampler:
        for q in query:
            assert x0 <= q[0].start and q[0].stop <= x0 + 770.0
    val_queries = list(dm.val_sampler)
    # val strip 165 m x 600 m, 80 m patches: x starts 770, 850, 855; y 8 rows, last moved back
    assert len(val_queries) == len(dm.val_sampler) == 24
    assert sorted({q[0].start - x0 for q in val_queries}) == [770.0, 850.0, 855.0]
    assert all(x0 + 770.0 <= q[0].start and q[0].stop <= x0 + 935.0 for q in val_queries)
    batch = _batch(dm, "val")
    assert batch["image"].shape[1:] == (12, 8, 8)


def test_segmentation_raster_labels_rgb(lc_paths) -> None:
    dm = _segmentation(
        lc_paths,
        label_paths=lc_paths["raster"],
        class_values=list(landcover.CLASS_VALUES),
        bands="rgb",
        stats=_stats({"B02": 0.0, "B03": 0.0, "B04": 0.0}),
        split_axis="y",
        split_fractions=(0.5, 0.25, 0.25),
        patch_size=8,
    )
    assert dm.bands == ["B02", "B03", "B04"]
    dm.setup("validate")
    out = dm.on_after_batch_transfer(_batch(dm, "val"), 0)
    assert out["image"].shape == (3, 3, 8, 8)
    valid = out["valid"][:, 0]
    raw = (out["image"] * 100).round()  # stats mean 0, std 100 -> raw DN
    for i, band in enumerate(dm.bands):
        assert bool((raw[:, i][valid] == landcover.value_of(band)).all())
    # y split south to north: val is rows 15-29 (10 m px), i.e. farm (0-19) and forest
    # (20-39); the first batch is its southern row of patches; water (40-59) is train's
    classes = set(out["mask"].unique().tolist())
    assert 1 in classes and classes <= {0, 1, 255}


def test_segmentation_errors(lc_paths, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        _segmentation(lc_paths, download=True)
    with pytest.raises(DataError, match=str(tmp_path / "scene")):
        _segmentation(lc_paths, paths=tmp_path / "scene")
    with pytest.raises(DataError, match="labels.gpkg"):
        _segmentation(lc_paths, label_paths=tmp_path / "labels.gpkg")
    dm = _segmentation(lc_paths, patch_size=32)
    with pytest.raises(ConfigError, match="val strip"):
        dm.setup("fit")


def test_segmentation_band_pattern(lc_paths, tmp_path: Path) -> None:
    scene = tmp_path / "renamed"
    scene.mkdir()
    for path in sorted(Path(lc_paths["scene"]).glob(f"{landcover.SCENE}_B*.tif")):
        band = path.stem.rsplit("_", 1)[1]
        (scene / f"lc-{band}.tif").symlink_to(path)
    dm = _segmentation(lc_paths, paths=scene, band_pattern="lc-{band}.tif", bands="B02,B05")
    dm.setup("fit")
    raw = _batch(dm)
    assert raw["image"].shape == (3, 2, 16, 16)
    valid = raw["valid"][:, 0]
    assert bool((raw["image"][:, 0][valid] == landcover.value_of("B02")).all())
    assert bool((raw["image"][:, 1][valid] == landcover.value_of("B05")).all())
    with pytest.raises(ConfigError, match=r"\{band\}"):
        _segmentation(lc_paths, paths=scene, band_pattern="lc-B02.tif")


def test_segmentation_on_bundled_scene_and_osm_polygons() -> None:
    dm = LandCoverSegmentationDataModule(
        paths=SAMPLE / "IMG_DATA",
        label_paths=SAMPLE / "osm_landuse.gpkg",
        classes=["farm", "forest", "grass", "meadow", "residential", "scrub", "water", "wetland"],
        patch_size=128,
        batch_size=4,
    )
    assert dm.num_classes == 8
    dm.setup("validate")
    out = dm.on_after_batch_transfer(_batch(dm, "val"), 0)
    assert out["image"].shape == (4, 12, 128, 128)
    assert bool(out["valid"].all())  # the sample scene has no nodata pixels
    assert bool(torch.isfinite(out["image"]).all())
    classes = set(out["mask"].unique().tolist()) - {255}
    assert len(classes) >= 3 and classes <= set(range(8))
