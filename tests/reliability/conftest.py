"""Fixtures of the reliability tests: tiny generated tiles."""

import pytest
from reliability_utils import load_s2data, write_stats


@pytest.fixture(scope="session")
def s2data():
    """The fixture writer module tests/data/sentinel2/data.py."""
    return load_s2data()


@pytest.fixture
def tiles(tmp_path, s2data):
    """A folder with one 96 x 96 px 12-band uint16 GeoTIFF, and a stats file beside it."""
    root = tmp_path / "tiles"
    s2data.write_multiband(root / "a.tif", size=96)
    write_stats(tmp_path / "stats.yaml")
    return root
