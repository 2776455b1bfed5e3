"""Land-cover segmentation datasets: scene ∩ vector or raster labels."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import geopandas as gpd
import pytest
import shapely
import torch

from geomae.bands import L2A_BANDS
from geomae.datasets.landcover import (
    LandCoverRaster,
    LandCoverSegmentation,
    LandCoverVector,
    open_land_cover,
)
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import ConfigError, DataError


def _fixture_module():
    path = Path(__file__).parents[1] / "data" / "landcover" / "data.py"
    spec = importlib.util.spec_from_file_location("landcover_fixture", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fixture = _fixture_module()
IGNORE = 255


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return fixture.write_landcover(tmp_path_factory.mktemp("landcover"))


def _whole_scene(ds):
    x0, y_top = fixture.ORIGIN
    x1, y0 = x0 + 10 * fixture.WIDTH, y_top - 10 * fixture.HEIGHT
    return ds[x0:x1:10.0, y0:y_top:10.0]


def _expected_mask(*, quarry_class: int, stripe_classes=(0, 1, 2)) -> torch.Tensor:
    """(H, W) expected class indices of the fixture at 10 m (rows from the north)."""
    mask = torch.full((fixture.HEIGHT, fixture.WIDTH), IGNORE)
    col0, col1 = fixture.LABELLED_COLUMNS
    for index, (_, r0, r1) in zip(stripe_classes, fixture.STRIPES, strict=True):
        mask[r0:r1, col0:col1] = index
    q_r0, q_r1, q_c0, q_c1 = fixture.QUARRY
    mask[q_r0:q_r1, q_c0:q_c1] = quarry_class
    corner = fixture.NODATA_CORNER
    mask[:corner, :corner] = IGNORE  # image nodata
    return mask


def _scene(paths, bands="all") -> Sentinel2Scenes:
    return Sentinel2Scenes(paths=paths["scene"], bands=bands, res=10.0, nodata=0)


def test_vector_labels_intersected_with_scene(paths) -> None:
    labels = LandCoverVector(paths=paths["vector"], classes=list(fixture.CLASSES))
    ds = LandCoverSegmentation(image=_scene(paths), labels=labels)
    assert ds.bands == list(L2A_BANDS) and ds.classes == list(fixture.CLASSES)
    sample = _whole_scene(ds)
    image, valid, mask = sample["image"], sample["valid"], sample["mask"]
    assert image.shape == (12, fixture.HEIGHT, fixture.WIDTH) and image.dtype == torch.float32
    assert valid.shape == (1, fixture.HEIGHT, fixture.WIDTH) and valid.dtype == torch.bool
    assert mask.shape == (fixture.HEIGHT, fixture.WIDTH) and mask.dtype == torch.int64
    # bands in canonical order, B8A at position 8, B10 absent
    values = image[:, 30, 60].tolist()
    assert values == [fixture.value_of(b) for b in L2A_BANDS]
    corner = fixture.NODATA_CORNER
    assert not valid[0, :corner, :corner].any() and valid[0, corner:, corner:].all()
    # the unlisted "quarry" polygon is unlabeled, like the area outside every polygon
    assert torch.equal(mask, _expected_mask(quarry_class=IGNORE))


def test_vector_classes_default_to_column_values(paths) -> None:
    labels = LandCoverVector(paths=paths["vector"])
    assert labels.classes == ["farm", "forest", "quarry", "water"]
    ds = LandCoverSegmentation(image=_scene(paths, "rgb"), labels=labels)
    mask = _whole_scene(ds)["mask"]
    # farm 0, forest 1, quarry 2, water 3
    assert torch.equal(mask, _expected_mask(quarry_class=2, stripe_classes=(0, 1, 3)))


def test_unlisted_vector_classes_are_logged(paths, caplog) -> None:
    with caplog.at_level("WARNING"):
        LandCoverVector(paths=paths["vector"], classes=["forest", "farm"])
    assert "quarry" in caplog.text and "water" in caplog.text


def test_raster_labels_with_class_values(paths) -> None:
    labels = LandCoverRaster(
        paths=paths["raster"], classes=list(fixture.CLASSES), class_values=[10, 20, 30]
    )
    ds = LandCoverSegmentation(image=_scene(paths), labels=labels)
    sample = _whole_scene(ds)
    assert ds.res == (10.0, 10.0)
    # the 20 m raster is upsampled by nearest neighbour onto the 10 m image grid;
    # value 99 (not a class) and nodata 0 become ignore_index
    assert torch.equal(sample["mask"], _expected_mask(quarry_class=IGNORE))


def test_open_land_cover_picks_kind(paths) -> None:
    assert isinstance(open_land_cover(paths=paths["vector"]), LandCoverVector)
    raster = open_land_cover(
        paths=paths["raster"], classes=["a", "b", "c"], class_values=[10, 20, 30]
    )
    assert isinstance(raster, LandCoverRaster)
    with pytest.raises(ConfigError, match="needs `classes`"):
        open_land_cover(paths=paths["raster"])
    with pytest.raises(ConfigError, match="label_kind"):
        open_land_cover(paths=paths["scene"])
    with pytest.raises(DataError, match="nothing.gpkg"):
        open_land_cover(paths=paths["scene"].parent / "nothing.gpkg")


def test_vector_errors(paths, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no column 'landuse'.*fclass"):
        LandCoverVector(paths=paths["vector"], label_name="landuse")
    with pytest.raises(DataError, match="none of the classes"):
        LandCoverVector(paths=paths["vector"], classes=["glacier"])
    with pytest.raises(ConfigError, match="ignore_index=1"):
        LandCoverVector(paths=paths["vector"], classes=list(fixture.CLASSES), ignore_index=1)
    with pytest.raises(ConfigError, match="duplicated"):
        LandCoverVector(paths=paths["vector"], classes=["farm", "farm"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no readable vector"):
        LandCoverVector(paths=tmp_path / "empty")


def test_raster_config_errors(paths) -> None:
    with pytest.raises(ConfigError, match="one distinct raster value"):
        LandCoverRaster(paths=paths["raster"], classes=["a", "b"], class_values=[10])
    with pytest.raises(ConfigError, match=">= 0"):
        LandCoverRaster(paths=paths["raster"], classes=["a"], class_values=[-1])


def test_disjoint_layers_error_names_both(paths, tmp_path: Path) -> None:
    far = gpd.GeoDataFrame(
        {"fclass": ["farm"]}, geometry=[shapely.box(0, 0, 100, 100)], crs=fixture.CRS
    )
    far.to_file(tmp_path / "far.gpkg", driver="GPKG")
    labels = LandCoverVector(paths=tmp_path / "far.gpkg")
    with pytest.raises(DataError, match="do not overlap"):
        LandCoverSegmentation(image=_scene(paths), labels=labels)
