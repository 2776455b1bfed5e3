"""SSL4EO-S12 DataModule: seasons as augmentation, splits, levels, a fit through the CLI."""

from types import SimpleNamespace

import pytest
import torch
import yaml

from geomae.datamodules.ssl4eo import SSL4EOS12DataModule, split_locations
from geomae.errors import ConfigError
from geomae.main import main
from geomae.metadata import GeoMetadata
from geomae.samplers import SeasonSampler

SIZE = 24


@pytest.fixture
def root(tmp_path, ssl4eodata):
    ssl4eodata.write_ssl4eo(tmp_path / "ssl4eo", "s2c", size=SIZE, locations=6)
    ssl4eodata.write_ssl4eo(tmp_path / "ssl4eo", "s2a", size=SIZE, locations=6)
    return tmp_path / "ssl4eo"


def _seasons_of(loader, base_of):
    """{location folder: season} of every sample, from the encoded pixel values."""
    seen = {}
    for batch in loader:
        for image, season in zip(batch["image"], batch["season"], strict=True):
            value = int(image[0].min())  # B01 (or the first band) base value of row 0
            location, drawn = divmod(value - base_of, 1000)
            assert drawn // 100 == int(season)
            seen[location - 1] = int(season)
    return seen


def test_season_sampler_is_seeded_per_epoch():
    data = range(200)
    a = SeasonSampler(data, size=24, patch_size=16, seed=3)
    b = SeasonSampler(data, size=24, patch_size=16, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    second = list(a)
    assert first != second
    by_location = [dict((k[0], k[1]) for k in keys) for keys in (first, second)]
    assert by_location[0] != by_location[1]  # seasons change between epochs
    assert set(by_location[0].values()) == {0, 1, 2, 3}
    assert all(0 <= k[2] <= 8 and 0 <= k[3] <= 8 for k in first)
    fixed = SeasonSampler(data, size=24, patch_size=16, season=2, crop="center", shuffle=False)
    assert list(fixed)[:2] == [(0, 2, 4, 4), (1, 2, 4, 4)]
    with pytest.raises(ValueError, match="season must be 'random' or 0..3"):
        SeasonSampler(data, size=24, patch_size=16, season=4)


def test_season_sampler_shards_by_rank():
    data = range(10)
    shards = [
        list(SeasonSampler(data, size=8, patch_size=8, num_replicas=2, rank=r, seed=1))
        for r in (0, 1)
    ]
    assert len(shards[0]) == len(shards[1]) == 5
    assert sorted(k[0] for s in shards for k in s) == list(range(10))


def test_split_locations():
    train, val = split_locations(100, val_fraction=0.1, seed=0)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100
    assert split_locations(3, val_fraction=0.01, seed=0)[1].size == 1
    with pytest.raises(ConfigError, match="leaves no training location"):
        split_locations(1, val_fraction=0.5, seed=0)


@pytest.mark.parametrize(
    ("split", "bands", "level", "count"),
    [("s2c", "l1c", "L1C", 13), ("s2c", None, "L1C", 12), ("s2a", None, "L2A", 12)],
)
def test_level_bands_and_offset_per_split(root, split, bands, level, count):
    dm = SSL4EOS12DataModule(root=str(root), split=split, bands=bands, patch_size=16)
    assert dm.processing_level == level and len(dm.bands) == count
    assert dm.describe()["offset"] == 0.0 and dm.patch_size == 16
    assert ("B10" in dm.bands) == (count == 13)


def test_random_season_per_location_per_epoch(root, ssl4eodata):
    dm = SSL4EOS12DataModule(
        root=str(root), split="s2a", bands="rgb", patch_size=16, batch_size=1, val_fraction=0.2
    )
    dm.setup("fit")
    assert len(dm.train_dataset) == 5 and len(dm.val_dataset) == 1
    base = ssl4eodata.pixel_value(0, 0, "B2") - 1000  # band index of B02 (the first of rgb)
    epochs = []
    for epoch in range(4):
        loader = dm.train_dataloader()
        loader.sampler.set_epoch(epoch)
        epochs.append(_seasons_of(loader, base))
    assert all(len(seen) == 5 for seen in epochs)
    assert len({tuple(sorted(s.items())) for s in epochs}) > 1  # seasons vary by epoch
    again = dm.train_dataloader()
    again.sampler.set_epoch(2)
    assert _seasons_of(again, base) == epochs[2]  # and repeat with the seed
    val = [_seasons_of(dm.val_dataloader(), base) for _ in range(2)]
    assert val[0] == val[1] and set(val[0].values()) == {0}


def test_fixed_season_and_batches(root, ssl4eodata):
    dm = SSL4EOS12DataModule(
        root=str(root), split="s2c", bands="10m", season=3, patch_size=16, batch_size=2,
        val_fraction=0.0,
    )  # fmt: skip
    dm.setup("fit")
    assert dm.val_dataloader() == []
    raw = next(iter(dm.train_dataloader()))
    assert raw["image"].shape == (2, 4, 16, 16) and set(raw["season"].tolist()) == {3}
    dm.trainer = SimpleNamespace(training=True)
    out = dm.on_after_batch_transfer(dm.transfer_batch_to_device(raw, torch.device("cpu"), 0), 0)
    assert out["image"].shape == (2, 4, 16, 16) and torch.isfinite(out["image"]).all()


def test_bad_options(root):
    with pytest.raises(ConfigError, match="season=7 must be 'random' or a season 0..3"):
        SSL4EOS12DataModule(root=str(root), season=7, patch_size=16)
    with pytest.raises(ConfigError, match="patch_size=300 must be between 1 and"):
        SSL4EOS12DataModule(root=str(root), patch_size=300)
    with pytest.raises(ConfigError, match="split='s1'"):
        SSL4EOS12DataModule(root=str(root), split="s1", patch_size=16)


def test_fit_through_the_cli_records_the_level(root, tmp_path):
    out = tmp_path / "run"
    cfg = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu", "devices": 1, "max_steps": 3, "logger": False,
            "enable_progress_bar": False, "enable_model_summary": False,
            "num_sanity_val_steps": 0, "default_root_dir": str(out),
            "callbacks": [{
                "class_path": "lightning.pytorch.callbacks.ModelCheckpoint",
                "init_args": {"dirpath": str(out / "ckpt"), "save_last": True},
            }],
        },
        "model": {
            "class_path": "geomae.trainers.MAETask",
            "init_args": {
                "groups": "single", "embed_dim": 16, "depth": 1, "num_heads": 2,
                "decoder_embed_dim": 16, "decoder_depth": 1, "decoder_num_heads": 2,
                "patch_size": 8, "base_lr": 0.01, "warmup_steps": 1,
            },
        },
        "data": {
            "class_path": "geomae.datamodules.SSL4EOS12DataModule",
            "init_args": {
                "root": str(root), "split": "s2a", "bands": "rgbn", "patch_size": 16,
                "batch_size": 2, "val_fraction": 0.2,
            },
        },
    }  # fmt: skip
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(cfg))
    assert main(["fit", "--config", str(config)]) == 0
    ckpt = torch.load(out / "ckpt" / "last.ckpt", map_location="cpu", weights_only=False)
    meta = GeoMetadata.from_dict(ckpt["geomae"])
    assert meta.processing_level == "L2A" and meta.offset == 0.0
    assert meta.bands == ["B02", "B03", "B04", "B08"]
