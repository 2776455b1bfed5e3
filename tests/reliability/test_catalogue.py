"""The bad-input catalogue of docs/errors.md: one test per row, through the real CLI.

Every case runs `geomae fit` (``geomae.main.main``) on tiny generated GeoTIFFs and
checks the exit status 2 and the one-line message; they all fail before the first
training step. The NaN/Inf and nodata rows are in test_nodata.py, the checkpoint-IO
rows in test_atomic_checkpoint.py.
"""

import logging
import os
import subprocess

import pytest
import torch
from reliability_utils import (
    PYTHON,
    REPO,
    cli_env,
    make_config,
    truncate,
    write_stats,
    write_tile,
)

from geomae.datamodules.pretrain import Sentinel2PretrainDataModule
from geomae.main import main


def fit(capsys, config, *overrides):
    """Run `geomae fit`; return (exit status, stderr as one string)."""
    capsys.readouterr()
    rc = main(["fit", "--config", str(config), *overrides])
    return rc, capsys.readouterr().err


def assert_one_line_error(rc, err, *fragments):
    assert rc == 2, err
    lines = [line for line in err.splitlines() if line.startswith("geomae: error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert "Traceback" not in err


# ---- rasters ---------------------------------------------------------------------------


def test_truncated_raster(tmp_path, tiles, capsys):
    truncate(tiles / "a.tif", 0.6)
    rc, err = fit(capsys, make_config(tmp_path / "run", tiles))
    assert_one_line_error(rc, err, f"{tiles / 'a.tif'} cannot be read", "truncated or corrupt")
    assert not (tmp_path / "run" / "ckpt").exists()  # nothing trained


def test_corrupt_raster_is_not_skipped_silently(tmp_path, tiles, capsys):
    (tiles / "b.tif").write_bytes(os.urandom(4096))
    rc, err = fit(capsys, make_config(tmp_path / "run", tiles))
    assert_one_line_error(rc, err, "1 file(s) named like Sentinel-2 data cannot be opened")
    assert str(tiles / "b.tif") in err and "not recognized" in err


def test_only_corrupt_rasters(tmp_path, capsys):
    root = tmp_path / "tiles"
    root.mkdir()
    (root / "a.tif").write_bytes(b"II*\x00" + os.urandom(100))
    write_stats(tmp_path / "stats.yaml")
    rc, err = fit(capsys, make_config(tmp_path / "run", root))
    assert_one_line_error(rc, err, f"{root / 'a.tif'}", "cannot be opened")


def test_wrong_band_count(tmp_path, capsys):
    root = tmp_path / "tiles"
    write_tile(root / "a.tif", count=4)
    write_stats(tmp_path / "stats.yaml")
    rc, err = fit(capsys, make_config(tmp_path / "run", root))
    assert_one_line_error(rc, err, f"{root / 'a.tif'} has 4 band(s) but band_order lists 12")


def test_wrong_dtype(tmp_path, capsys):
    root = tmp_path / "tiles"
    write_tile(root / "a.tif", dtype="uint8", fill=7)
    write_stats(tmp_path / "stats.yaml")
    rc, err = fit(capsys, make_config(tmp_path / "run", root))
    assert_one_line_error(rc, err, f"{root / 'a.tif'} has data type uint8", "uint16")


def test_mixed_resolution_is_refused_unless_res_is_given(tmp_path, capsys):
    root = tmp_path / "tiles"
    write_tile(root / "a.tif", res=10.0)
    write_tile(root / "b.tif", res=20.0, size=48, origin=(600960.0, 5400000.0))
    write_stats(tmp_path / "stats.yaml")
    rc, err = fit(capsys, make_config(tmp_path / "run", root))
    assert_one_line_error(
        rc, err, f"{root / 'b.tif'} has resolution 20 x 20", "10 x 10", "pass res="
    )
    # with an explicit resolution every file is resampled to it
    dm = Sentinel2PretrainDataModule(
        paths=str(root), tile_format="multiband", bands="rgbn", patch_size=32, res=10.0
    )
    assert dm.geo_dataset.res == (10.0, 10.0)
    x, y, _ = dm.geo_dataset.bounds
    assert x.stop == pytest.approx(600960.0 + 48 * 20.0)


def test_mixed_crs_is_reprojected_and_logged(tmp_path, caplog):
    root = tmp_path / "tiles"
    write_tile(root / "a.tif", crs="EPSG:32632", seed=1)
    # the same ground, 960 m east of a.tif, in the next UTM zone
    write_tile(root / "b.tif", crs="EPSG:32633", origin=(159916.73, 5409423.5), seed=2)
    with caplog.at_level(logging.WARNING, logger="geomae.checks"):
        dm = Sentinel2PretrainDataModule(
            paths=str(root), tile_format="multiband", bands="rgbn", patch_size=32
        )
    assert "use 2 CRSs" in caplog.text and "reprojected on read to EPSG:32632" in caplog.text
    assert str(root / "b.tif") in caplog.text
    assert dm.geo_dataset.crs.to_epsg() == 32632
    # a tile inside b.tif's footprint reads real values after warping
    x0, y0 = 600960.0 + 100.0, 5400000.0 - 500.0
    sample = dm.geo_dataset[slice(x0, x0 + 320.0), slice(y0 - 320.0, y0)]
    image = sample["image"]  # (4, 32, 32)
    assert image.shape == (4, 32, 32)
    assert torch.isfinite(image).all() and image.min() >= 1000 and image.max() < 3000


def test_patch_larger_than_the_data(tmp_path, tiles, capsys):
    rc, err = fit(capsys, make_config(tmp_path / "run", tiles), "--data.patch_size", "128")
    assert_one_line_error(rc, err, "patch_size=128 px is larger than the data", "96x96 px")


def test_every_file_smaller_than_the_patch(tmp_path, capsys):
    root = tmp_path / "tiles"
    write_tile(root / "a.tif", size=24)
    write_tile(root / "b.tif", size=24, origin=(601000.0, 5399000.0))  # union: 124 x 124 px
    write_stats(tmp_path / "stats.yaml")
    rc, err = fit(capsys, make_config(tmp_path / "run", root))
    assert_one_line_error(rc, err, "every file is smaller than patch_size=32 px", "24x24 px")


def test_empty_directory(tmp_path, capsys):
    root = tmp_path / "empty"
    root.mkdir()
    write_stats(tmp_path / "stats.yaml")
    rc, err = fit(capsys, make_config(tmp_path / "run", root))
    assert_one_line_error(rc, err, "no Sentinel-2 files found", str(root), "*.tif")


# ---- bands and statistics --------------------------------------------------------------


def test_unknown_band(tmp_path, tiles, capsys):
    rc, err = fit(capsys, make_config(tmp_path / "run", tiles), "--data.bands", "B02,B13")
    assert_one_line_error(rc, err, "unknown Sentinel-2 band 'B13'", "valid bands are")


def test_duplicated_band(tmp_path, tiles, capsys):
    rc, err = fit(capsys, make_config(tmp_path / "run", tiles), "--data.bands", "B02,B03,b2")
    assert_one_line_error(rc, err, "duplicated band(s) ['B02']")


def test_duplicated_band_in_band_order(tmp_path, tiles, capsys):
    order = "[B01,B02,B03,B04,B05,B06,B07,B08,B8A,B09,B11,B11]"
    rc, err = fit(capsys, make_config(tmp_path / "run", tiles), f"--data.band_order={order}")
    assert_one_line_error(rc, err, "duplicated band(s) ['B11']")


def test_stats_file_missing_a_band(tmp_path, tiles, capsys):
    stats = write_stats(tmp_path / "partial.yaml", bands=("B02", "B03"))
    config = make_config(tmp_path / "run", tiles, data={"stats": str(stats)})
    rc, err = fit(capsys, config)
    assert_one_line_error(
        rc, err, f"stats file {stats} has no statistics for band(s) ['B04', 'B08']"
    )


def test_stats_file_with_zero_std(tmp_path, tiles, capsys):
    stats = tmp_path / "zero.yaml"
    text = (tiles.parent / "stats.yaml").read_text()
    lines = text.splitlines()
    i = lines.index("  B04:")
    lines[i + 2] = "    std: 0.0"
    stats.write_text("\n".join(lines) + "\n")
    config = make_config(tmp_path / "run", tiles, data={"stats": str(stats)})
    rc, err = fit(capsys, config)
    assert_one_line_error(rc, err, f"stats file {stats}", "band B04: std must be > 0")


def test_stats_file_missing(tmp_path, tiles, capsys):
    config = make_config(tmp_path / "run", tiles, data={"stats": str(tmp_path / "nope.yaml")})
    rc, err = fit(capsys, config)
    assert_one_line_error(rc, err, f"stats file {tmp_path / 'nope.yaml'} does not exist")


# ---- output folder ---------------------------------------------------------------------


def test_unwritable_output_dir(tmp_path, tiles, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    out = blocker / "run"
    config = make_config(tmp_path / "cfg", tiles, trainer={"default_root_dir": str(out)})
    rc, err = fit(capsys, config)
    assert_one_line_error(rc, err, f"default_root_dir {out} is not writable", "Not a directory")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_checkpoint_dir(tmp_path, tiles, capsys):
    config = make_config(tmp_path / "run", tiles)
    ckpt = tmp_path / "run" / "ckpt"
    ckpt.mkdir()
    ckpt.chmod(0o500)
    try:
        rc, err = fit(capsys, config)
    finally:
        ckpt.chmod(0o700)
    assert_one_line_error(rc, err, f"ModelCheckpoint dirpath {ckpt} is not writable")


# ---- errors raised inside DataLoader workers ------------------------------------------


def test_read_error_in_a_loader_worker_is_one_line(tmp_path, tiles, capsys):
    truncate(tiles / "a.tif", 0.3)  # rows below ~29 are gone: every 32 px tile hits them
    config = make_config(tmp_path / "run", tiles, data={"check_files": False, "num_workers": 1})
    rc, err = fit(capsys, config)
    assert_one_line_error(rc, err, "reading [", f"{tiles / 'a.tif'}", "failed", "truncated")
    assert "Original Traceback" not in err


# ---- the command line process ----------------------------------------------------------


def test_cli_process_exit_status_and_debug_traceback(tmp_path, tiles):
    config = make_config(tmp_path / "run", tiles, data={"bands": "B02,B13"})
    command = [PYTHON, "-m", "geomae.main", "fit", "--config", str(config)]
    plain = subprocess.run(
        command, cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=120
    )
    assert plain.returncode == 2
    assert "geomae: error: unknown Sentinel-2 band 'B13'" in plain.stderr
    assert "Traceback" not in plain.stderr
    debug = subprocess.run(
        command,
        cwd=REPO,
        env={**cli_env(), "GEOMAE_DEBUG": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert debug.returncode != 0
    assert "Traceback (most recent call last)" in debug.stderr
    assert "geomae.errors.BandError: unknown Sentinel-2 band 'B13'" in debug.stderr


def test_band_file_with_several_bands(tmp_path, s2data, capsys):
    root = tmp_path / "IMG_DATA"
    files = s2data.write_band_files(root, size=96, bands=("B02", "B03", "B04", "B08"))
    files["B03"].unlink()
    write_tile(files["B03"], count=3)  # e.g. an RGB export saved under a band's name
    write_stats(tmp_path / "stats.yaml")
    config = make_config(tmp_path / "run", root, data={"tile_format": "bands"})
    rc, err = fit(capsys, config)
    assert_one_line_error(rc, err, f"{files['B03']} has 3 band(s); expected 1")


def test_some_files_smaller_than_the_patch_are_logged(tmp_path, caplog):
    root = tmp_path / "tiles"
    write_tile(root / "a.tif")
    write_tile(root / "b.tif", size=16, origin=(601000.0, 5400000.0))
    with caplog.at_level(logging.WARNING, logger="geomae.checks"):
        Sentinel2PretrainDataModule(
            paths=str(root), tile_format="multiband", bands="rgbn", patch_size=32
        )
    assert "1 of 2 files are smaller than patch_size=32 px" in caplog.text
    assert str(root / "b.tif") in caplog.text


def test_max_nodata_fraction_out_of_range(tmp_path, tiles, capsys):
    config = make_config(tmp_path / "run", tiles, data={"max_nodata_fraction": 1.5})
    rc, err = fit(capsys, config)
    assert_one_line_error(rc, err, "max_nodata_fraction=1.5 must be in [0, 1]")


def test_writable_check_has_no_side_effects(tmp_path):
    from geomae.checks import check_writable_dir

    target = tmp_path / "not" / "yet"
    assert check_writable_dir(target) == target
    assert not (tmp_path / "not").exists() and list(tmp_path.iterdir()) == []
