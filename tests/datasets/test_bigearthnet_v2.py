"""BigEarthNet v2 dataset on generated fixtures: both forms, filters, maps and errors."""

from __future__ import annotations

import importlib.util
import pickle
import shutil
from pathlib import Path

import lmdb
import numpy as np
import pytest
import torch
from safetensors.numpy import save as save_safetensors

from geomae.bands import L2A_BANDS
from geomae.datasets.benv2_maps import CLC_TO_19
from geomae.datasets.bigearthnet_v2 import BIGEARTHNET_V2_CLASSES, BigEarthNetV2S2
from geomae.errors import BandError, ConfigError, DataError


def _fixture_module():
    path = Path(__file__).parents[1] / "data" / "bigearthnet_v2" / "data.py"
    spec = importlib.util.spec_from_file_location("bigearthnet_v2_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()
ALL_LABELS = {p[0]: p[3] for p in fixture.PATCHES + fixture.SNOW_CLOUD_PATCHES}


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("benv2")
    fixture.write_benv2(path)
    return path


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("benv2_pristine")
    fixture.write_benv2(path)
    return path


@pytest.fixture()
def fresh(pristine: Path, tmp_path: Path) -> Path:
    """A copy of the fixture that a test may damage."""
    shutil.copytree(pristine, tmp_path / "benv2")
    return tmp_path / "benv2"


def _names(label: torch.Tensor) -> set[str]:
    return {BIGEARTHNET_V2_CLASSES[i] for i in label.nonzero().flatten().tolist()}


@pytest.mark.parametrize("form", ["folder", "lmdb"])
def test_official_splits_bands_and_labels(root: Path, form: str) -> None:
    expected = {"train": [], "val": [], "test": []}
    for patch_id, split, *_ in fixture.PATCHES:
        expected["val" if split == "validation" else split].append(patch_id)
    for split, ids in expected.items():
        ds = BigEarthNetV2S2(root=root, split=split, form=form)
        assert ds.patches == ids and len(ds) == len(ids)
        for i, patch_id in enumerate(ids):
            sample = ds[i]
            image, label = sample["image"], sample["label"]
            assert image.shape == (12, 120, 120) and image.dtype == torch.float32
            assert label.shape == (19,) and label.dtype == torch.float32
            assert _names(label) == set(ALL_LABELS[patch_id])
            assert "mask" not in sample
            # every channel is its band: values in [base, base + NOISE)
            for c, band in enumerate(L2A_BANDS):
                base = fixture.base_of(band)
                assert (
                    base <= float(image[c].min()) and float(image[c].max()) < base + fixture.NOISE
                )


def test_class_order_is_the_nomenclature_order() -> None:
    assert len(BIGEARTHNET_V2_CLASSES) == 19
    assert BIGEARTHNET_V2_CLASSES[0] == "Urban fabric"
    assert BIGEARTHNET_V2_CLASSES[2] == "Arable land"
    assert BIGEARTHNET_V2_CLASSES[-1] == "Marine waters"
    assert list(BIGEARTHNET_V2_CLASSES) != sorted(BIGEARTHNET_V2_CLASSES)  # not configilm's


def test_lmdb_and_folder_forms_give_identical_samples(root: Path) -> None:
    folder = BigEarthNetV2S2(root=root, split="train", form="folder")
    store = BigEarthNetV2S2(root=root, split="train", form="lmdb")
    assert type(folder.reader).__name__ == "FolderReader"
    assert type(store.reader).__name__ == "LmdbReader"
    for i in range(len(folder)):
        a, b = folder[i], store[i]
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_native_10m_bands_are_read_unchanged(root: Path) -> None:
    ds = BigEarthNetV2S2(root=root, split="train", bands="B02,B05", form="lmdb")
    patch_id = ds.patches[0]
    native = fixture.patch_arrays(patch_id)
    image = ds[0]["image"]
    assert torch.equal(image[0], torch.from_numpy(native["B02"].astype(np.float32)))
    # 20 m: every 10 m pixel lies between the native pixels around it
    assert float(image[1].min()) >= float(native["B05"].min())
    assert float(image[1].max()) <= float(native["B05"].max())


def test_auto_form_prefers_the_folder_then_the_lmdb(fresh: Path) -> None:
    assert type(BigEarthNetV2S2(root=fresh).reader).__name__ == "FolderReader"
    shutil.rmtree(fresh / "BigEarthNet-S2")
    ds = BigEarthNetV2S2(root=fresh)
    assert type(ds.reader).__name__ == "LmdbReader" and len(ds) == 3
    moved = fresh / "elsewhere.lmdb"
    (fresh / "BigEarthNet-V2-LMDB").rename(moved)
    with pytest.raises(DataError, match="BigEarthNet-V2-LMDB"):
        BigEarthNetV2S2(root=fresh)
    assert len(BigEarthNetV2S2(root=fresh, lmdb_path=moved)) == 3


def test_upsampling_is_spatially_aligned(fresh: Path) -> None:
    patch_id = fixture.PATCHES[0][0]
    path = (
        fresh / "BigEarthNet-S2" / fixture.product_of(patch_id) / patch_id / f"{patch_id}_B01.tif"
    )
    data = np.zeros((20, 20), dtype="uint16")
    data[:10] = 1000  # north half bright, 60 m pixels
    fixture.write_tif(path, data, res=60)
    image = BigEarthNetV2S2(root=fresh, bands=["B01"], form="folder")[0]["image"]
    assert image.shape == (1, 120, 120)
    assert float(image[0, :57].min()) == 1000.0 and float(image[0, 63:].max()) == 0.0
    assert 0.0 < float(image[0, 59, 0]) < 1000.0  # blended across the edge


def test_band_subset_in_canonical_order(root: Path) -> None:
    ds = BigEarthNetV2S2(root=root, split="test", bands="B12,B8A,B01", form="lmdb")
    assert ds.bands == ["B01", "B8A", "B12"]
    image = ds[0]["image"]
    assert [int(image[i].min()) // 100 for i in range(3)] == [1, 9, 12]


def test_b10_is_rejected(root: Path) -> None:
    with pytest.raises(BandError, match="B10"):
        BigEarthNetV2S2(root=root, bands="l1c")


def test_snowy_and_cloudy_patches_excluded_by_default(root: Path) -> None:
    base = BigEarthNetV2S2(root=root, split="train").patches
    snowy = BigEarthNetV2S2(root=root, split="train", include_snowy=True).patches
    cloudy = BigEarthNetV2S2(root=root, split="train", include_cloudy=True).patches
    both = BigEarthNetV2S2(root=root, split="train", include_snowy=True, include_cloudy=True)
    snow_id, cloud_id = fixture.SNOW_CLOUD_PATCHES[0][0], fixture.SNOW_CLOUD_PATCHES[1][0]
    assert snow_id not in base and cloud_id not in base
    assert snowy == base + [snow_id] and cloudy == base + [cloud_id]
    assert both.patches == base + [snow_id, cloud_id]
    assert _names(both[len(base)]["label"]) == {"Coniferous forest"}
    # the test split's patch is snowy and cloudy: it needs both flags
    test_id = fixture.SNOW_CLOUD_PATCHES[2][0]
    assert test_id not in BigEarthNetV2S2(root=root, split="test", include_snowy=True).patches
    assert (
        test_id
        in BigEarthNetV2S2(root=root, split="test", include_snowy=True, include_cloudy=True).patches
    )


def test_missing_snow_cloud_table_is_named(fresh: Path) -> None:
    (fresh / "metadata_for_patches_with_snow_cloud_or_shadow.parquet").unlink()
    assert len(BigEarthNetV2S2(root=fresh)) == 3  # not needed by default
    with pytest.raises(DataError, match="metadata_for_patches_with_snow_cloud_or_shadow"):
        BigEarthNetV2S2(root=fresh, include_cloudy=True)


def test_country_filter(root: Path) -> None:
    ds = BigEarthNetV2S2(root=root, split="train", countries=["Finland"])
    assert ds.patches == [fixture.PATCHES[2][0]] and ds.countries == ["Finland"]
    ds = BigEarthNetV2S2(root=root, split="val", countries=["Austria"])
    assert ds.patches == []
    with pytest.raises(ConfigError, match=r"\['Narnia'\].*Austria"):
        BigEarthNetV2S2(root=root, countries=["Narnia"])
    with pytest.raises(ConfigError, match="list of country names"):
        BigEarthNetV2S2(root=root, countries="Austria")  # type: ignore[arg-type]


def test_country_based_split(root: Path) -> None:
    split = {"train": ["Austria", "Finland"], "test": ["Portugal"]}
    train = BigEarthNetV2S2(root=root, split="train", country_split=split)
    test = BigEarthNetV2S2(root=root, split="test", country_split=split)
    val = BigEarthNetV2S2(root=root, split="val", country_split=split)
    kept = {p[0]: p[2] for p in fixture.PATCHES}
    assert set(train.patches) == {p for p, c in kept.items() if c in ("Austria", "Finland")}
    assert set(test.patches) == {p for p, c in kept.items() if c == "Portugal"}
    assert val.patches == []
    with pytest.raises(ConfigError, match="'Austria' in both"):
        BigEarthNetV2S2(root=root, country_split={"train": ["Austria"], "test": ["Austria"]})
    with pytest.raises(ConfigError, match="keys must be among"):
        BigEarthNetV2S2(root=root, country_split={"holdout": ["Austria"]})


def test_reference_maps_as_19_class_masks(root: Path) -> None:
    ds = BigEarthNetV2S2(root=root, split="train", form="lmdb", reference_maps=True)
    sample = ds[0]
    mask = sample["mask"]
    assert mask.shape == (120, 120) and mask.dtype == torch.int64
    codes = torch.from_numpy(fixture.reference_codes(ds.patches[0]).astype(np.int64))
    assert bool((mask[codes == 122] == 255).all())  # roads: no 19-class counterpart
    assert bool((mask[codes == 111] == BIGEARTHNET_V2_CLASSES.index("Urban fabric")).all())
    assert bool((mask[codes == 211] == BIGEARTHNET_V2_CLASSES.index("Arable land")).all())
    assert bool((mask[codes == 312] == BIGEARTHNET_V2_CLASSES.index("Coniferous forest")).all())
    assert bool((mask[codes == 523] == BIGEARTHNET_V2_CLASSES.index("Marine waters")).all())
    assert len(CLC_TO_19) == 32 and CLC_TO_19[412] == BIGEARTHNET_V2_CLASSES.index(
        "Inland wetlands"
    )


def test_reference_maps_folder_required(fresh: Path) -> None:
    shutil.rmtree(fresh / "Reference_Maps")
    with pytest.raises(DataError, match="Reference_Maps"):
        BigEarthNetV2S2(root=fresh, reference_maps=True)


def test_missing_metadata_column_names_column_and_file(fresh: Path) -> None:
    path = fresh / "metadata.parquet"
    fixture.write_metadata(path, fixture.PATCHES, drop=("country",))
    with pytest.raises(DataError, match=r"metadata.parquet has no column\(s\) \['country'\]"):
        BigEarthNetV2S2(root=fresh)
    path.unlink()
    with pytest.raises(DataError, match="metadata file not found.*metadata.parquet"):
        BigEarthNetV2S2(root=fresh)


def test_unknown_label_is_named(fresh: Path) -> None:
    rows = list(fixture.PATCHES)
    rows[0] = (rows[0][0], "train", "Austria", ("Glaciers",), False, False)
    fixture.write_metadata(fresh / "metadata.parquet", tuple(rows))
    with pytest.raises(DataError, match=rf"{rows[0][0]} has label\(s\) \['Glaciers'\]"):
        BigEarthNetV2S2(root=fresh)


def test_patch_absent_from_folder_is_named(fresh: Path) -> None:
    patch_id = fixture.PATCHES[1][0]
    shutil.rmtree(fresh / "BigEarthNet-S2" / fixture.product_of(patch_id) / patch_id)
    with pytest.raises(DataError, match=f"absent from FolderReader.*{patch_id}"):
        BigEarthNetV2S2(root=fresh, form="folder")
    assert len(BigEarthNetV2S2(root=fresh, form="folder", split="test")) == 2  # other split fine


def test_patch_absent_from_lmdb_is_named(fresh: Path) -> None:
    patch_id = fixture.PATCHES[2][0]
    env = lmdb.open(str(fresh / "BigEarthNet-V2-LMDB"))
    with env.begin(write=True) as txn:
        txn.delete(patch_id.encode())
    env.close()
    with pytest.raises(DataError, match=f"absent from LmdbReader.*{patch_id}"):
        BigEarthNetV2S2(root=fresh, form="lmdb")
    ds = BigEarthNetV2S2(root=fresh, form="lmdb", check_files=False)
    with pytest.raises(DataError, match=f"{patch_id} is not a key"):
        ds[2]


def test_band_missing_from_folder_is_named(fresh: Path) -> None:
    patch_id = fixture.PATCHES[0][0]
    folder = fresh / "BigEarthNet-S2" / fixture.product_of(patch_id) / patch_id
    (folder / f"{patch_id}_B8A.tif").unlink()
    ds = BigEarthNetV2S2(root=fresh, form="folder")
    with pytest.raises(DataError, match=f"patch {patch_id} has no band B8A"):
        ds[0]
    assert ds[1]["image"].shape == (12, 120, 120)
    assert BigEarthNetV2S2(root=fresh, form="folder", bands="10m")[0]["image"].shape[0] == 4


def test_band_missing_from_lmdb_and_wrong_size_are_named(fresh: Path) -> None:
    patch_id = fixture.PATCHES[0][0]
    arrays = fixture.patch_arrays(patch_id)
    del arrays["B11"]
    arrays["B05"] = np.zeros((120, 120), dtype="uint16")  # 20 m band at 10 m size
    env = lmdb.open(str(fresh / "BigEarthNet-V2-LMDB"))
    with env.begin(write=True) as txn:
        txn.put(patch_id.encode(), save_safetensors(arrays))
        txn.put(fixture.PATCHES[1][0].encode(), b"not a safetensors blob")
    env.close()
    ds = BigEarthNetV2S2(root=fresh, form="lmdb")
    with pytest.raises(DataError, match=rf"patch {patch_id} .* has no band\(s\) \['B11'\]"):
        ds[0]
    with pytest.raises(
        DataError, match=rf"{patch_id} band B05 .* shape \(120, 120\); expected \(60, 60\)"
    ):
        BigEarthNetV2S2(root=fresh, form="lmdb", bands="B05")[0]
    with pytest.raises(DataError, match="not a safetensors blob"):
        ds[1]


def test_missing_root_and_images(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="never downloads"):
        BigEarthNetV2S2(root=tmp_path / "absent")
    fixture.write_metadata(tmp_path / "metadata.parquet", fixture.PATCHES)
    with pytest.raises(DataError, match="no BigEarthNet v2 images found"):
        BigEarthNetV2S2(root=tmp_path)
    with pytest.raises(DataError, match="BigEarthNet-S2 does not exist"):
        BigEarthNetV2S2(root=tmp_path, form="folder")


def test_lmdb_dataset_pickles_without_its_environment(root: Path) -> None:
    ds = BigEarthNetV2S2(root=root, form="lmdb")
    first = ds[0]["image"]
    assert ds.reader._env is not None  # opened by the read above
    clone = pickle.loads(pickle.dumps(ds))
    assert clone.reader._env is None
    assert torch.equal(clone[0]["image"], first)


def test_empty_label_list_is_all_zeros(root: Path) -> None:
    ds = BigEarthNetV2S2(root=root, split="test")
    assert ds.patches[-1] == fixture.PATCHES[-1][0]
    assert float(ds[len(ds) - 1]["label"].sum()) == 0.0


def test_lmdb_in_forked_loader_workers_after_the_parent_read(root: Path) -> None:
    """Workers forked from a process holding the environment open their own."""
    from torch.utils.data import DataLoader

    ds = BigEarthNetV2S2(root=root, form="lmdb", include_snowy=True, include_cloudy=True)
    expected = torch.stack([ds[i]["image"] for i in range(len(ds))])  # parent opens the env
    loader = DataLoader(ds, batch_size=2, num_workers=2, multiprocessing_context="fork")
    got = torch.cat([batch["image"] for batch in loader])
    assert torch.equal(got, expected)
    assert torch.equal(ds[0]["image"], expected[0])  # the parent's handle still works
