"""SAFE products: metadata (level, baseline, offset) and per-scene offsets on read."""

import logging

import pytest
import torch

from geomae.datamodules.pretrain import Sentinel2PretrainDataModule
from geomae.datasets.safe import find_product_dir, find_safe_products, read_safe_product
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import ConfigError, DataError

SIZE = 48  # 10 m pixels per side of every fixture product


def _read(dataset, x0, y0, size=SIZE, res=10.0):
    """Image (C, H, W) over the ``size`` px square with top-left (x0, y0)."""
    _, _, t = dataset.bounds
    query = (slice(x0, x0 + size * res, res), slice(y0 - size * res, y0, res), t)
    return dataset[query]["image"]


@pytest.mark.parametrize(
    ("level", "baseline", "offset"),
    [
        ("L1C", "02.09", 0.0),
        ("L1C", "04.00", 1000.0),
        ("L2A", "03.01", 0.0),
        ("L2A", "04.00", 1000.0),
        ("L2A", "05.10", 1000.0),
    ],
)
def test_read_safe_product(tmp_path, safedata, level, baseline, offset):
    safe = safedata.write_safe(tmp_path, level=level, baseline=baseline, bands=["B02"])
    product = read_safe_product(safe / f"MTD_MSI{level}.xml")
    assert (product.level, product.baseline, product.offset) == (level, baseline, offset)
    assert product.path == safe and product.baseline_version == tuple(
        int(v) for v in baseline.split(".")
    )


def test_offset_list_is_ignored_before_baseline_04(tmp_path, safedata):
    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(safedata.metadata_xml("L2A", "03.01", offsets={3: -1000}))
    assert read_safe_product(path).offset == 0.0


def test_missing_offset_list_from_04_assumes_1000(tmp_path, safedata, caplog):
    path = tmp_path / "MTD_MSIL2A.xml"
    path.write_text(safedata.metadata_xml("L2A", "05.00", offset=None))
    with caplog.at_level(logging.WARNING):
        assert read_safe_product(path).offset == 1000.0
    assert "no BOA_ADD_OFFSET values" in caplog.text


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("<a><b>", "cannot read the product metadata"),
        ("<n1:X xmlns:n1='u'><General_Info/></n1:X>", "no PROCESSING_BASELINE"),
        ("<X><PROCESSING_BASELINE>4</PROCESSING_BASELINE></X>", "not of the form NN.NN"),
    ],
)
def test_bad_metadata_names_the_file(tmp_path, text, match):
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_safe_product(path)
    assert str(path) in str(err.value)


def test_per_band_offsets_must_agree(tmp_path, safedata):
    path = tmp_path / "MTD_MSIL1C.xml"
    path.write_text(safedata.metadata_xml("L1C", "04.00", offsets={0: -1000, 1: -900}))
    with pytest.raises(DataError, match=r"different RADIO_ADD_OFFSET values.*'B02': -900"):
        read_safe_product(path)


def test_l2a_safe_reads_native_resolution_files(tmp_path, safedata):
    safe = safedata.write_safe(tmp_path, size=SIZE, baseline="05.10")
    ds = Sentinel2Scenes(paths=safe)
    assert len(ds) == 1
    assert ds.processing_level == "L2A" and ds.offset == 1000.0
    assert [p.baseline for p in ds.products] == ["05.10"]
    files = {f.rsplit("/", 2)[-2] + "/" + f.rsplit("_", 2)[-2] for f in ds.raster_files()}
    assert {"R10m/B02", "R20m/B05", "R60m/B01", "R20m/B12"} <= files
    assert not any("B02_20m" in f or "B02_60m" in f for f in ds.raster_files())
    image = _read(ds, *safedata.s2data.ORIGIN)
    assert image.shape == (12, SIZE, SIZE)
    expected = safedata.s2data.band_array("B02", SIZE)
    assert torch.equal(image[1], torch.from_numpy(expected.astype("float32")))  # no shift


def test_l1c_safe_with_b10(tmp_path, safedata):
    safe = safedata.write_safe(tmp_path, level="L1C", baseline="02.09", size=SIZE)
    ds = Sentinel2Scenes(paths=tmp_path, bands="l1c")
    assert ds.processing_level == "L1C" and ds.offset == 0.0
    assert find_product_dir(ds.raster_files()[0]) == safe
    assert _read(ds, *safedata.s2data.ORIGIN).shape == (13, SIZE, SIZE)


def test_directory_of_products_with_mixed_baselines(tmp_path, safedata):
    """An old product reads DN + 1000 so both share the 04.00 convention."""
    width = SIZE * 10.0
    old = safedata.write_safe(
        tmp_path, baseline="03.01", date="20210612T103031", size=SIZE, zero_block=True
    )
    new = safedata.write_safe(
        tmp_path, baseline="05.10", date="20220612T103031", size=SIZE, add_dn=1000, dx=width
    )
    assert find_safe_products([tmp_path]) == sorted([old, new])
    ds = Sentinel2Scenes(paths=tmp_path, bands="rgbn", nodata=0)
    assert ds.offset == 1000.0
    assert sorted(ds.scene_offsets.values()) == [0.0, 1000.0]
    x0, y0 = safedata.s2data.ORIGIN
    old_image = _read(ds, x0, y0)  # (4, H, W)
    new_image = _read(ds, x0 + width, y0)
    quarter = SIZE // 4
    assert (old_image[:, :quarter, :quarter] == 0).all()  # NO_DATA pixels not shifted
    keep = torch.ones(SIZE, SIZE, dtype=torch.bool)
    keep[:quarter, :quarter] = False
    assert torch.equal(old_image[:, keep], new_image[:, keep])
    raw = safedata.s2data.band_array("B04", SIZE).astype("float32")
    assert torch.equal(new_image[2], torch.from_numpy(raw) + 1000)


def test_overlapping_products_of_mixed_baselines(tmp_path, safedata):
    """Where two scenes of different offsets overlap, each file is shifted before the mosaic."""
    safedata.write_safe(
        tmp_path, baseline="02.14", date="20210612T103031", size=SIZE, zero_block=True
    )
    safedata.write_safe(tmp_path, baseline="04.00", size=SIZE, add_dn=1000)
    ds = Sentinel2Scenes(paths=tmp_path, bands="10m", nodata=0)
    image = _read(ds, *safedata.s2data.ORIGIN)
    raw = safedata.s2data.band_array("B02", SIZE).astype("float32")
    # the old scene's NO_DATA block is filled from the new scene, the rest agrees
    assert torch.equal(image[0], torch.from_numpy(raw) + 1000)


def test_explicit_offset_overrides_metadata(tmp_path, safedata, caplog):
    safedata.write_safe(tmp_path, baseline="03.01", date="20210612T103031", size=SIZE)
    safedata.write_safe(tmp_path, baseline="05.10", size=SIZE, add_dn=1000, dx=SIZE * 10.0)
    with caplog.at_level(logging.WARNING):
        ds = Sentinel2Scenes(paths=tmp_path, bands="rgb", offset=0)
    assert ds.offset == 0.0 and "1 SAFE product(s) say otherwise" in caplog.text
    raw = safedata.s2data.band_array("B04", SIZE).astype("float32")
    assert torch.equal(_read(ds, *safedata.s2data.ORIGIN)[2], torch.from_numpy(raw))


def test_safe_missing_band_names_the_file(tmp_path, safedata):
    bands = [b for b in safedata.s2data.L2A_BANDS_12 if b != "B11"]
    safedata.write_safe(tmp_path, bands=bands, size=SIZE)
    with pytest.raises(DataError, match=r"band B11 file .*R20m/T32UQD_20220612T103031_B11_20m"):
        Sentinel2Scenes(paths=tmp_path)


def test_l1c_and_l2a_products_are_not_mixed(tmp_path, safedata):
    safedata.write_safe(tmp_path, level="L1C", size=SIZE)
    safedata.write_safe(tmp_path, level="L2A", size=SIZE, date="20220613T103031")
    with pytest.raises(DataError, match="L1C and L2A products in one dataset"):
        Sentinel2Scenes(paths=tmp_path)


def test_bare_band_files_have_no_product(tmp_path, s2data):
    s2data.write_band_files(tmp_path, size=SIZE, filename="s2_{band}.tif")
    ds = Sentinel2Scenes(paths=tmp_path, band_pattern="s2_{band}.tif", bands="rgb")
    assert ds.products == [] and ds.processing_level is None and ds.offset == 0.0


def test_pretrain_datamodule_takes_level_and_offset_from_safe(tmp_path, safedata):
    safedata.write_safe(tmp_path, baseline="05.10", size=96)
    dm = Sentinel2PretrainDataModule(paths=str(tmp_path), patch_size=32, batch_size=2)
    assert dm.processing_level == "L2A" and dm.offset == 1000.0
    assert dm.describe()["offset"] == 1000.0
    with pytest.raises(ConfigError, match="processing_level=L1C but the scenes .* are L2A"):
        Sentinel2PretrainDataModule(paths=str(tmp_path), patch_size=32, processing_level="L1C")
    assert Sentinel2PretrainDataModule(paths=str(tmp_path), patch_size=32, offset=0).offset == 0
