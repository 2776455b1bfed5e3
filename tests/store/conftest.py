import importlib.util
from pathlib import Path

import pytest

DATA_PY = Path(__file__).parents[1] / "data" / "sentinel2" / "data.py"


def _load_s2data():
    spec = importlib.util.spec_from_file_location("s2_fixture_data", DATA_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def s2data():
    """The fixture writer module tests/data/sentinel2/data.py."""
    return _load_s2data()


@pytest.fixture
def scene_dir(tmp_path, s2data) -> Path:
    """A 96 x 96 px (10 m) L1C scene, one GeoTIFF per band, top-left 24 px block nodata=0."""
    root = tmp_path / "scene"
    s2data.write_band_files(root, size=96, nodata=0)
    return root
