import pickle
import shutil

import numpy as np
import pytest
import xarray as xr
import zarr

from geomae.errors import DataError
from geomae.store import TileStore, write_tile_store
from geomae.store.layout import ATTRS_KEY


@pytest.fixture
def store_path(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.integers(1, 60000, size=(3, 64, 64)).astype("uint16")
    data[:, :8, :8] = 0
    cube = xr.DataArray(
        data,
        dims=("band", "y", "x"),
        coords={"band": ["B04", "B03", "B02"]},
        attrs={"nodata": 0},
    )
    write_tile_store(cube, tmp_path / "store", tile_size=8, chunk_tiles=8, max_nodata=1.0)
    return tmp_path / "store"


def test_read_any_order_with_duplicates(store_path):
    store = TileStore(store_path)
    assert len(store) == 64 and store.chunk_tiles == 8
    every, valid = store.read(np.arange(64))
    for indices in ([5, 1, 5], [9, 10, 11], [63, 0], [17]):
        tiles, v = store.read(np.array(indices))
        np.testing.assert_array_equal(tiles, every[indices])
        np.testing.assert_array_equal(v, valid[indices])
    assert not valid[0].any() and valid[1:].all()  # the nodata corner is tile 0
    with pytest.raises(IndexError, match="64"):
        store.read(np.array([64]))


def test_pickle_reopens_in_the_new_process(store_path):
    store = TileStore(store_path)
    before, _ = store.read(np.array([3]))
    clone = pickle.loads(pickle.dumps(store))
    assert clone._tiles is None
    after, _ = clone.read(np.array([3]))
    np.testing.assert_array_equal(before, after)


def test_missing_store(tmp_path):
    with pytest.raises(DataError, match=r"nope does not exist.*geomae prepare"):
        TileStore(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="plain is not a zarr.*zarr.json is missing"):
        TileStore(tmp_path / "plain")


def test_zarr_without_geomae_metadata(tmp_path):
    zarr.open_group(str(tmp_path / "other"), mode="w")
    with pytest.raises(DataError, match=f"other: the zarr group has no '{ATTRS_KEY}'"):
        TileStore(tmp_path / "other")


def test_incomplete_metadata_names_the_keys(store_path):
    group = zarr.open_group(str(store_path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    del attrs["bands"], attrs["tile_size"]
    group.attrs[ATTRS_KEY] = attrs
    with pytest.raises(DataError, match=r"lacks \['bands', 'tile_size'\]"):
        TileStore(store_path)


def test_missing_array_is_named(store_path):
    shutil.rmtree(store_path / "valid")
    with pytest.raises(DataError, match=r"array\(s\) \['valid'\] missing"):
        TileStore(store_path)


def test_shape_mismatch(store_path):
    group = zarr.open_group(str(store_path), mode="r+")
    attrs = dict(group.attrs[ATTRS_KEY])
    attrs["num_tiles"] = 65
    group.attrs[ATTRS_KEY] = attrs
    with pytest.raises(DataError, match="'tiles' has shape"):
        TileStore(store_path)


def test_corrupt_chunk(store_path):
    chunk = store_path / "tiles" / "c" / "1" / "0" / "0" / "0"
    assert chunk.is_file()
    chunk.write_bytes(b"\x00garbage" * 10)
    store = TileStore(store_path)
    store.read(np.arange(8))  # chunk 0 is fine
    with pytest.raises(DataError, match=r"store: cannot read tiles \[8, 9"):
        store.read(np.arange(8, 12))
