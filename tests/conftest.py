"""Fixtures shared by every test folder: the Sentinel-2 fixture writer and the real scenes."""

import importlib.util
from pathlib import Path

import pytest

DATA_PY = Path(__file__).parent / "data" / "sentinel2" / "data.py"
SAMPLE = Path(__file__).parents[1] / "datasets" / "sentinel2_sample" / "IMG_DATA"
VIRGINIA = Path(__file__).parents[1] / "datasets" / "sentinel2_virginia" / "IMG_DATA"


def _load_fixture_writer(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _load_s2data():
    return _load_fixture_writer(DATA_PY, "s2_fixture_data")


@pytest.fixture(scope="session")
def s2data():
    """The fixture writer module tests/data/sentinel2/data.py."""
    return _load_s2data()


@pytest.fixture(scope="session")
def safedata():
    """The SAFE product writer module tests/data/safe/data.py."""
    return _load_fixture_writer(DATA_PY.parents[1] / "safe" / "data.py", "safe_fixture_data")


@pytest.fixture(scope="session")
def ssl4eodata():
    """The SSL4EO-S12 layout writer module tests/data/ssl4eo/data.py."""
    return _load_fixture_writer(DATA_PY.parents[1] / "ssl4eo" / "data.py", "ssl4eo_fixture_data")


@pytest.fixture(scope="session")
def sample_scene() -> Path:
    """IMG_DATA folder of the bundled real Sentinel-2 scene."""
    if not SAMPLE.is_dir():
        pytest.skip(f"bundled sample scene {SAMPLE} not present")
    return SAMPLE


@pytest.fixture(scope="session")
def virginia_scene() -> Path:
    """IMG_DATA folder of the bundled real Virginia scene (files ``s2_B??.jp2``)."""
    if not VIRGINIA.is_dir():
        pytest.skip(f"bundled Virginia scene {VIRGINIA} not present")
    return VIRGINIA


# ---- generated classification / land-cover datasets (tests/data/<name>/data.py) --------
def _load_generator(name: str):
    return _load_fixture_writer(DATA_PY.parents[1] / name / "data.py", f"{name}_fixture_data")


@pytest.fixture(scope="session")
def eurosat_data():
    """The EuroSAT fixture writer module."""
    return _load_generator("eurosat")


@pytest.fixture(scope="session")
def ben_data():
    """The BigEarthNet v1 fixture writer module."""
    return _load_generator("bigearthnet")


@pytest.fixture(scope="session")
def landcover_data():
    """The land-cover (scene + polygons) fixture writer module."""
    return _load_generator("landcover")


@pytest.fixture(scope="session")
def eurosat_root(tmp_path_factory, eurosat_data) -> Path:
    """A generated EuroSAT-MS folder (folders that need another layout override this)."""
    root = tmp_path_factory.mktemp("eurosat")
    eurosat_data.write_eurosat(root)
    return root


@pytest.fixture(scope="session")
def ben_root(tmp_path_factory, ben_data) -> Path:
    """A generated BigEarthNet v1 folder."""
    root = tmp_path_factory.mktemp("bigearthnet")
    ben_data.write_bigearthnet(root)
    return root


@pytest.fixture(scope="session")
def landcover_paths(tmp_path_factory, landcover_data) -> dict[str, Path]:
    """Generated land-cover scene and label files."""
    return landcover_data.write_landcover(tmp_path_factory.mktemp("landcover"))


@pytest.fixture
def landcover_dm(landcover_paths, landcover_data):
    """A small LandCoverSegmentationDataModule over the generated scene (16-px tiles)."""
    from geomae.datamodules import LandCoverSegmentationDataModule

    return LandCoverSegmentationDataModule(
        paths=str(landcover_paths["scene"]),
        label_paths=str(landcover_paths["vector"]),
        classes=list(landcover_data.CLASSES),
        patch_size=16,
        batch_size=3,
        length=6,
    )
