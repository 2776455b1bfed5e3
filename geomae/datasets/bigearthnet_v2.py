"""BigEarthNet v2 (reBEN, 2024): Sentinel-2 patches, 19-class multi-labels, reference maps.

Reads either form users have (see :mod:`geomae.datasets.benv2_readers`):

- the official release: ``root/BigEarthNet-S2/<product>/<patch_id>/<patch_id>_<band>.tif``;
- the LMDB form written by rico-hdl and read by configilm: ``root/BigEarthNet-V2-LMDB``
  (or ``root/BENv2.lmdb``, or any environment passed as ``lmdb_path``);

with the same ``root/metadata.parquet`` (:mod:`geomae.datasets.benv2_metadata`). Bands
come at their native sizes from either form and are upsampled here, bilinearly, to the
120 x 120 grid of the 10 m bands (the v1 reader's GDAL bilinear and this agree to within
1 DN, GDAL rounding to the uint16 source type). Labels are multi-hot over the 19 classes
in the nomenclature's own order (torchgeo's and the v1 reader's; configilm sorts them
alphabetically by default). With ``reference_maps`` the sample also carries the
pixel-level CORINE map as a 19-class ``mask`` (:mod:`geomae.datasets.benv2_maps`).

The v2 patches are Sen2Cor Level-2A surface reflectance x 10000 without the +1000
offset of processing baseline 04.00 (their published band means, e.g. B02 about 438,
match v1's), so the DataModule's ``offset`` stays 0.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torchgeo.datasets import NonGeoDataset

from geomae.bands import L2A_BANDS, parse_bands
from geomae.datasets.benv2_maps import MAPS_DIR, read_reference_map
from geomae.datasets.benv2_metadata import (
    METADATA_FILE,
    SNOW_CLOUD_FILE,
    read_metadata,
    select_patches,
)
from geomae.datasets.benv2_readers import (
    PATCH_PX,
    FolderReader,
    LmdbReader,
    PatchReader,
    describe_missing,
)
from geomae.datasets.bigearthnet import BIGEARTHNET_CLASSES_19
from geomae.errors import BandError, ConfigError, DataError

__all__ = [
    "BIGEARTHNET_V2_CLASSES",
    "IMAGES_DIR",
    "LMDB_NAMES",
    "BigEarthNetV2S2",
    "upsample_bands",
]

log = logging.getLogger(__name__)

#: The 19 classes, in label-index order.
BIGEARTHNET_V2_CLASSES: tuple[str, ...] = BIGEARTHNET_CLASSES_19
#: Folder of the Sentinel-2 patches in the official release.
IMAGES_DIR = "BigEarthNet-S2"
#: Names under which the LMDB environment is looked for in ``root``.
LMDB_NAMES: tuple[str, ...] = ("BigEarthNet-V2-LMDB", "BENv2.lmdb")


def upsample_bands(arrays: Sequence[np.ndarray], size: int = PATCH_PX) -> Tensor:
    """Stack native-size band arrays on the 10 m grid.

    Args:
        arrays: 2-D arrays, each ``(size, size)`` or a divisor of it (e.g. 60, 20).
        size: output side in pixels.

    Returns:
        ``(C, size, size)`` float32; coarser bands upsampled bilinearly with pixel
        centres aligned (``align_corners=False``, edges replicated).
    """
    out = torch.empty(len(arrays), size, size, dtype=torch.float32)  # (C, H, W)
    for i, array in enumerate(arrays):
        band = torch.from_numpy(array.astype(np.float32))  # (h, w)
        if band.shape != (size, size):
            band = F.interpolate(
                band[None, None], size=(size, size), mode="bilinear", align_corners=False
            )[0, 0]
        out[i] = band
    return out


class BigEarthNetV2S2(NonGeoDataset):
    """BigEarthNet v2 Sentinel-2 patches with canonical band order and multi-hot labels.

    Expected layout under ``root``::

        root/metadata.parquet
        root/metadata_for_patches_with_snow_cloud_or_shadow.parquet  (read only on request)
        root/BigEarthNet-S2/<product>/<patch_id>/<patch_id>_B01.tif ... _B12.tif, _B8A.tif
          or root/BigEarthNet-V2-LMDB/ (an LMDB environment keyed by patch id)
        root/Reference_Maps/<product>/<patch_id>/<patch_id>_reference_map.tif  (optional)

    Samples: ``image`` ``(C, 120, 120)`` float32 raw digital numbers in :attr:`bands`
    order, ``label`` ``(19,)`` float32 multi-hot over :attr:`class_names`, and with
    ``reference_maps`` ``mask`` ``(120, 120)`` int64 (``ignore_index`` where unlabeled).

    Args:
        root: dataset root (see the layout above).
        split: ``"train"``, ``"val"`` or ``"test"`` (the ``split`` column's ``train``,
            ``validation``, ``test``), unless ``country_split`` decides.
        bands: bands to read (band-set name, comma string or list; the 12 L2A bands),
            returned in canonical order.
        form: ``"folder"`` (the release's GeoTIFFs), ``"lmdb"``, or ``"auto"``: the
            folder if ``root/BigEarthNet-S2`` exists, else the LMDB.
        lmdb_path: the LMDB environment (default: ``root/BigEarthNet-V2-LMDB`` or
            ``root/BENv2.lmdb``).
        metadata_path: the metadata table (default ``root/metadata.parquet``).
        snow_cloud_path: the table of snowy/cloudy patches (default
            ``root/metadata_for_patches_with_snow_cloud_or_shadow.parquet``).
        include_snowy: add the patches with seasonal snow (from the snow/cloud table).
        include_cloudy: add the patches with clouds or cloud shadow (same table).
        countries: keep only patches of these countries (e.g. ``["Austria"]``).
        country_split: a country-based split instead of the official one, e.g.
            ``{"train": ["Austria", "Finland"], "val": ["Ireland"], "test": ["Portugal"]}``
            (disjoint countries).
        reference_maps: also return the reference map as ``mask``.
        ignore_index: ``mask`` value of pixels without a 19-class label.
        check_files: at construction, check that every selected patch is present
            (one directory listing per product, or one key lookup per patch).

    Raises:
        DataError: if a file or folder is missing, the metadata lacks a column, a
            listed patch is absent, or a label is not one of the 19 classes.
        BandError: if a band is not one of the 12 BigEarthNet bands.
        ConfigError: on an unknown split, form or country.
    """

    image_size = (PATCH_PX, PATCH_PX)
    splits = ("train", "val", "test")

    def __init__(
        self,
        *,
        root: str | Path,
        split: Literal["train", "val", "test"] = "train",
        bands: str | Sequence[str] = L2A_BANDS,
        form: Literal["auto", "folder", "lmdb"] = "auto",
        lmdb_path: str | Path | None = None,
        metadata_path: str | Path | None = None,
        snow_cloud_path: str | Path | None = None,
        include_snowy: bool = False,
        include_cloudy: bool = False,
        countries: Sequence[str] | None = None,
        country_split: Mapping[str, Sequence[str]] | None = None,
        reference_maps: bool = False,
        ignore_index: int = 255,
        check_files: bool = True,
    ) -> None:
        if split not in self.splits:
            raise ConfigError(
                f"BigEarthNet v2 split must be one of {list(self.splits)}, got {split!r}"
            )
        self.bands: list[str] = parse_bands(bands)
        unknown = [b for b in self.bands if b not in L2A_BANDS]
        if unknown:
            raise BandError(f"BigEarthNet v2 has no band(s) {unknown}; it holds {list(L2A_BANDS)}")
        if 0 <= ignore_index < len(BIGEARTHNET_V2_CLASSES):
            raise ConfigError(f"ignore_index={ignore_index} collides with a class index (0..18)")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DataError(
                f"BigEarthNet v2 root {self.root} does not exist (geomae never downloads; "
                f"unpack the release's BigEarthNet-S2 and {METADATA_FILE} there)"
            )
        self.split = split
        self.class_names: list[str] = list(BIGEARTHNET_V2_CLASSES)
        self.num_classes = len(self.class_names)
        self.ignore_index = int(ignore_index)
        self.metadata_path = Path(metadata_path) if metadata_path else self.root / METADATA_FILE
        tables = [(self.metadata_path, read_metadata(self.metadata_path))]
        if include_snowy or include_cloudy:
            extra = Path(snow_cloud_path) if snow_cloud_path else self.root / SNOW_CLOUD_FILE
            tables.append((extra, read_metadata(extra)))
        selected = select_patches(
            tables,
            split=split,
            countries=countries,
            country_split=country_split,
            include_snowy=include_snowy,
            include_cloudy=include_cloudy,
        )
        self.patches: list[str] = selected.patch_ids
        self.countries: list[str] = selected.countries
        self._labels = self._encode_labels(selected.patch_ids, selected.labels)  # (N, 19)
        self.reader: PatchReader = self._make_reader(form, lmdb_path)
        self.maps_dir: Path | None = None
        if reference_maps:
            self.maps_dir = self.root / MAPS_DIR
            if not self.maps_dir.is_dir():
                raise DataError(
                    f"reference_maps=True but {self.maps_dir} does not exist; unpack the "
                    "release's Reference_Maps there"
                )
        if not self.patches:
            log.warning(
                "BigEarthNet v2 %s split selects no patch from %s", split, self.metadata_path
            )
        if check_files:
            missing = self.reader.missing(self.patches)
            if missing:
                raise DataError(describe_missing(missing, self.reader, self.metadata_path))
        log.info("BigEarthNet v2 %s: %d patches from %s", split, len(self.patches), self.reader)

    def __len__(self) -> int:
        """Number of selected patches."""
        return len(self.patches)

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        """Return one sample.

        Args:
            index: sample index.

        Returns:
            ``image`` ``(C, 120, 120)`` float32 raw DN, ``label`` ``(19,)`` float32,
            and with reference maps ``mask`` ``(120, 120)`` int64.
        """
        patch_id = self.patches[index]
        arrays = self.reader.read(patch_id, self.bands)
        sample = {"image": upsample_bands(arrays), "label": self._labels[index].clone()}
        if self.maps_dir is not None:
            sample["mask"] = read_reference_map(
                self.maps_dir, patch_id, ignore_index=self.ignore_index
            )
        return sample

    def _make_reader(
        self, form: Literal["auto", "folder", "lmdb"], lmdb_path: str | Path | None
    ) -> PatchReader:
        """The folder or LMDB reader, after checking that its source exists."""
        if form not in ("auto", "folder", "lmdb"):
            raise ConfigError(f"form must be 'auto', 'folder' or 'lmdb', got {form!r}")
        images = self.root / IMAGES_DIR
        if form == "folder" or (form == "auto" and lmdb_path is None and images.is_dir()):
            if not images.is_dir():
                raise DataError(f"BigEarthNet v2 image folder {images} does not exist")
            return FolderReader(images)
        candidates = [Path(lmdb_path)] if lmdb_path else [self.root / n for n in LMDB_NAMES]
        for path in candidates:
            if path.exists():
                return LmdbReader(path)
        looked = [str(images)] if form == "auto" else []
        raise DataError(
            f"no BigEarthNet v2 images found: looked for {looked + [str(p) for p in candidates]}"
        )

    def _encode_labels(self, patch_ids: list[str], labels: list[list[str]]) -> Tensor:
        """Multi-hot ``(N, 19)`` float32 label matrix; unknown class names are an error."""
        index = {name: i for i, name in enumerate(self.class_names)}
        out = torch.zeros(len(patch_ids), self.num_classes, dtype=torch.float32)  # (N, K)
        for row, (patch_id, names) in enumerate(zip(patch_ids, labels, strict=True)):
            unknown = [n for n in names if n not in index]
            if unknown:
                raise DataError(
                    f"{self.metadata_path}: patch {patch_id} has label(s) {unknown} outside "
                    f"the 19-class nomenclature {self.class_names}"
                )
            out[row, [index[n] for n in names]] = 1.0
        return out
