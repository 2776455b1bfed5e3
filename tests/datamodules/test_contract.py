"""The task <-> DataModule contract: every shipped DataModule satisfies its protocols,
an incomplete DataModule is refused by name, and FinetuneTask is abstract."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
from lightning.pytorch import Trainer

from geomae.datamodules import (
    BandData,
    BigEarthNetDataModule,
    BigEarthNetV2DataModule,
    EuroSATDataModule,
    FinetuneData,
    LabelledData,
    PretrainData,
    SegmentationData,
    Sentinel2PretrainDataModule,
    SplitData,
    SSL4EOS12DataModule,
    TiledData,
    TileStoreDataModule,
    XarrayDataModule,
    require_data,
)
from geomae.datamodules.contract import protocol_members
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import ConfigError
from geomae.store import write_tile_store
from geomae.trainers import ClassificationTask, MAETask, SegmentationTask
from geomae.trainers.finetune import FinetuneTask

TINY = {"size": "tiny", "groups": "single", "embed_dim": 16, "depth": 1, "num_heads": 2}
TINY_SEG = {**TINY, "groups": "satmae", "depth": 2, "patch_size": 8}


def _benv2_root(tmp_path: Path) -> Path:
    path = Path(__file__).parents[1] / "data" / "bigearthnet_v2" / "data.py"
    spec = importlib.util.spec_from_file_location("bigearthnet_v2_fixture_contract", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    root = tmp_path / "benv2"
    module.write_benv2(root, form="folder")
    return root


def _cube() -> xr.DataArray:
    rng = np.random.default_rng(0)
    data = 1000 + rng.integers(0, 400, (1, 4, 48, 48))
    return xr.DataArray(
        data.astype("uint16"),
        dims=("time", "band", "y", "x"),
        coords={"band": ["B02", "B03", "B04", "B08"]},
    )


def _trainer(tmp_path: Path) -> Trainer:
    return Trainer(
        accelerator="cpu",
        max_steps=1,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )


# ---- every shipped DataModule satisfies what its tasks need ----------------------------
def test_classification_datamodules_are_labelled_data(eurosat_root, ben_root, tmp_path):
    for dm in (
        EuroSATDataModule(root=eurosat_root, bands="rgb"),
        BigEarthNetDataModule(root=ben_root),
        BigEarthNetV2DataModule(root=_benv2_root(tmp_path)),
    ):
        for protocol in (BandData, FinetuneData, LabelledData, SplitData):
            assert isinstance(dm, protocol), (type(dm).__name__, protocol.__name__)
        require_data(dm, LabelledData, user="test")
        assert dm.task in ClassificationTask.data_tasks
        assert isinstance(dm.num_classes, int) and len(dm.class_names) == dm.num_classes
    assert not isinstance(EuroSATDataModule(root=eurosat_root), SegmentationData)


def test_segmentation_datamodules_are_segmentation_data(landcover_dm, tmp_path):
    benv2 = BigEarthNetV2DataModule(root=_benv2_root(tmp_path), task="segmentation")
    for dm in (landcover_dm, benv2):
        assert isinstance(dm, SegmentationData) and isinstance(dm, TiledData) is (
            dm is landcover_dm
        )
        require_data(dm, SegmentationTask.data_protocol, user="test")
        assert dm.task in SegmentationTask.data_tasks and isinstance(dm.ignore_index, int)
        assert not 0 <= dm.ignore_index < dm.num_classes


def test_pretraining_datamodules_are_pretrain_data(tmp_path, s2data, ssl4eodata):
    s2data.write_band_files(tmp_path / "scene", size=96, layout="l2a", nodata=0)
    ssl4eodata.write_ssl4eo(tmp_path / "ssl4eo", "s2c", size=24, locations=6)
    scenes = Sentinel2Scenes(paths=tmp_path / "scene", nodata=0)
    write_tile_store(scenes, tmp_path / "store", tile_size=16, chunk_tiles=4, max_nodata=1.0)
    dms: list[Any] = [
        Sentinel2PretrainDataModule(
            paths=str(tmp_path / "scene"), bands="rgbn", patch_size=32, length=8, nodata=0
        ),
        SSL4EOS12DataModule(root=str(tmp_path / "ssl4eo"), split="s2c", patch_size=16),
        TileStoreDataModule(path=str(tmp_path / "store"), val_fraction=0.25),
        XarrayDataModule(data=_cube(), patch_size=16, length=4, val_fraction=0.25),
    ]
    for dm in dms:
        assert isinstance(dm, PretrainData) and isinstance(dm, SplitData), type(dm).__name__
        require_data(dm, PretrainData, user="MAETask")
        assert dm.allow_level_mismatch is False
    assert XarrayDataModule.processing_level is None  # the GeomaeDataModule default


def test_protocol_members_include_the_base_protocols():
    assert protocol_members(BandData) == [
        "bands",
        "stats",
        "offset",
        "processing_level",
        "allow_level_mismatch",
        "describe",
    ]
    members = protocol_members(SegmentationData)
    assert set(protocol_members(LabelledData)) < set(members)
    assert {"set_stats", "task", "num_classes", "class_names", "ignore_index"} <= set(members)


# ---- an incomplete DataModule is refused by name ----------------------------------------
def test_a_datamodule_without_class_names_is_refused_when_fitted(eurosat_root, tmp_path):
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2)
    del dm.class_names
    task = ClassificationTask(backbone=None, arch={**TINY, "patch_size": 16}, mode="linear")
    with pytest.raises(ConfigError) as info:
        _trainer(tmp_path).fit(task, datamodule=dm)
    message = str(info.value)
    assert "ClassificationTask needs a DataModule with" in message
    assert "EuroSATDataModule lacks class_names" in message and "(LabelledData)" in message


def test_a_segmentation_datamodule_without_ignore_index_is_refused(landcover_dm, tmp_path):
    del landcover_dm.ignore_index
    task = SegmentationTask(arch=TINY_SEG, decoder_channels=8)
    with pytest.raises(ConfigError, match="LandCoverSegmentationDataModule lacks ignore_index"):
        _trainer(tmp_path).fit(task, datamodule=landcover_dm)


def test_maetask_names_what_a_datamodule_lacks(eurosat_root, tmp_path):
    task = MAETask(groups="single", patch_size=8, embed_dim=16, depth=1, num_heads=2)
    dm = EuroSATDataModule(root=eurosat_root, bands="rgb", batch_size=2)
    with pytest.raises(ConfigError, match=r"\(PretrainData\).*EuroSATDataModule lacks patch_size"):
        _trainer(tmp_path).fit(task, datamodule=dm)


# ---- FinetuneTask is abstract ------------------------------------------------------------
def test_an_incomplete_finetune_task_cannot_be_instantiated():
    class HeadOnly(FinetuneTask):
        def configure_head(self) -> None:
            pass

    with pytest.raises(TypeError, match="abstract") as info:
        HeadOnly()  # type: ignore[abstract]
    for name in ("resolve_task", "configure_losses", "configure_metrics", "fit_head_first"):
        assert name in str(info.value)
    with pytest.raises(TypeError, match="abstract"):
        FinetuneTask()  # type: ignore[abstract]
    assert FinetuneTask.__abstractmethods__ == {
        "resolve_task",
        "configure_head",
        "configure_losses",
        "configure_metrics",
        "fit_head_first",
    }
    ClassificationTask(backbone=None, arch=TINY)  # the shipped tasks implement them all
    SegmentationTask(arch=TINY_SEG)
