from pathlib import Path

import pytest


@pytest.fixture
def scene_dir(tmp_path, s2data) -> Path:
    """A 96 x 96 px (10 m) L1C scene, one GeoTIFF per band, top-left 24 px block nodata=0."""
    root = tmp_path / "scene"
    s2data.write_band_files(root, size=96, nodata=0)
    return root
