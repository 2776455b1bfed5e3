"""BigEarthNetV2DataModule: both forms through the band pipeline, segmentation, options."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.datamodules import BigEarthNetV2DataModule
from geomae.errors import ConfigError, DataError
from geomae.stats import BandStat, BandStats


def _fixture_module():
    path = Path(__file__).parents[1] / "data" / "bigearthnet_v2" / "data.py"
    spec = importlib.util.spec_from_file_location("bigearthnet_v2_fixture_dm", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("benv2_dm")
    fixture.write_benv2(path)
    return path


def _stats() -> BandStats:
    """Each band's base value as its mean: normalized pixels lie in [0, NOISE / 10)."""
    return BandStats({b: BandStat(float(fixture.base_of(b)), 10.0) for b in L2A_BANDS})


def _batch(dm: BigEarthNetV2DataModule, split: str = "train") -> dict[str, torch.Tensor]:
    return next(iter(getattr(dm, f"{split}_dataloader")()))


@pytest.mark.parametrize("form", ["folder", "lmdb"])
def test_batch_through_the_band_pipeline(root: Path, form: str) -> None:
    dm = BigEarthNetV2DataModule(root=root, form=form, batch_size=2, stats=_stats())
    assert dm.task == "multilabel" and dm.num_classes == 19 and len(dm.class_names) == 19
    assert dm.processing_level == "L2A" and dm.offset == 0.0
    dm.setup("fit")
    assert len(dm.train_dataset) == 3 and len(dm.val_dataset) == 2
    out = dm.on_after_batch_transfer(_batch(dm), 0)
    assert out["image"].shape == (2, 12, 120, 120) and out["image"].dtype == torch.float32
    assert out["valid"].shape == (2, 1, 120, 120) and bool(out["valid"].all())
    assert out["label"].shape == (2, 19) and out["label"].dtype == torch.float32
    assert "mask" not in out
    # normalized channel by channel in canonical order: (base + noise - base) / 10
    image = out["image"]
    assert float(image.min()) >= 0.0 and float(image.max()) < fixture.NOISE / 10


def test_forms_give_the_same_validation_batch(root: Path) -> None:
    batches = []
    for form in ("folder", "lmdb"):
        dm = BigEarthNetV2DataModule(root=root, form=form, batch_size=2, stats=_stats())
        dm.setup("validate")
        batches.append(dm.on_after_batch_transfer(_batch(dm, "val"), 0))
    assert torch.equal(batches[0]["image"], batches[1]["image"])
    assert torch.equal(batches[0]["label"], batches[1]["label"])


def test_band_subset_and_default_stats(root: Path) -> None:
    dm = BigEarthNetV2DataModule(root=root, bands="10m", batch_size=1)
    assert dm.bands == ["B02", "B03", "B04", "B08"]
    dm.setup("test")
    out = dm.on_after_batch_transfer(_batch(dm, "test"), 0)
    assert out["image"].shape == (1, 4, 120, 120) and out["label"].shape == (1, 19)
    default = BandStats.default()
    raw = dm.test_dataset[0]["image"]
    for c, band in enumerate(dm.bands):
        expected = (raw[c, 0, 0] - default.bands[band].mean) / default.bands[band].std
        assert abs(float(out["image"][0, c, 0, 0]) - float(expected)) < 1e-4


def test_segmentation_task_carries_masks_through_augmentation(root: Path) -> None:
    dm = BigEarthNetV2DataModule(
        root=root, task="segmentation", form="lmdb", batch_size=2, stats=_stats()
    )
    assert dm.task == "segmentation" and dm.ignore_index == 255 and dm.num_classes == 19
    dm.setup("fit")
    dm.trainer = SimpleNamespace(training=True)  # augment as in a training step
    raw = _batch(dm)
    assert raw["mask"].shape == (2, 120, 120) and raw["mask"].dtype == torch.int64
    out = dm.on_after_batch_transfer(raw, 0)
    mask = out["mask"]
    assert mask.shape == (2, 120, 120)
    assert set(mask.unique().tolist()) <= set(range(19)) | {255}
    assert bool((mask == 255).any())  # roads (CLC 122) are unlabeled


def test_filters_reach_every_split(root: Path) -> None:
    dm = BigEarthNetV2DataModule(root=root, countries=["Portugal"], batch_size=1)
    dm.setup("fit")
    assert len(dm.train_dataset) == 0 and len(dm.val_dataset) == 1
    dm = BigEarthNetV2DataModule(
        root=root,
        country_split={"train": ["Austria", "Portugal"], "val": ["Finland"]},
        include_snowy=True,
        include_cloudy=True,
        batch_size=1,
    )
    dm.setup("fit")
    assert set(dm.train_dataset.countries) == {"Austria", "Portugal"}
    assert len(dm.train_dataset) == 7  # 5 kept + 2 snowy/cloudy, whatever their split
    assert set(dm.val_dataset.countries) == {"Finland"} and len(dm.val_dataset) == 3


def test_config_errors(root: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="never downloads"):
        BigEarthNetV2DataModule(root=root, download=True)
    with pytest.raises(DataError, match=str(tmp_path / "nope")):
        BigEarthNetV2DataModule(root=tmp_path / "nope")
    with pytest.raises(ConfigError, match="multilabel' or 'segmentation"):
        BigEarthNetV2DataModule(root=root, task="multiclass")  # type: ignore[arg-type]
