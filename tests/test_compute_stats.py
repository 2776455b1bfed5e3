import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio

from geomae.bands import L2A_BANDS
from geomae.cli.stats import build_parser
from geomae.cli.stats import main as stats_main
from geomae.compute_stats import compute_stats
from geomae.datasets.scene_folders import open_dataset
from geomae.datasets.sentinel2 import Sentinel2Scenes, Sentinel2Tiles
from geomae.errors import BandError, ConfigError, DataError
from geomae.stats import BandStats

_spec = importlib.util.spec_from_file_location(
    "s2_fixture_data", Path(__file__).parent / "data" / "sentinel2" / "data.py"
)
s2data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s2data)


def _valid_values(data, nodata):
    valid = np.isfinite(data).all(axis=0)
    if nodata is not None:
        valid &= (data != nodata).all(axis=0)
    return [band[valid].astype(np.float64) for band in data]


def test_compute_stats_matches_numpy_with_nodata(tmp_path):
    data = s2data.write_multiband(tmp_path / "a.tif", size=32, nodata=0)
    ds = Sentinel2Tiles(paths=tmp_path, nodata=0)
    # tiles as large as the image: every sample is the whole image
    stats = compute_stats(ds, bands="all", num_samples=3, tile_size=32, seed=0, nodata=0)
    refs = _valid_values(data, 0)
    assert refs[0].size == 32 * 32 - 8 * 8
    for band, ref in zip(ds.bands, refs, strict=True):
        tiled = np.tile(ref, 3)
        s = stats.bands[band]
        assert s.mean == pytest.approx(ref.mean(), rel=1e-9)
        assert s.std == pytest.approx(ref.std(), rel=1e-9)
        assert s.p2 == pytest.approx(np.percentile(tiled, 2), abs=1e-9)
        assert s.p98 == pytest.approx(np.percentile(tiled, 98), abs=1e-9)
    assert stats.attrs["pixels"]["B02"] == 3 * refs[0].size
    assert stats.attrs["percentiles"] == "exact (uint16 histogram)"


def test_compute_stats_float_nan_and_offset(tmp_path):
    data = s2data.write_multiband(tmp_path / "f.tif", size=32, dtype="float32", nan_pixels=10)
    stats = compute_stats(
        tmp_path, bands="B01,B05", num_samples=1, tile_size=32, seed=0, offset=100.0
    )
    refs = _valid_values(data, None)
    for band, ref in (("B01", refs[0]), ("B05", refs[4])):
        assert ref.size == 32 * 32 - 10
        s = stats.bands[band]
        assert s.mean == pytest.approx(ref.mean() - 100, rel=1e-9)
        assert s.std == pytest.approx(ref.std(), rel=1e-9)
        assert s.p98 == pytest.approx(np.percentile(ref, 98) - 100, abs=1e-6)
    assert stats.attrs["offset"] == 100.0
    assert list(stats.bands) == ["B01", "B05"]


def test_compute_stats_random_tiles_deterministic(tmp_path):
    s2data.write_band_files(tmp_path, size=96, nodata=0)
    ds = Sentinel2Scenes(paths=tmp_path, nodata=0, resampling="nearest")
    a = compute_stats(ds, bands="rgb", num_samples=8, tile_size=24, seed=3, nodata=0)
    b = compute_stats(ds, bands="rgb", num_samples=8, tile_size=24, seed=3, nodata=0)
    c = compute_stats(ds, bands="rgb", num_samples=8, tile_size=24, seed=4, nodata=0)
    assert a.bands == b.bands
    assert a.bands != c.bands
    # stats of random tiles are close to those of the whole scene
    full = _valid_values(ds[ds.bounds[0], ds.bounds[1]]["image"].numpy(), 0)
    assert a.bands["B04"].mean == pytest.approx(full[3].mean(), rel=0.1)


def test_compute_stats_errors(tmp_path):
    s2data.write_multiband(tmp_path / "a.tif", size=32, nodata=0)
    ds = Sentinel2Tiles(paths=tmp_path, bands="rgb", nodata=0)
    with pytest.raises(BandError, match="B08"):
        compute_stats(ds, bands="rgbn", num_samples=1, tile_size=16, seed=0)
    with pytest.raises(ConfigError, match="tile_size=64"):
        compute_stats(ds, bands="rgb", num_samples=1, tile_size=64, seed=0)
    with pytest.raises(ConfigError, match="num_samples"):
        compute_stats(ds, bands="rgb", num_samples=0, tile_size=16, seed=0)


def test_compute_stats_all_nodata_names_band(tmp_path):
    data = s2data.write_multiband(tmp_path / "a.tif", size=32, band_order=["B02", "B03"])
    data[:] = 7
    with rasterio.open(tmp_path / "a.tif", "r+") as dst:
        dst.write(data)
    ds = Sentinel2Tiles(paths=tmp_path, band_order=["B02", "B03"])
    with pytest.raises(
        DataError, match=r"2 tiles of .*nodata=7\): band\(s\) \['B02', 'B03'\] have no valid pixel"
    ):
        compute_stats(ds, bands="B02,B03", num_samples=2, tile_size=16, seed=0, nodata=7)


def test_open_dataset_detects_layout(tmp_path):
    s2data.write_band_files(tmp_path / "scenes", size=48)
    s2data.write_multiband(tmp_path / "tiles" / "t.tif", size=32)
    assert isinstance(open_dataset(tmp_path / "scenes"), Sentinel2Scenes)
    assert isinstance(open_dataset(tmp_path / "tiles"), Sentinel2Tiles)
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path / "tiles", tile_format="bands")
    assert "T*_*_B02*" in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path / "empty")
    assert "T*_*_B02*" in str(err.value) and "*.tif|*.tiff" in str(err.value)
    assert str(tmp_path / "empty") in str(err.value)


def test_cli_writes_stats_yaml(tmp_path, capsys):
    s2data.write_band_files(tmp_path / "scene", size=48, layout="l2a", nodata=0)
    out = tmp_path / "stats.yaml"
    argv = [
        str(tmp_path / "scene"),
        "--bands",
        "10m",
        "--num-samples",
        "4",
        "--tile-size",
        "16",
        "--seed",
        "1",
        "--nodata",
        "0",
        "-o",
        str(out),
    ]
    assert stats_main(argv) == 0
    stats = BandStats.load(out)
    assert list(stats.bands) == ["B02", "B03", "B04", "B08"]
    assert stats.attrs["command"].startswith("geomae stats ")
    assert "--num-samples 4" in stats.attrs["command"]
    assert stats.attrs["num_samples"] == 4 and stats.attrs["nodata"] == 0.0
    assert stats.attrs["source"] == [str(tmp_path / "scene")]
    printed = capsys.readouterr().out
    assert "B08" in printed and str(out) in printed
    direct = compute_stats(
        tmp_path / "scene", bands="10m", num_samples=4, tile_size=16, seed=1, nodata=0
    )
    assert stats.bands == direct.bands


def test_cli_through_geomae_main(tmp_path):
    from geomae.main import main as geomae_main

    assert geomae_main(["stats", str(tmp_path / "missing"), "-o", str(tmp_path / "s.yaml")]) == 2
    assert not (tmp_path / "s.yaml").exists()


def test_cli_parser_defaults():
    args = build_parser().parse_args(["x", "-o", "s.yaml"])
    assert (args.bands, args.num_samples, args.tile_size, args.seed, args.nodata) == (
        "all",
        256,
        64,
        0,
        None,
    )
    with pytest.raises(SystemExit):
        build_parser().parse_args(["x"])  # -o is required


def test_shipped_sample_stats():
    path = Path(__file__).parents[1] / "datasets" / "sentinel2_sample" / "stats.yaml"
    stats = BandStats.load(path)
    assert list(stats.bands) == list(L2A_BANDS)
    assert stats.attrs["command"].startswith("geomae stats ")
    for s in stats.bands.values():
        assert 0 < s.p2 < s.mean < s.p98 and s.std > 0


def test_open_dataset_band_pattern(tmp_path):
    s2data.write_band_files(tmp_path / "scene", size=48, filename="s2_{band}.tif", nodata=0)
    ds = open_dataset(tmp_path / "scene", band_pattern="s2_{band}.tif", bands="rgb")
    assert isinstance(ds, Sentinel2Scenes) and ds.bands == ["B02", "B03", "B04"]
    assert ds.band_pattern == "s2_{band}.tif"
    # a pattern means per-band files: no fall-back to multi-band tiles, the error names it
    s2data.write_multiband(tmp_path / "tiles" / "t.tif", size=32)
    with pytest.raises(DataError) as err:
        open_dataset(tmp_path / "tiles", band_pattern="s2_{band}.tif")
    assert "s2_{band}.tif" in str(err.value) and "multi-band" not in str(err.value)
    with pytest.raises(ConfigError, match="multiband"):
        open_dataset(tmp_path / "scene", band_pattern="s2_{band}.tif", tile_format="multiband")
    with pytest.raises(ConfigError, match=r"\{band\}"):
        open_dataset(tmp_path / "scene", band_pattern="s2_B02.tif")
    stats = compute_stats(
        tmp_path / "scene", band_pattern="s2_{band}.tif", bands="B05", num_samples=2, tile_size=16
    )
    assert list(stats.bands) == ["B05"]


def test_cli_band_pattern(tmp_path):
    s2data.write_band_files(tmp_path / "scene", size=48, filename="s2_{band}.tif", nodata=0)
    out = tmp_path / "stats.yaml"
    argv = [str(tmp_path / "scene"), "--band-pattern", "s2_{band}.tif", "--bands", "rgb"]
    argv += ["--num-samples", "2", "--tile-size", "16", "--nodata", "0", "-o", str(out)]
    assert stats_main(argv) == 0
    stats = BandStats.load(out)
    assert list(stats.bands) == ["B02", "B03", "B04"]
    assert "--band-pattern 's2_{band}.tif'" in stats.attrs["command"]
    assert build_parser().parse_args(["x", "-o", "s.yaml"]).band_pattern is None


def test_shipped_virginia_stats():
    path = Path(__file__).parents[1] / "datasets" / "sentinel2_virginia" / "stats.yaml"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    stats = BandStats.load(path)
    assert list(stats.bands) == list(L2A_BANDS)
    assert "--band-pattern 's2_{band}.jp2'" in stats.attrs["command"]
    assert stats.attrs["num_samples"] == 256 and stats.attrs["percentiles"].startswith("exact")
    for s in stats.bands.values():
        assert 0 < s.p2 < s.mean < s.p98 and s.std > 0
