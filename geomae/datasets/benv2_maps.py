"""BigEarthNet v2 reference maps: pixel-level CORINE codes -> 19-class masks.

The release's ``Reference_Maps/<product>/<patch_id>/<patch_id>_reference_map.tif`` holds
one CORINE Land Cover 2018 level-3 code per 10 m pixel (``111`` continuous urban fabric
... ``523`` sea and ocean), 120 x 120 px. The 43 BigEarthNet classes are the CLC level-3
classes in code order without ``335`` (glaciers); :data:`CLC_TO_19` sends each code to
its class of the 19-class nomenclature through the same 43 -> 19 mapping the labels use.
Codes without a 19-class counterpart (roads, ports, airports, mines, dumps, construction
sites, green urban and sport areas, bare rock, burnt areas, intertidal flats) and any
other value become ``ignore_index``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
import torch
from torch import Tensor
from torchgeo.datasets import BigEarthNet

from geomae.datasets.benv2_readers import PATCH_PX, product_of
from geomae.errors import DataError

__all__ = ["CLC_CODES_43", "CLC_TO_19", "MAPS_DIR", "read_reference_map", "reference_map_path"]

#: Folder of the reference maps inside the release.
MAPS_DIR = "Reference_Maps"

#: CLC level-3 codes of the 43 BigEarthNet classes, in class-index order.
CLC_CODES_43: tuple[int, ...] = (
    111, 112, 121, 122, 123, 124, 131, 132, 133, 141, 142,
    211, 212, 213, 221, 222, 223, 231, 241, 242, 243, 244,
    311, 312, 313, 321, 322, 323, 324, 331, 332, 333, 334,
    411, 412, 421, 422, 423, 511, 512, 521, 522, 523,
)  # fmt: skip

#: CLC code -> class index of the 19-class nomenclature (codes without one omitted).
CLC_TO_19: dict[int, int] = {
    code: BigEarthNet.label_converter[i]
    for i, code in enumerate(CLC_CODES_43)
    if i in BigEarthNet.label_converter
}

_LUT = np.full(1000, -1, dtype=np.int64)  # CLC code -> 19-class index, -1 where none
for _code, _index in CLC_TO_19.items():
    _LUT[_code] = _index


def reference_map_path(maps_dir: Path, patch_id: str) -> Path:
    """Path of one patch's reference map."""
    return maps_dir / product_of(patch_id) / patch_id / f"{patch_id}_reference_map.tif"


def read_reference_map(maps_dir: Path, patch_id: str, *, ignore_index: int = 255) -> Tensor:
    """Read one reference map as a 19-class mask.

    Args:
        maps_dir: the ``Reference_Maps`` folder.
        patch_id: the patch.
        ignore_index: mask value of pixels without a 19-class label.

    Returns:
        ``(120, 120)`` int64 class indices, ``ignore_index`` where unlabeled.

    Raises:
        DataError: if the file is missing or not 120 x 120 px.
    """
    path = reference_map_path(maps_dir, patch_id)
    if not path.is_file():
        raise DataError(f"BigEarthNet v2 patch {patch_id} has no reference map: {path} is missing")
    with rasterio.open(path) as src:
        codes = src.read(1)  # (120, 120) CLC codes
    if codes.shape != (PATCH_PX, PATCH_PX):
        raise DataError(
            f"reference map {path} has shape {codes.shape}; expected ({PATCH_PX}, {PATCH_PX})"
        )
    codes = codes.astype(np.int64)
    inside = (codes >= 0) & (codes < _LUT.size)
    mask = np.full(codes.shape, -1, dtype=np.int64)
    mask[inside] = _LUT[codes[inside]]
    mask[mask < 0] = ignore_index
    return torch.from_numpy(mask)  # (120, 120)
