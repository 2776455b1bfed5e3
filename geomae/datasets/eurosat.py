"""EuroSAT MS (13-band Sentinel-2 GeoTIFF patches) with canonical band order.

The multispectral EuroSAT archive stores each 64 x 64 patch as a 13-band GeoTIFF whose
band order is B01..B12 followed by B8A (B8A is the *last* band in the files). This
dataset reads it through torchgeo's :class:`~torchgeo.datasets.EuroSAT` (no download)
and returns the requested bands in canonical wavelength order, so channel ``i`` is
always ``bands[i]``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor
from torchgeo.datasets import EuroSAT

from geomae.bands import L2A_BANDS, parse_bands
from geomae.errors import BandError, DataError

__all__ = ["EUROSAT_CLASSES", "EUROSAT_FILE_BANDS", "EuroSATMS"]

log = logging.getLogger(__name__)

#: Band order inside the EuroSAT MS GeoTIFFs (B8A last).
EUROSAT_FILE_BANDS: tuple[str, ...] = tuple(EuroSAT.all_band_names)

#: Class folder names of EuroSAT, in label-index order (sorted folder names).
EUROSAT_CLASSES: tuple[str, ...] = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)


class EuroSATMS(EuroSAT):
    """EuroSAT multispectral patches with bands in canonical order.

    Expected layout under ``root`` (the unpacked ``EuroSATallBands.zip`` plus the split
    files, as torchgeo reads it)::

        root/eurosat-{train,val,test}.txt        one file name per line (.jpg or .tif)
        root/ds/images/remote_sensing/otherDatasets/sentinel_2/tif/<Class>/<Class>_<n>.tif

    Samples: ``image`` ``(C, 64, 64)`` float32 raw digital numbers in :attr:`bands`
    order, ``label`` ``()`` int64 class index into :attr:`class_names`.

    Args:
        root: dataset root (see the layout above).
        split: ``"train"``, ``"val"`` or ``"test"``.
        bands: bands to return (band-set name, comma string or list; any of the 13
            EuroSAT bands); returned in canonical order. Defaults to the 12 L2A bands.

    Raises:
        DataError: if ``root``, the split file or the image folder is missing, if the
            split file names images that do not exist, or if the class folders are not
            the ten EuroSAT classes.
        BandError: if a band is not one of the 13 EuroSAT bands.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        split: str = "train",
        bands: str | Sequence[str] = L2A_BANDS,
    ) -> None:
        if split not in self.splits:
            raise DataError(f"EuroSAT split must be one of {list(self.splits)}, got {split!r}")
        canonical = parse_bands(bands)
        unknown = [b for b in canonical if b not in EUROSAT_FILE_BANDS]
        if unknown:
            raise BandError(f"EuroSAT has no band(s) {unknown}; it holds {EUROSAT_FILE_BANDS}")
        root = Path(root)
        _check_layout(root, self.split_filenames[split], self.base_dir)
        try:
            super().__init__(root=str(root), split=split, bands=canonical, download=False)
        except FileNotFoundError as err:  # torchvision's ImageFolder: an empty class folder
            raise DataError(f"EuroSAT {split} split under {root}: {err}") from err
        self.bands: list[str] = canonical
        self._check_contents(root / self.split_filenames[split])

    @property
    def class_names(self) -> list[str]:
        """Class names in label-index order."""
        return list(self.classes)

    def _check_contents(self, split_file: Path) -> None:
        """Check the classes and that every image the split file names was found."""
        if list(self.classes) != list(EUROSAT_CLASSES):
            raise DataError(
                f"EuroSAT class folders under {self.root} are {list(self.classes)}; "
                f"expected {list(EUROSAT_CLASSES)}"
            )
        with split_file.open() as f:
            listed = {line.strip().replace(".jpg", ".tif") for line in f if line.strip()}
        found = {os.path.basename(path) for path, _ in self.samples}
        missing = sorted(listed - found)
        if missing:
            raise DataError(
                f"{split_file} lists {len(missing)} image(s) missing under {self.root}, "
                f"e.g. {missing[:5]}"
            )

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return one sample.

        Args:
            index: sample index.

        Returns:
            ``image`` ``(C, H, W)`` float32 raw DN in :attr:`bands` order and ``label``
            ``()`` int64.

        Raises:
            DataError: if the file does not hold the 13 EuroSAT bands.
        """
        image, label = self._load_image(index)  # (13, H, W), ()
        if image.shape[0] != len(EUROSAT_FILE_BANDS):
            raise DataError(
                f"{self.samples[index][0]} has {image.shape[0]} bands; EuroSAT MS files "
                f"hold {len(EUROSAT_FILE_BANDS)} ({', '.join(EUROSAT_FILE_BANDS)})"
            )
        image = image.index_select(0, self.band_indices).float()  # (C, H, W)
        return {"image": image, "label": label.long()}


def _check_layout(root: Path, split_filename: str, base_dir: str) -> None:
    """Raise a :class:`DataError` naming the first missing part of the layout."""
    if not root.is_dir():
        raise DataError(
            f"EuroSAT root {root} does not exist (geomae never downloads; unpack "
            "EuroSATallBands.zip and the eurosat-{train,val,test}.txt split files there)"
        )
    split_file = root / split_filename
    if not split_file.is_file():
        raise DataError(f"EuroSAT split file {split_file} does not exist")
    images = root / base_dir
    if not images.is_dir() and not (root / EuroSAT.filename).is_file():
        raise DataError(
            f"EuroSAT image folder {images} does not exist (nor {root / EuroSAT.filename} "
            "to unpack)"
        )
