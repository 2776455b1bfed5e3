import numpy as np
import pytest
import xarray as xr

from geomae.bands import L2A_BANDS
from geomae.cli.prepare import build_parser, main
from geomae.datasets.sentinel2 import Sentinel2Scenes
from geomae.errors import ConfigError, DataError
from geomae.store import TileStore


def test_prepare_scene_folder(tmp_path, scene_dir, capsys):
    out = tmp_path / "store"
    code = main([str(scene_dir), "-o", str(out), "--tile-size", "32", "--chunk-tiles", "4"])
    assert code == 0
    assert "wrote 8 tiles of 32 px (1 of 9 skipped" in capsys.readouterr().out
    store = TileStore(out)
    info = store.info
    assert info.bands == list(L2A_BANDS) and info.nodata == 0.0  # Sentinel-2 NO_DATA
    assert info.dtype == "uint16" and info.max_nodata == 0.5 and info.num_skipped == 1
    assert info.stats is not None and set(info.stats.bands) == set(L2A_BANDS)
    # the tiles are the scene's pixels (nearest resampling keeps the raw DN)
    ds = Sentinel2Scenes(paths=scene_dir, nodata=0, resampling="nearest")
    tiles, _ = store.read(np.arange(len(store)))
    for i, (xmin, ymin, xmax, ymax) in enumerate(store.bounds):
        expected = ds[xmin:xmax, ymin:ymax]["image"].numpy().astype(np.uint16)
        np.testing.assert_array_equal(tiles[i], expected)


def test_prepare_options(tmp_path, scene_dir):
    out = tmp_path / "store"
    argv = [str(scene_dir), "-o", str(out), "--bands", "10m", "--tile-size", "16"]
    main([*argv, "--stride", "32", "--max-nodata", "0", "--nodata", "none"])
    info = TileStore(out).info
    assert info.bands == ["B02", "B03", "B04", "B08"]
    assert (info.tile_size, info.stride, info.nodata) == (16, 32, None)
    assert info.num_candidates == 16 and info.num_skipped == 0  # nodata check disabled
    # columns / rows start at 0, 320, 640 m and, flush with the 960 m edge, 800 m
    store = TileStore(out)
    assert sorted({b[0] - 600000.0 for b in store.bounds.tolist()}) == [0, 320, 640, 800]
    assert store.bounds[:, 2].max() == 600960.0 and store.bounds[:, 1].min() == 5399040.0
    with pytest.raises(DataError, match="already exists"):
        main(argv)
    main([*argv, "--overwrite", "--dtype", "float32"])
    info = TileStore(out).info  # nodata back to 0: the all-nodata corner tile goes
    assert info.dtype == "float32" and (info.num_tiles, info.num_skipped) == (35, 1)


def test_prepare_zarr_cube(tmp_path, capsys):
    rng = np.random.default_rng(1)
    cube = xr.Dataset(
        {
            name: (("time", "y", "x"), rng.integers(1, 3000, (2, 32, 32)).astype("uint16"))
            for name in ("b04", "b03", "b02")  # odc-stac style variables
        }
    )
    cube.to_zarr(tmp_path / "cube.zarr")
    out = tmp_path / "store"
    assert main([str(tmp_path / "cube.zarr"), "-o", str(out), "--tile-size", "16"]) == 0
    store = TileStore(out)
    assert store.info.bands == ["B02", "B03", "B04"] and len(store) == 8
    tiles, _ = store.read(np.array([7]))
    np.testing.assert_array_equal(tiles[0, 0], cube["b02"].values[1, 16:, 16:])
    with pytest.raises(ConfigError, match="only source"):
        main([str(tmp_path / "cube.zarr"), str(tmp_path), "-o", str(tmp_path / "x")])


def test_parser_rejects_bad_nodata(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["src", "-o", "out", "--nodata", "zero"])
    assert "--nodata must be a number" in capsys.readouterr().err


def test_prepare_band_pattern(tmp_path, s2data, capsys):
    scene = tmp_path / "IMG_DATA"
    s2data.write_band_files(scene, size=96, filename="s2_{band}.tif", nodata=0)
    out = tmp_path / "store"
    argv = [str(scene), "--band-pattern", "s2_{band}.tif", "-o", str(out)]
    assert main([*argv, "--tile-size", "48", "--stride", "24"]) == 0
    assert "wrote 9 tiles of 48 px (0 of 9 skipped" in capsys.readouterr().out  # 3 x 3 grid
    store = TileStore(out)
    assert store.info.bands == list(L2A_BANDS)
    ds = Sentinel2Scenes(paths=scene, band_pattern="s2_{band}.tif", nodata=0, resampling="nearest")
    tiles, _ = store.read(np.arange(len(store)))
    xmin, ymin, xmax, ymax = store.bounds[4]
    expected = ds[xmin:xmax, ymin:ymax]["image"].numpy().astype(np.uint16)
    np.testing.assert_array_equal(tiles[4], expected)
    with pytest.raises(DataError, match=r"s2_\{band\}\.jp2"):
        main([str(scene), "--band-pattern", "s2_{band}.jp2", "-o", str(tmp_path / "none")])
    with pytest.raises(ConfigError, match=r"\{band\}"):
        main([str(scene), "--band-pattern", "s2.tif", "-o", str(tmp_path / "bad")])
