"""BigEarthNet-S2 v1.0 (per-band GeoTIFF patches, multi-label CORINE classes).

Reads the layout of the BigEarthNet-S2 v1.0 archive directly with rasterio: one folder
per patch holding one GeoTIFF per band at its native resolution (120 x 120 px at 10 m,
60 x 60 at 20 m, 20 x 20 at 60 m) and a ``<patch>_labels_metadata.json`` with the
patch's CORINE land-cover class names (43-class nomenclature). The 20 m and 60 m bands
are upsampled bilinearly to 120 x 120 so every band shares the 10 m grid. Labels are
float multi-hot vectors in the 19-class nomenclature (or the original 43 classes); the
class lists and the 43 -> 19 mapping are torchgeo's (:class:`torchgeo.datasets.BigEarthNet`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import rasterio
import torch
from rasterio.enums import Resampling
from torch import Tensor
from torchgeo.datasets import BigEarthNet, NonGeoDataset

from geomae.bands import L2A_BANDS, parse_bands
from geomae.errors import BandError, DataError

__all__ = ["BIGEARTHNET_CLASSES_19", "BIGEARTHNET_CLASSES_43", "BigEarthNetS2"]

log = logging.getLogger(__name__)

#: The 43 CORINE class names as written in the labels JSON files.
BIGEARTHNET_CLASSES_43: tuple[str, ...] = tuple(BigEarthNet.class_sets[43])
#: The 19-class nomenclature (Sumbul et al. 2021), in label-index order.
BIGEARTHNET_CLASSES_19: tuple[str, ...] = tuple(BigEarthNet.class_sets[19])
_TO_19: dict[int, int] = dict(BigEarthNet.label_converter)

#: Folder of patch folders inside the unpacked ``BigEarthNet-S2-v1.0.tar.gz``.
IMAGES_DIR = "BigEarthNet-v1.0"


class BigEarthNetS2(NonGeoDataset):
    """BigEarthNet-S2 v1.0 patches with canonical band order and multi-hot labels.

    Expected layout under ``root``::

        root/BigEarthNet-v1.0/<patch>/<patch>_B01.tif ... <patch>_B12.tif, <patch>_B8A.tif
        root/BigEarthNet-v1.0/<patch>/<patch>_labels_metadata.json    {"labels": [...], ...}
        root/bigearthnet-{train,val,test}.csv  or  root/{train,val,test}.csv

    Split files list one patch per line; only the first comma-separated column is read,
    so torchgeo's ``bigearthnet-<split>.csv`` (``s2_patch,s1_patch``) and the plain
    ``<split>.csv`` of the 19-class benchmark (``s2_patch``) both work. If
    ``root/BigEarthNet-v1.0`` does not exist, the patch folders are looked for directly
    under ``root``.

    Samples: ``image`` ``(C, 120, 120)`` float32 raw digital numbers in :attr:`bands`
    order, ``label`` ``(K,)`` float32 multi-hot over :attr:`class_names`.

    Args:
        root: dataset root (see the layout above).
        split: ``"train"``, ``"val"`` or ``"test"``.
        bands: bands to read (band-set name, comma string or list; the 12 L2A bands),
            returned in canonical order.
        num_classes: 19 (the recommended nomenclature) or 43 (the original CORINE one).

    Raises:
        DataError: if ``root``, the split file or a listed patch folder is missing.
        BandError: if a band is not one of the 12 BigEarthNet bands.
    """

    image_size = (120, 120)
    splits = ("train", "val", "test")

    def __init__(
        self,
        *,
        root: str | Path,
        split: Literal["train", "val", "test"] = "train",
        bands: str | Sequence[str] = L2A_BANDS,
        num_classes: Literal[19, 43] = 19,
    ) -> None:
        if split not in self.splits:
            raise DataError(f"BigEarthNet split must be one of {list(self.splits)}, got {split!r}")
        if num_classes not in (19, 43):
            raise DataError(f"BigEarthNet num_classes must be 19 or 43, got {num_classes!r}")
        self.bands: list[str] = parse_bands(bands)
        unknown = [b for b in self.bands if b not in L2A_BANDS]
        if unknown:
            raise BandError(f"BigEarthNet-S2 has no band(s) {unknown}; it holds {list(L2A_BANDS)}")
        self.root = Path(root)
        self.split = split
        self.num_classes = num_classes
        self.class_names: list[str] = list(
            BIGEARTHNET_CLASSES_19 if num_classes == 19 else BIGEARTHNET_CLASSES_43
        )
        self._index43 = {name: i for i, name in enumerate(BIGEARTHNET_CLASSES_43)}
        self.split_file = _find_split_file(self.root, split)
        images = self.root / IMAGES_DIR
        self.images_dir = images if images.is_dir() else self.root
        self.patches = _read_split(self.split_file)
        missing = [p for p in self.patches if not (self.images_dir / p).is_dir()]
        if missing:
            raise DataError(
                f"{self.split_file} lists {len(missing)} patch folder(s) missing under "
                f"{self.images_dir}, e.g. {missing[:5]}"
            )

    def __len__(self) -> int:
        """Number of patches in the split."""
        return len(self.patches)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return one sample.

        Args:
            index: sample index.

        Returns:
            ``image`` ``(C, 120, 120)`` float32 raw DN and ``label`` ``(K,)`` float32.
        """
        folder = self.images_dir / self.patches[index]
        return {"image": self._load_image(folder), "label": self._load_label(folder)}

    def _load_image(self, folder: Path) -> Tensor:
        """Read every band of one patch, upsampled to 120 x 120."""
        arrays = []
        for band in self.bands:
            path = folder / f"{folder.name}_{band}.tif"
            if not path.is_file():
                raise DataError(f"BigEarthNet patch {folder} has no file for band {band}: {path}")
            with rasterio.open(path) as src:
                arrays.append(
                    src.read(
                        1,
                        out_shape=self.image_size,
                        out_dtype="float32",
                        resampling=Resampling.bilinear,
                    )
                )  # (120, 120)
        return torch.from_numpy(np.stack(arrays))  # (C, 120, 120)

    def _load_label(self, folder: Path) -> Tensor:
        """Read the patch's class names and turn them into a multi-hot vector."""
        path = folder / f"{folder.name}_labels_metadata.json"
        if not path.is_file():
            raise DataError(f"BigEarthNet patch {folder} has no labels file {path}")
        with path.open() as f:
            names = json.load(f).get("labels")
        if not isinstance(names, list):
            raise DataError(f"{path}: expected a 'labels' list of CORINE class names")
        unknown = [n for n in names if n not in self._index43]
        if unknown:
            raise DataError(
                f"{path}: unknown BigEarthNet class(es) {unknown}; expected names from "
                "the 43-class CORINE nomenclature"
            )
        indices = [self._index43[n] for n in names]
        if self.num_classes == 19:
            indices = [_TO_19[i] for i in indices if i in _TO_19]
        label = torch.zeros(self.num_classes, dtype=torch.float32)  # (K,)
        label[indices] = 1.0
        return label


def _find_split_file(root: Path, split: str) -> Path:
    """Return the split CSV of ``split`` (torchgeo's name first, then the plain one)."""
    if not root.is_dir():
        raise DataError(
            f"BigEarthNet root {root} does not exist (geomae never downloads; unpack "
            f"BigEarthNet-S2-v1.0.tar.gz and the split CSV files there)"
        )
    candidates = [root / f"bigearthnet-{split}.csv", root / f"{split}.csv"]
    for path in candidates:
        if path.is_file():
            return path
    raise DataError(
        f"BigEarthNet {split} split file not found: expected {candidates[0]} or {candidates[1]}"
    )


def _read_split(path: Path) -> list[str]:
    """Patch names from the first column of a split CSV."""
    with path.open() as f:
        patches = [line.split(",")[0].strip() for line in f if line.strip()]
    if not patches:
        raise DataError(f"BigEarthNet split file {path} lists no patches")
    return patches
