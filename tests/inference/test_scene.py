"""Reading a scene on its 10 m grid, band by band of rows."""

import shutil

import numpy as np
import pytest
import rasterio

from geomae.bands import L2A_BANDS
from geomae.errors import BandError
from geomae.inference.scene import SceneReader

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


def _b02(folder):
    return next(folder.glob("*_B02.tif"))


def test_grid_is_the_b02_grid_and_reads_match_the_file(s2_scene):
    reader = SceneReader(paths=s2_scene, bands=["B04", "B02", "B11"])
    with rasterio.open(_b02(s2_scene)) as src:
        assert reader.grid.crs == src.crs
        assert reader.grid.transform == src.transform
        assert (reader.grid.width, reader.grid.height) == (src.width, src.height)
        b02 = src.read(1).astype(np.float32)
    band = reader.read(40, 16, 8, 32)  # (C, 16, 32), in the order asked for
    assert band.shape == (3, 16, 32)
    assert np.array_equal(band[1], b02[40:56, 8:40])


def test_reads_past_the_edge_are_nodata(s2_scene):
    reader = SceneReader(paths=s2_scene, bands=list(L2A_BANDS))
    band = reader.read(80, 32, 80, 32)  # 16 px inside, 16 px padding each way
    assert band.shape == (12, 32, 32)
    assert (band[:, 16:, :] == 0).all() and (band[:, :, 16:] == 0).all()
    assert reader.has_data(band)[:16, :16].all()
    assert not reader.has_data(reader.read(0, 24, 0, 24)).any()  # the nodata block


def test_a_band_missing_from_the_scene_is_named(s2_scene, tmp_path):
    copy = tmp_path / "scene"
    shutil.copytree(s2_scene, copy)
    next(copy.glob("*_B11.tif")).unlink()
    with pytest.raises(BandError, match="B11") as err:
        SceneReader(paths=copy, bands=list(L2A_BANDS), needed_by="model m.ckpt")
    assert "m.ckpt" in str(err.value)
