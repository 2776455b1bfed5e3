"""`geomae prepare` on SSL4EO-S12 and SAFE products: tiles, offset and level in the store."""

import numpy as np
import pytest

from geomae.cli.prepare import main
from geomae.datamodules.tilestore import TileStoreDataModule
from geomae.errors import ConfigError
from geomae.store.reader import TileStore

SIZE = 24


def test_prepare_ssl4eo_split_writes_every_season(tmp_path, ssl4eodata, capsys):
    ssl4eodata.write_ssl4eo(tmp_path / "ssl4eo", "s2a", size=SIZE, locations=2)
    out = tmp_path / "store"
    argv = [str(tmp_path / "ssl4eo"), "-o", str(out), "--tile-size", "12", "--bands", "rgb"]
    assert main(argv) == 0
    assert "wrote 32 tiles" in capsys.readouterr().out  # 2 locations x 4 seasons x 4 tiles
    store = TileStore(out)
    info = store.info
    assert info.processing_level == "L2A" and info.offset == 0.0 and info.crs is None
    assert info.bands == ["B02", "B03", "B04"] and info.dtype == "uint16"
    tiles, _ = store.read(np.arange(len(store)))  # (N, C, T, T)
    # tiles 0..3: location 0, season 0 (earliest); tiles 4..7: season 1
    assert tiles[0, 0, 0, 0] == ssl4eodata.pixel_value(0, 0, "B2")
    assert tiles[4, 2, 0, 0] == ssl4eodata.pixel_value(0, 1, "B4")
    assert tiles[16, 0, 0, 0] == ssl4eodata.pixel_value(1, 0, "B2")
    dm = TileStoreDataModule(path=str(out), val_fraction=0.0)
    assert dm.processing_level == "L2A" and dm.offset == 0.0 and dm.patch_size == 12
    with pytest.raises(ConfigError, match="processing_level=L1C but tile store .* holds L2A"):
        TileStoreDataModule(path=str(out), processing_level="L1C")


def test_prepare_ssl4eo_must_be_alone(tmp_path, ssl4eodata):
    ssl4eodata.write_ssl4eo(tmp_path / "a", "s2c", size=SIZE, locations=1)
    with pytest.raises(ConfigError, match="must be the only source"):
        main([str(tmp_path / "a"), str(tmp_path), "-o", str(tmp_path / "x")])


def test_prepare_safe_products_of_mixed_baselines(tmp_path, safedata):
    scenes = tmp_path / "products"
    safedata.write_safe(scenes, baseline="03.01", date="20210612T103031", size=48)
    safedata.write_safe(scenes, baseline="05.10", size=48, add_dn=1000, dx=480.0)
    out = tmp_path / "store"
    argv = [str(scenes), "-o", str(out), "--tile-size", "24", "--bands", "rgbn"]
    assert main(argv) == 0
    info = TileStore(out).info
    assert info.processing_level == "L2A" and info.offset == 1000.0
    # statistics describe DN - offset: both products hold the same reflectances
    raw = safedata.s2data.band_array("B02", 48).astype(float)
    assert info.stats.attrs["offset"] == 1000.0
    assert info.stats.bands["B02"].mean == pytest.approx(raw.mean(), abs=1.0)
    tiles, _ = TileStore(out).read(np.arange(info.num_tiles))
    assert tiles.min() >= 1000  # the old product was brought up to the 04.00 convention
    dm = TileStoreDataModule(path=str(out), val_fraction=0.0)
    assert dm.offset == 1000.0 and dm.processing_level == "L2A"
