"""Part stores and the statistics state they carry between processes."""

import numpy as np
import pytest

from geomae.stats_accumulator import StatsAccumulator
from geomae.store.parts import SceneSpec, read_part, write_part
from geomae.store.remote import StoreLocation
from geomae.store.writer import CutOptions


def _tiles(seed: int, dtype: str) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 3000, (5, 2, 8, 8)).astype(dtype)  # (K, C, T, T)
    if dtype == "float32":
        image += 0.25
    return image, rng.random((5, 8, 8)) > 0.2  # (K, T, T)


@pytest.mark.parametrize("dtype", ["uint16", "float32"])
def test_stats_state_round_trip_and_merge(dtype):
    a, b = StatsAccumulator(["B02", "B03"], seed=1), StatsAccumulator(["B02", "B03"], seed=2)
    a.update(*_tiles(0, dtype))
    b.update(*_tiles(1, dtype))
    copy = StatsAccumulator.from_state(["B02", "B03"], a.state())
    assert copy.result(where="x").to_dict() == a.result(where="x").to_dict()
    merged = StatsAccumulator.from_state(["B02", "B03"], a.state())
    merged.merge(StatsAccumulator.from_state(["B02", "B03"], b.state()))
    a.merge(b)
    assert merged.result(where="x").to_dict() == a.result(where="x").to_dict()
    with pytest.raises(ValueError, match="does not match bands"):
        StatsAccumulator.from_state(["B02"], a.state())


def test_part_is_finished_only_with_its_record(tmp_path, scene_dir):
    parts = StoreLocation.parse(tmp_path / "store.zarr.parts")
    spec = SceneSpec(
        source=str(scene_dir),
        bands="all",
        nodata=0.0,
        tile_format="auto",
        resampling="nearest",
        band_pattern=None,
        options=CutOptions(tile_size=32, stride=32, chunk_tiles=4),
        dtype="uint16",
    )
    assert read_part(parts, spec.part_name) is None
    record = write_part(parts, spec)
    assert (record.num_tiles, record.num_skipped) == (8, 1)
    assert read_part(parts, spec.part_name) == record
    assert not (tmp_path / "store.zarr.parts" / f"{spec.part_name}.tmp").exists()
    # another tile size is another part; the key ignores nothing that changes the tiles
    other = SceneSpec(**{**spec.__dict__, "options": CutOptions(tile_size=16, stride=16)})
    assert other.part_name != spec.part_name and read_part(parts, other.part_name) is None
