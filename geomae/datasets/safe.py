"""Sentinel-2 SAFE products: find them, read their level, baseline and DN offset.

A SAFE product is a folder (``S2B_MSIL2A_..._N0510_..._.SAFE``) holding a product
metadata file at its top, ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``, and its band files
under ``GRANULE/<granule>/IMG_DATA/`` (L1C: ``T33UUU_..._B02.jp2``; L2A: in ``R10m`` /
``R20m`` / ``R60m``, ``T33UUU_..._B02_10m.jp2``). The metadata says (element names of
the ESA product specification, namespaces ignored):

- ``General_Info/Product_Info/PROCESSING_BASELINE``: e.g. ``05.10``;
- ``General_Info/Product_Image_Characteristics``: for L1C a ``Radiometric_Offset_List``
  of ``RADIO_ADD_OFFSET band_id="i"`` values, for L2A a ``BOA_ADD_OFFSET_VALUES_LIST``
  of ``BOA_ADD_OFFSET band_id="i"`` values (``band_id`` 0..12 in the band order B01 ..
  B8A .. B12), both ``-1000`` in practice.

From processing baseline 04.00 on (products since 25 January 2022) the stored digital
numbers are ``reflectance * 10000 - ADD_OFFSET``, i.e. 1000 higher than before. Such a
product's :attr:`SafeProduct.offset` is that shift (1000); older products have offset
0 whatever their metadata holds.
"""

from __future__ import annotations

import logging
import os
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from geomae.bands import S2_BANDS
from geomae.errors import DataError
from geomae.levels import ProcessingLevel

__all__ = [
    "OFFSET_BASELINE",
    "SafeProduct",
    "find_product_dir",
    "find_safe_products",
    "read_safe_product",
]

log = logging.getLogger(__name__)

#: Metadata file name of each processing level, at the top of a SAFE folder.
MTD_FILES: dict[str, ProcessingLevel] = {"MTD_MSIL1C.xml": "L1C", "MTD_MSIL2A.xml": "L2A"}
#: First processing baseline whose digital numbers carry the radiometric offset.
OFFSET_BASELINE = (4, 0)
#: Offset of baseline >= 04.00 products whose metadata lacks the offset list.
DEFAULT_OFFSET = 1000.0
#: Element holding the per-band offsets, per level.
_OFFSET_TAGS: dict[str, str] = {"L1C": "RADIO_ADD_OFFSET", "L2A": "BOA_ADD_OFFSET"}
#: Folders between a band file and its SAFE folder, at most (R10m/IMG_DATA/granule/GRANULE).
_MAX_DEPTH = 5
#: ``band_id`` of the metadata -> canonical band (the 13 bands in canonical order).
_BAND_IDS = dict(enumerate(S2_BANDS))


@dataclass(frozen=True)
class SafeProduct:
    """What geomae needs from one SAFE product's metadata.

    Attributes:
        path: the SAFE folder.
        metadata: its ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``.
        level: ``L1C`` or ``L2A``.
        baseline: processing baseline as written, e.g. ``"05.10"``.
        offset: DN offset to subtract (1000 from baseline 04.00 on, else 0).
    """

    path: Path
    metadata: Path
    level: ProcessingLevel
    baseline: str
    offset: float

    @property
    def baseline_version(self) -> tuple[int, int]:
        """``(major, minor)`` of :attr:`baseline`."""
        return parse_baseline(self.baseline, source=self.metadata)


def parse_baseline(text: str, *, source: str | os.PathLike[str]) -> tuple[int, int]:
    """``"04.00"`` -> ``(4, 0)``.

    Raises:
        DataError: naming ``source`` if ``text`` is not ``NN.NN``.
    """
    match = re.fullmatch(r"\s*(\d{1,2})\.(\d{1,2})\s*", text)
    if match is None:
        raise DataError(
            f"{source}: PROCESSING_BASELINE {text!r} is not of the form NN.NN (e.g. 05.10)"
        )
    return int(match.group(1)), int(match.group(2))


def _local(tag: str) -> str:
    """Element name without its ``{namespace}``."""
    return tag.rsplit("}", 1)[-1]


def read_safe_product(metadata: str | os.PathLike[str]) -> SafeProduct:
    """Read the level, processing baseline and DN offset of one SAFE product.

    Args:
        metadata: the product's ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``.

    Returns:
        The product; its ``offset`` is 0 below baseline 04.00, else minus the add
        offset of its bands (1000, with a warning, if the offset list is missing).

    Raises:
        DataError: naming the file, if it is not XML, has no ``PROCESSING_BASELINE``
            or a malformed one, or its bands have different offsets.
    """
    path = Path(metadata)
    level = MTD_FILES.get(path.name)
    if level is None:
        raise DataError(f"{path}: not a SAFE product metadata file ({sorted(MTD_FILES)})")
    try:
        root = ET.parse(path).getroot()
    except (ET.ParseError, OSError) as err:
        raise DataError(f"{path}: cannot read the product metadata ({err})") from None
    baseline = next(
        (e.text or "" for e in root.iter() if _local(e.tag) == "PROCESSING_BASELINE"), None
    )
    if baseline is None:
        raise DataError(
            f"{path}: no PROCESSING_BASELINE element (General_Info/Product_Info); cannot "
            "tell whether the product's digital numbers carry the 04.00 offset"
        )
    baseline = baseline.strip()
    version = parse_baseline(baseline, source=path)
    offsets: dict[str, float] = {}
    for element in root.iter():
        if _local(element.tag) == _OFFSET_TAGS[level]:
            band_id = element.get("band_id", "?")
            band = _BAND_IDS.get(int(band_id), band_id) if band_id.isdigit() else band_id
            try:
                offsets[band] = float(element.text or "")
            except ValueError:
                raise DataError(
                    f"{path}: {_OFFSET_TAGS[level]} of band_id {band_id} is "
                    f"{element.text!r}, not a number"
                ) from None
    if version < OFFSET_BASELINE:
        if any(v != 0 for v in offsets.values()):
            log.debug("%s: baseline %s < 04.00, ignoring its add offsets", path, baseline)
        offset = 0.0
    elif not offsets:
        log.warning(
            "%s: baseline %s but no %s values; assuming the documented offset %g",
            path,
            baseline,
            _OFFSET_TAGS[level],
            DEFAULT_OFFSET,
        )
        offset = DEFAULT_OFFSET
    else:
        values = set(offsets.values())
        if len(values) > 1:
            raise DataError(
                f"{path}: bands have different {_OFFSET_TAGS[level]} values {offsets}; "
                "geomae applies one offset per product"
            )
        offset = -values.pop()
    return SafeProduct(
        path=path.parent, metadata=path, level=level, baseline=baseline, offset=offset
    )


def find_product_dir(band_file: str | os.PathLike[str]) -> Path | None:
    """The SAFE folder a band file lies in (the nearest parent with product metadata).

    Returns:
        The folder holding ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml``, or None for a file
        outside any SAFE product (bare band files).
    """
    parent = Path(band_file).parent
    for _ in range(_MAX_DEPTH):
        if any((parent / name).is_file() for name in MTD_FILES):
            return parent
        if parent.parent == parent:
            break
        parent = parent.parent
    return None


def product_metadata(product_dir: Path) -> Path:
    """The metadata file of a SAFE folder (L2A preferred if, oddly, both exist)."""
    for name in ("MTD_MSIL2A.xml", "MTD_MSIL1C.xml"):
        if (product_dir / name).is_file():
            return product_dir / name
    raise DataError(f"{product_dir}: no MTD_MSIL1C.xml or MTD_MSIL2A.xml")


def find_safe_products(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Every SAFE product folder at or below ``paths`` (sorted, each once).

    A folder is a product when it holds ``MTD_MSIL1C.xml`` or ``MTD_MSIL2A.xml``; the
    search does not descend into a product.
    """
    found: set[Path] = set()
    for path in paths:
        path = Path(path)
        if not path.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            if any(name in filenames for name in MTD_FILES):
                found.add(Path(dirpath))
                dirnames.clear()
    return sorted(found)
