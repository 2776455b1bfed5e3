"""A fast tile store: tiles cut once from scenes or datacubes into zarr, read in bulk.

Random GeoTIFF/JP2 sampling opens, warps and reprojects files for every sample; a tile
store does that once (``geomae prepare``) and training then reads contiguous
compressed chunks. See :mod:`geomae.store.layout` for the on-disk layout.
"""

from geomae.store.dataset import TileStoreDataset
from geomae.store.layout import FORMAT_VERSION, TileStoreInfo
from geomae.store.reader import TileStore
from geomae.store.writer import write_tile_store

__all__ = [
    "FORMAT_VERSION",
    "TileStore",
    "TileStoreDataset",
    "TileStoreInfo",
    "write_tile_store",
]
