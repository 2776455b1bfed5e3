from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch import LightningModule, Trainer
from torch.utils.data import DistributedSampler

from geomae.bands import L2A_BANDS
from geomae.datamodules.tilestore import TileStoreDataModule, split_chunks, widen_uint16
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import ConfigError, DataError
from geomae.samplers import ChunkSampler
from geomae.store import TileStore, write_tile_store
from geomae.store.dataset import TileStoreDataset


@pytest.fixture
def store_path(tmp_path, s2data):
    """36 tiles of 16 px (9 chunks of 4) from a 96 px scene with a nodata corner."""
    s2data.write_band_files(tmp_path / "scene", size=96, nodata=0)
    ds = Sentinel2Scenes(paths=tmp_path / "scene", nodata=0)
    write_tile_store(ds, tmp_path / "store", tile_size=16, chunk_tiles=4, max_nodata=1.0)
    return tmp_path / "store"


def test_batches_are_model_ready(store_path):
    dm = TileStoreDataModule(path=str(store_path), batch_size=4, val_fraction=0.25)
    store = TileStore(store_path)
    assert dm.bands == dm.source_bands == list(L2A_BANDS)
    assert dm.stats.to_dict()["bands"] == store.info.stats.to_dict()["bands"]
    dm.setup("fit")
    raw = next(iter(dm.train_dataloader()))
    assert raw["image"].dtype == torch.uint16 and raw["image"].shape == (4, 12, 16, 16)
    assert raw["valid"].dtype == torch.bool and raw["valid"].shape == (4, 1, 16, 16)
    out = dm.on_after_batch_transfer(dict(raw), 0)
    image, valid = out["image"], out["valid"]
    assert image.dtype == torch.float32 and image.shape == (4, 12, 16, 16)
    assert valid.dtype == torch.bool and valid.shape == (4, 1, 16, 16)
    mean = torch.tensor(dm.stats.mean(dm.bands)).view(1, -1, 1, 1)
    std = torch.tensor(dm.stats.std(dm.bands)).view(1, -1, 1, 1)
    expected = (raw["image"].to(torch.float32) - mean) / std
    expected = torch.where(raw["valid"], expected, torch.zeros(()))
    torch.testing.assert_close(image, expected)
    torch.testing.assert_close(valid, raw["valid"])


def test_band_subset_and_explicit_stats(store_path):
    stats = {b: {"mean": 1000.0, "std": 500.0} for b in ("B02", "B03", "B04")}
    dm = TileStoreDataModule(path=str(store_path), bands="rgb", batch_size=2, stats=stats)
    assert dm.bands == ["B02", "B03", "B04"] and dm.source_bands == list(L2A_BANDS)
    dm.setup("validate")
    raw = next(iter(dm.val_dataloader()))
    out = dm.on_after_batch_transfer(dict(raw), 0)
    assert out["image"].shape == (2, 3, 16, 16)
    b03 = raw["image"][:, L2A_BANDS.index("B03")].to(torch.float32)
    ok = raw["valid"][:, 0]
    torch.testing.assert_close(out["image"][:, 1][ok], ((b03 - 1000.0) / 500.0)[ok])


def test_split_is_deterministic_disjoint_and_chunk_aligned(store_path):
    dm = TileStoreDataModule(path=str(store_path), val_fraction=0.25, seed=3)
    train, val = dm.train_indices, dm.val_indices
    assert len(val) == 8 and len(train) == 28  # 2 of 9 chunks of 4
    assert not set(train) & set(val) and set(train) | set(val) == set(range(36))
    assert len(set(val // 4)) == 2 and not set(val // 4) & set(train // 4)
    again = TileStoreDataModule(path=str(store_path), val_fraction=0.25, seed=3)
    np.testing.assert_array_equal(again.val_indices, val)
    other = [split_chunks(36, 4, val_fraction=0.25, seed=s)[1] for s in range(5)]
    assert len({tuple(v) for v in other}) > 1
    with pytest.raises(ConfigError, match="leaves no training data"):
        split_chunks(4, 4, val_fraction=0.1, seed=0)
    none_val = TileStoreDataModule(path=str(store_path), val_fraction=0.0)
    none_val.setup("fit")
    assert none_val.val_dataloader() == [] and len(none_val.train_dataset) == 36


def test_ddp_shards_are_disjoint_and_cover(store_path):
    dm = TileStoreDataModule(path=str(store_path), batch_size=4, val_fraction=0.25)
    dm.setup("fit")
    train = dm.train_dataset
    assert len(train) == 28
    # what Lightning would insert for a plain map-style dataset
    shards = [set(DistributedSampler(train, num_replicas=2, rank=r, seed=1)) for r in range(2)]
    assert not shards[0] & shards[1] and shards[0] | shards[1] == set(range(28))
    # what the DataModule actually uses under DDP: its ChunkSampler, kept by Lightning
    seen = []
    for rank in range(2):
        dm.trainer = SimpleNamespace(distributed_sampler_kwargs={"num_replicas": 2, "rank": rank})
        loader = dm.train_dataloader()
        assert isinstance(loader.sampler, ChunkSampler)
        assert isinstance(loader.sampler, DistributedSampler)
        assert (loader.sampler.num_replicas, loader.sampler.rank) == (2, rank)
        seen.append(list(loader.sampler))
    assert len(seen[0]) == len(seen[1]) == 14
    assert not set(seen[0]) & set(seen[1]) and set(seen[0]) | set(seen[1]) == set(range(28))


def test_getitems_matches_getitem(store_path):
    ds = TileStoreDataset(store_path, indices=[20, 3, 6, 5], return_bounds=True)
    batch = ds.__getitems__([2, 0, 3, 2])
    for sample, i in zip(batch, [2, 0, 3, 2], strict=True):
        single = ds[i]
        assert torch.equal(sample["image"], single["image"])
        assert torch.equal(sample["valid"], single["valid"])
        assert torch.equal(sample["bounds"], single["bounds"])
    assert ds.indices.tolist() == [3, 5, 6, 20]  # sorted: store neighbours stay neighbours
    assert [g.tolist() for g in ds.chunk_groups()] == [[0], [1, 2], [3]]  # chunks 0, 1, 5
    assert torch.equal(ds[1]["bounds"], torch.from_numpy(TileStore(store_path).bounds[5]))
    with pytest.raises(IndexError):
        ds[4]


def test_predict_reads_every_tile_in_order(store_path):
    dm = TileStoreDataModule(path=str(store_path), batch_size=8)
    dm.setup("predict")
    images = torch.cat([b["image"] for b in dm.predict_dataloader()])
    tiles, _ = TileStore(store_path).read(np.arange(36))
    np.testing.assert_array_equal(images.numpy(), tiles)


def test_widen_uint16_is_exact():
    image = torch.tensor([0, 1, 32767, 32768, 65535], dtype=torch.uint16).view(1, 5, 1, 1)
    out = widen_uint16({"image": image, "label": torch.tensor([1])})
    assert out["image"].dtype == torch.float32
    assert out["image"].flatten().tolist() == [0.0, 1.0, 32767.0, 32768.0, 65535.0]
    floats = {"image": torch.ones(1, 1, 1, 1)}
    assert widen_uint16(floats) is floats


def test_workers_read_the_same_tiles(store_path):
    dm = TileStoreDataModule(path=str(store_path), batch_size=8, num_workers=2)
    dm.setup("predict")
    images = torch.cat([b["image"] for b in dm.predict_dataloader()])
    tiles, _ = TileStore(store_path).read(np.arange(36))
    np.testing.assert_array_equal(images.numpy(), tiles)


def test_patch_size_must_match_the_store(store_path):
    assert TileStoreDataModule(path=str(store_path), patch_size=16).patch_size == 16
    assert TileStoreDataModule(path=str(store_path)).patch_size == 16
    with pytest.raises(ConfigError, match="holds 16-px tiles.*--tile-size 32"):
        TileStoreDataModule(path=str(store_path), patch_size=32)


def test_missing_store_is_named(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'missing'} does not exist"):
        TileStoreDataModule(path=str(tmp_path / "missing"))


class _Probe(LightningModule):
    """Records what the training and validation steps receive."""

    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(12, 1)
        self.seen = []

    def training_step(self, batch, batch_idx):
        self.seen.append(("train", batch["image"].dtype, tuple(batch["valid"].shape)))
        return self.layer(batch["image"].mean(dim=(2, 3))).mean()

    def validation_step(self, batch, batch_idx):
        self.seen.append(("val", batch["image"].dtype, tuple(batch["valid"].shape)))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_fit_with_lightning(store_path):
    dm = TileStoreDataModule(path=str(store_path), batch_size=4, val_fraction=0.25)
    model = _Probe()
    trainer = Trainer(
        accelerator="cpu",
        max_epochs=1,
        limit_train_batches=3,
        limit_val_batches=2,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=dm)
    assert isinstance(trainer.train_dataloader.sampler, ChunkSampler)
    assert model.seen.count(("train", torch.float32, (4, 1, 16, 16))) == 3
    assert model.seen.count(("val", torch.float32, (4, 1, 16, 16))) == 2
