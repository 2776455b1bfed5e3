import logging
from types import SimpleNamespace

import pytest
import shapely
import torch
import yaml
from lightning.pytorch import LightningModule, Trainer

from geomae.bands import L2A_BANDS
from geomae.datamodules.pretrain import Sentinel2PretrainDataModule, split_extent
from geomae.errors import BandError, ConfigError, DataError
from geomae.stats import BandStat, BandStats


@pytest.fixture
def band_files(tmp_path, s2data):
    root = tmp_path / "IMG_DATA"
    s2data.write_band_files(root, size=96, layout="l2a", nodata=0)
    return root


@pytest.fixture
def multiband(tmp_path, s2data):
    root = tmp_path / "tiles"
    s2data.write_multiband(root / "a.tif", size=96, nodata=0)
    return root


@pytest.fixture
def stats_file(tmp_path):
    stats = BandStats({b: BandStat(1000.0 + 10 * i, 100.0) for i, b in enumerate(L2A_BANDS)})
    path = tmp_path / "stats.yaml"
    stats.save(path)
    return path


def _boxes(sampler):
    return [shapely.box(x.start, y.start, x.stop, y.stop) for x, y, _ in sampler]


@pytest.mark.parametrize("tile_format", ["bands", "multiband"])
def test_train_val_batches(request, tile_format, stats_file):
    paths = request.getfixturevalue("band_files" if tile_format == "bands" else "multiband")
    dm = Sentinel2PretrainDataModule(
        paths=str(paths),
        bands="rgbn",
        patch_size=32,
        batch_size=4,
        length=8,
        stats=str(stats_file),
        nodata=0,
        tile_format=tile_format,
    )
    assert dm.bands == ["B02", "B03", "B04", "B08"]
    assert list(dm.stats.bands) == dm.bands
    dm.setup("fit")
    train = list(dm.train_dataloader())
    assert len(train) == 2
    raw = train[0]
    assert set(raw) == {"image", "valid"}  # bounds / crs dropped by the collate
    assert raw["image"].shape == (4, 4, 32, 32) and raw["image"].dtype == torch.float32
    batch = dm.transfer_batch_to_device(raw, torch.device("cpu"), 0)
    dm.trainer = SimpleNamespace(training=True)
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["image"].shape == (4, 4, 32, 32) and out["image"].dtype == torch.float32
    assert out["valid"].shape == (4, 1, 32, 32) and out["valid"].dtype == torch.bool
    assert torch.isfinite(out["image"]).all()
    val = list(dm.val_dataloader())
    assert sum(len(b["image"]) for b in val) == len(dm.val_sampler) == 3
    assert val[0]["image"].shape[1:] == (4, 32, 32)


def test_val_tiles_are_outside_train_region(band_files):
    dm = Sentinel2PretrainDataModule(
        paths=str(band_files), patch_size=16, length=200, val_fraction=0.25, val_stride=8
    )
    dm.setup("fit")
    train_boxes, val_boxes = _boxes(dm.train_sampler), _boxes(dm.val_sampler)
    assert len(train_boxes) == 200 and len(val_boxes) > 0
    train_union = shapely.union_all(train_boxes)
    for box in val_boxes:
        assert dm.val_roi.buffer(1e-6).contains(box)
        assert box.intersection(train_union).area == 0
    for box in train_boxes:
        assert dm.train_roi.buffer(1e-6).contains(box)
    # the val strip is at the right end (the extent is square: x is split)
    assert dm.val_roi.bounds[2] == dm.dataset.bounds[0].stop


def test_split_extent_tiles_exactly():
    train, val = split_extent(
        (0.0, 0.0, 1000.0, 400.0), res=(10.0, 10.0), patch_size=16, val_fraction=0.2, val_stride=5
    )
    # longer axis x: 100 px, val 20 px -> 16 + 0*5 = 16 px; across: 40 -> 16 + 4*5 = 36 px
    assert val == (840.0, 40.0, 1000.0, 400.0)
    assert train == (0.0, 0.0, 840.0, 400.0)
    train, val = split_extent(
        (0.0, 0.0, 400.0, 1000.0), res=(10.0, 10.0), patch_size=16, val_fraction=0.3, val_stride=16
    )
    # longer axis y: 100 px, val 30 px -> 16 px bottom strip; across: 40 -> 32 px
    assert val == (0.0, 0.0, 320.0, 160.0)
    assert train == (0.0, 160.0, 400.0, 1000.0)
    with pytest.raises(ConfigError, match="too small"):
        split_extent(
            (0.0, 0.0, 300.0, 300.0),
            res=(10.0, 10.0),
            patch_size=16,
            val_fraction=0.5,
            val_stride=16,
        )


def test_band_pipeline_uses_stats_and_offset(multiband, stats_file):
    dm = Sentinel2PretrainDataModule(
        paths=str(multiband),
        tile_format="multiband",
        bands=["B03"],
        patch_size=32,
        stats=str(stats_file),
        offset=100.0,
        augment="none",
    )
    image = torch.full((1, 1, 4, 4), 1220.0)
    out = dm.on_after_batch_transfer({"image": image}, 0)
    # B03 mean 1000 + 10 * 2, std 100; (1220 - 100 - 1020) / 100 = 1
    assert torch.allclose(out["image"], torch.ones(1, 1, 4, 4))
    assert dm.describe() == {"bands": ["B03"], "stats": dm.stats.to_dict(), "offset": 100.0}
    assert dm.describe()["stats"]["bands"]["B03"] == {"mean": 1020.0, "std": 100.0}


def test_augment_only_while_training(multiband):
    dm = Sentinel2PretrainDataModule(
        paths=str(multiband), tile_format="multiband", patch_size=32, augment="flip"
    )
    image = torch.rand(16, 12, 8, 8) * 3000
    plain = dm.on_after_batch_transfer({"image": image}, 0)["image"]  # no trainer
    dm.trainer = SimpleNamespace(training=False)
    assert torch.equal(dm.on_after_batch_transfer({"image": image}, 0)["image"], plain)
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    assert not torch.equal(dm.on_after_batch_transfer({"image": image}, 0)["image"], plain)


def test_no_stats_warns_and_uses_defaults(multiband, caplog):
    with caplog.at_level(logging.WARNING, logger="geomae.datamodules.base"):
        dm = Sentinel2PretrainDataModule(
            paths=str(multiband), tile_format="multiband", patch_size=32
        )
        assert dm.stats.bands["B02"] == BandStats.default().bands["B02"]
        assert dm.stats_source == "default"
        # the warning comes with the first batch (a task may still hand in stats), once
        image = torch.full((2, len(dm.source_bands), 32, 32), 1000.0)
        dm.trainer = SimpleNamespace(training=False)
        dm.on_after_batch_transfer({"image": image}, 0)
        dm.on_after_batch_transfer({"image": image}, 0)
    assert caplog.text.count("geomae stats") == 1


def test_no_matching_files(tmp_path):
    with pytest.raises(DataError) as err:
        Sentinel2PretrainDataModule(paths=str(tmp_path / "nowhere"))
    assert str(tmp_path / "nowhere") in str(err.value)
    assert "T*_*_B02*.jp2|tif" in str(err.value)


def test_unknown_band(band_files):
    with pytest.raises(BandError, match="B14"):
        Sentinel2PretrainDataModule(paths=str(band_files), bands="B02,B14")


def test_band_not_in_multiband_tiles(tmp_path, s2data):
    s2data.write_multiband(tmp_path / "t.tif", size=48, band_order=["B04", "B03", "B02"])
    with pytest.raises(BandError, match="B08"):
        Sentinel2PretrainDataModule(
            paths=str(tmp_path),
            tile_format="multiband",
            band_order=["B04", "B03", "B02"],
            bands="rgbn",
            patch_size=16,
        )


def test_stats_file_missing_band(band_files, tmp_path):
    path = tmp_path / "rgb_stats.yaml"
    path.write_text(
        yaml.safe_dump({"bands": {b: {"mean": 1.0, "std": 2.0} for b in ("B02", "B03", "B04")}})
    )
    with pytest.raises(BandError) as err:
        Sentinel2PretrainDataModule(paths=str(band_files), bands="rgbn", stats=str(path))
    assert "B08" in str(err.value) and str(path) in str(err.value)


def test_patch_size_too_big(band_files):
    with pytest.raises(
        ConfigError, match=r"patch_size=128 px is larger than the data .* \(96x96 px"
    ):
        Sentinel2PretrainDataModule(paths=str(band_files), patch_size=128)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"val_stride": 100}, "val_stride"),
        ({"tile_format": "zarr"}, "tile_format"),
        ({"augment": "spin"}, "augment"),
    ],
)
def test_bad_options(band_files, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        Sentinel2PretrainDataModule(paths=str(band_files), patch_size=32, **kwargs)


def test_band_pattern(tmp_path, s2data):
    root = tmp_path / "scene"
    s2data.write_band_files(root, size=96, filename="s2_{band}.jp2", ext="jp2", nodata=0)
    dm = Sentinel2PretrainDataModule(
        paths=str(root),
        band_pattern="s2_{band}.jp2",
        bands="B02,B11",
        patch_size=32,
        batch_size=2,
        length=2,
        nodata=0,
    )
    assert dm.hparams["band_pattern"] == "s2_{band}.jp2"
    assert [f.rsplit("/", 1)[1] for f in dm.geo_dataset.raster_files()] == [
        "s2_B02.jp2",
        "s2_B11.jp2",
    ]
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 2, 32, 32)
    with pytest.raises(DataError, match=r"no Sentinel-2 files .*s2_\{band\}\.tif"):
        Sentinel2PretrainDataModule(paths=str(root), band_pattern="s2_{band}.tif")
    with pytest.raises(ConfigError, match="tile_format='bands'"):
        Sentinel2PretrainDataModule(
            paths=str(root), band_pattern="s2_{band}.jp2", tile_format="multiband"
        )
    with pytest.raises(ConfigError, match=r"\{band\}"):
        Sentinel2PretrainDataModule(paths=str(root), band_pattern="s2_B02.jp2")


def test_real_virginia_scene_batch(virginia_scene):
    stats = virginia_scene.parent / "stats.yaml"
    dm = Sentinel2PretrainDataModule(
        paths=str(virginia_scene),
        band_pattern="s2_{band}.jp2",
        patch_size=32,
        batch_size=2,
        length=2,
        stats=str(stats),
    )
    assert dm.bands == list(L2A_BANDS)
    dm.setup("fit")
    out = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert out["image"].shape == (2, 12, 32, 32)
    assert out["image"].mean().abs() < 2 and 0.05 < out["image"].std() < 5


def test_real_sample_scene_batch(sample_scene):
    stats = sample_scene.parent / "stats.yaml"
    dm = Sentinel2PretrainDataModule(
        paths=str(sample_scene), patch_size=32, batch_size=2, length=2, stats=str(stats)
    )
    assert dm.bands == list(L2A_BANDS)
    assert dm.stats.attrs["num_samples"] == 256
    dm.setup("fit")
    batch = next(iter(dm.train_dataloader()))
    out = dm.on_after_batch_transfer(batch, 0)
    assert out["image"].shape == (2, 12, 32, 32)
    # the shipped stats normalize the scene to roughly zero mean, unit scale
    assert out["image"].mean().abs() < 1.5 and 0.1 < out["image"].std() < 3


class _Recorder(LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
        self.seen = {}

    def _step(self, batch, split):
        self.seen[split] = {k: (tuple(v.shape), v.dtype) for k, v in batch.items()}
        return self.layer(batch["image"].mean(dim=(2, 3))).mean()

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_lightning_fit_sees_pipeline_batches(band_files, tmp_path):
    dm = Sentinel2PretrainDataModule(
        paths=str(band_files), bands="10m", patch_size=32, batch_size=2, length=4, nodata=0
    )
    model = _Recorder()
    trainer = Trainer(
        default_root_dir=tmp_path,
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=1,
        num_sanity_val_steps=0,
    )
    trainer.fit(model, datamodule=dm)
    for split in ("train", "val"):
        assert model.seen[split] == {
            "image": ((2, 4, 32, 32), torch.float32),
            "valid": ((2, 1, 32, 32), torch.bool),
        }


def test_constructor_args_parse_from_config(band_files, stats_file):
    from jsonargparse import ArgumentParser

    parser = ArgumentParser()
    parser.add_class_arguments(Sentinel2PretrainDataModule, "data")
    config = parser.parse_object(
        {
            "data": {
                "paths": str(band_files),
                "bands": ["B04", "B03", "B02"],
                "patch_size": 32,
                "stats": str(stats_file),
                "augment": "full",
                "crop_scale": [0.4, 0.9],
                "nodata": 0,
            }
        }
    )
    dm = parser.instantiate_classes(config)["data"]
    assert isinstance(dm, Sentinel2PretrainDataModule)
    assert dm.bands == ["B02", "B03", "B04"]
    assert dm.band_pipeline.augment.crop_scale == (0.4, 0.9)
