"""``geomae prepare --workers N``: scenes cut on Dask into one store, resumably."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import zarr

from geomae.cli.prepare import main
from geomae.errors import DataError, ScenesFailedError
from geomae.store import TileStore
from geomae.store.parallel import prepare_scenes
from geomae.store.parts import PART_KEY
from geomae.store.writer import CutOptions

ARGS = ["--tile-size", "32", "--chunk-tiles", "4"]
OPTIONS = CutOptions(tile_size=32, stride=32, chunk_tiles=4)


@pytest.fixture(scope="module")
def scheduler():
    """Address of a 2-process local Dask cluster shared by this module's tests.

    Its workers import geomae once (most of a small prepare's time on 2 cores).
    """
    from dask.distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as cluster:
        yield cluster.scheduler_address


def write_scenes(root: Path, s2data, count: int, *, size: int = 96) -> list[str]:
    """``count`` 12-band L1C scenes (each its own pixels) with a nodata corner."""
    scenes = []
    for i in range(count):
        folder = root / f"scene{i}"
        s2data.write_band_files(folder, size=size, nodata=0, seed=i)
        scenes.append(str(folder))
    return scenes


def assert_same_store(path: Path, reference: Path) -> None:
    """Tiles, valid masks, bounds, chunking and metadata equal; stats to rounding."""
    got, want = TileStore(path), TileStore(reference)
    assert len(got) == len(want) > 0
    tiles, valid = got.read(np.arange(len(got)))
    ref_tiles, ref_valid = want.read(np.arange(len(want)))
    np.testing.assert_array_equal(tiles, ref_tiles)
    np.testing.assert_array_equal(valid, ref_valid)
    np.testing.assert_array_equal(got.bounds, want.bounds)
    for name in ("tiles", "valid", "bounds"):
        a, b = zarr.open_array(str(path / name)), zarr.open_array(str(reference / name))
        assert (a.shape, a.chunks, a.dtype) == (b.shape, b.chunks, b.dtype)
    record, ref_record = got.info.to_dict(), want.info.to_dict()
    stats, ref_stats = record.pop("stats"), ref_record.pop("stats")
    assert record == ref_record
    assert stats["attrs"] == ref_stats["attrs"]  # pixel counts, sources, method
    for band, values in ref_stats["bands"].items():
        assert stats["bands"][band]["p2"] == values["p2"]  # exact histograms
        assert stats["bands"][band]["p98"] == values["p98"]
        assert stats["bands"][band]["mean"] == pytest.approx(values["mean"], rel=1e-12)
        assert stats["bands"][band]["std"] == pytest.approx(values["std"], rel=1e-9)


def finished_parts(parts: Path) -> list[Path]:
    """Part stores whose record is written (the durable marker)."""
    done = []
    for part in parts.glob("*.zarr"):
        try:
            if PART_KEY in dict(zarr.open_group(str(part), mode="r").attrs):
                done.append(part)
        except Exception:  # being renamed or written right now
            continue
    return done


def test_dask_prepare_matches_single_process(tmp_path, s2data, scheduler):
    scenes = write_scenes(tmp_path, s2data, 3)
    order = [scenes[0], scenes[1], scenes[0], scenes[2]]  # a scene listed twice
    reference = tmp_path / "reference.zarr"
    assert main([*order, "-o", str(reference), *ARGS]) == 0  # today's in-process path
    out = tmp_path / "dask.zarr"
    dask_args = [*order, "-o", str(out), *ARGS, "--scheduler", scheduler]  # worker processes
    assert main(dask_args) == 0
    assert_same_store(out, reference)
    assert not Path(f"{out}.parts").exists()  # the parts are removed once assembled
    with pytest.raises(DataError, match="already exists"):
        main(dask_args)


def test_failing_scene_is_named_and_the_others_are_kept(tmp_path, s2data, capsys, scheduler):
    scenes = write_scenes(tmp_path, s2data, 4)
    band_file = next(Path(scenes[2]).glob("*_B02.tif"))
    intact = band_file.read_bytes()
    band_file.write_bytes(intact[: int(len(intact) * 0.3)])  # header readable, pixels gone
    out = tmp_path / "store.zarr"
    parts = Path(f"{out}.parts")
    with pytest.raises(ScenesFailedError) as caught:
        prepare_scenes(scenes, out, options=OPTIONS, scheduler=scheduler)
    message = str(caught.value)
    assert "1 of 4 scene(s) could not be cut" in message and scenes[2] in message
    assert str(band_file) in message and "NOT written" in message and str(parts) in message
    assert not out.exists() and len(finished_parts(parts)) == 3
    # the CLI exits 2 (a geomae input error) with the same one-line message
    from geomae.main import main as geomae_main

    argv = ["prepare", *scenes, "-o", str(out), *ARGS, "--scheduler", scheduler]
    assert geomae_main(argv) == 2
    assert scenes[2] in capsys.readouterr().err
    # an unfinished part of a killed run (temp name) is discarded and cut again
    (parts / "scene2-deadbeef.zarr.tmp").mkdir()
    band_file.write_bytes(intact)
    info = prepare_scenes(scenes, out, options=OPTIONS, scheduler=scheduler)
    assert info.num_tiles == 32 and not parts.exists()
    reference = tmp_path / "reference.zarr"
    main([*scenes, "-o", str(reference), *ARGS])
    assert_same_store(out, reference)


def test_missing_band_fails_before_any_tile(tmp_path, s2data, safedata):
    good = safedata.write_safe(tmp_path / "a", level="L2A", size=48)
    bad = safedata.write_safe(tmp_path / "b", level="L2A", size=48, seed=1)
    missing = next(bad.rglob("*_B11_20m.jp2"))
    missing.unlink()
    out = tmp_path / "store.zarr"
    with pytest.raises(DataError, match="band B11") as caught:
        prepare_scenes([str(good), str(bad)], out, options=OPTIONS, workers=1, processes=False)
    assert str(bad) in str(caught.value)
    assert not out.exists() and not any(Path(f"{out}.parts").iterdir())  # nothing cut


@pytest.mark.slow
def test_kill_9_then_rerun_completes_the_store(tmp_path, s2data):
    scenes = write_scenes(tmp_path, s2data, 6, size=192)
    out = tmp_path / "store.zarr"
    parts = Path(f"{out}.parts")
    argv = [*scenes, "-o", str(out), *ARGS, "--workers", "1"]
    code = "import sys; from geomae.main import main; sys.exit(main(sys.argv[1:]))"
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "prepare", *argv],
        start_new_session=True,  # its own process group: client, nanny and worker
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not finished_parts(parts) and proc.poll() is None:
            assert time.monotonic() < deadline, "no part was finished in 120 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "prepare ended before it could be killed"
    done = finished_parts(parts)
    assert 1 <= len(done) < len(scenes) and not out.exists()
    assert main(argv) == 0  # resumes: cuts only the scenes without a finished part
    reference = tmp_path / "reference.zarr"
    main([*scenes, "-o", str(reference), *ARGS])
    assert_same_store(out, reference)
