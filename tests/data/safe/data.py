#!/usr/bin/env python3
"""Write tiny seeded Sentinel-2 SAFE products (folder tree + minimal product metadata).

``write_safe`` writes one product::

    S2B_MSIL2A_20220612T103031_N0400_R108_T32UQD_20220612T120000.SAFE/
      MTD_MSIL2A.xml        (Product_Info/PROCESSING_BASELINE, BOA_ADD_OFFSET list)
      GRANULE/L2A_T32UQD_A000001_20220612T103031/IMG_DATA/R10m/T32UQD_..._B02_10m.jp2
                                                        /R20m/..., R60m/...

(L1C: ``MTD_MSIL1C.xml`` with a ``Radiometric_Offset_List`` of ``RADIO_ADD_OFFSET``, and
the band files ``IMG_DATA/T32UQD_..._B02.jp2``). The band files come from
``tests/data/sentinel2/data.py`` (lossless JPEG 2000 by default, or GeoTIFF); their
values are the same for every product of the same ``seed``, so tests can compare
products of different baselines pixel for pixel.

Run ``python tests/data/safe/data.py OUTDIR`` to write an L1C and two L2A products.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

_S2 = Path(__file__).parents[1] / "sentinel2" / "data.py"
_spec = importlib.util.spec_from_file_location("s2_fixture_data_for_safe", _S2)
s2data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(s2data)

NAMESPACES = {
    "L1C": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-1C.xsd",
    "L2A": "https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd",
}


def metadata_xml(
    level: Literal["L1C", "L2A"],
    baseline: str,
    *,
    offset: float | None = -1000.0,
    offsets: dict[int, float] | None = None,
) -> str:
    """A minimal ``MTD_MSIL1C.xml`` / ``MTD_MSIL2A.xml`` with the elements geomae reads.

    Args:
        level: processing level.
        baseline: ``PROCESSING_BASELINE`` text, e.g. ``"04.00"``.
        offset: add offset of every band (written only for baselines >= 04.00, as in
            real products); None writes no offset list.
        offsets: ``{band_id: value}`` written instead of ``offset`` for every band.
    """
    ns = NAMESPACES[level]
    major = int(baseline.split(".")[0]) if baseline[:2].isdigit() else 0
    if offsets is None:
        offsets = {} if offset is None or major < 4 else dict.fromkeys(range(13), offset)
    tag = "RADIO_ADD_OFFSET" if level == "L1C" else "BOA_ADD_OFFSET"
    items = "".join(f'<{tag} band_id="{i}">{v:g}</{tag}>' for i, v in offsets.items())
    if level == "L1C":
        quant = '<QUANTIFICATION_VALUE unit="none">10000</QUANTIFICATION_VALUE>'
        offset_list = f"<Radiometric_Offset_List>{items}</Radiometric_Offset_List>"
    else:
        quant = (
            "<QUANTIFICATION_VALUES_LIST>"
            '<BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE>'
            "</QUANTIFICATION_VALUES_LIST>"
        )
        offset_list = f"<BOA_ADD_OFFSET_VALUES_LIST>{items}</BOA_ADD_OFFSET_VALUES_LIST>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<n1:Level-{level[1:]}_User_Product xmlns:n1="{ns}">'
        "<n1:General_Info><Product_Info>"
        f"<PROCESSING_LEVEL>Level-{level[1:]}</PROCESSING_LEVEL>"
        f"<PRODUCT_TYPE>S2MSI{level[1:]}</PRODUCT_TYPE>"
        f"<PROCESSING_BASELINE>{baseline}</PROCESSING_BASELINE>"
        "</Product_Info><Product_Image_Characteristics>"
        "<Special_Values><SPECIAL_VALUE_TEXT>NODATA</SPECIAL_VALUE_TEXT>"
        "<SPECIAL_VALUE_INDEX>0</SPECIAL_VALUE_INDEX></Special_Values>"
        f"{quant}{offset_list}"
        "</Product_Image_Characteristics></n1:General_Info>"
        f"</n1:Level-{level[1:]}_User_Product>\n"
    )


def write_safe(
    root: str | Path,
    *,
    level: Literal["L1C", "L2A"] = "L2A",
    baseline: str = "04.00",
    size: int = 48,
    ext: Literal["jp2", "tif"] = "jp2",
    bands: Sequence[str] | None = None,
    tile: str = s2data.TILE,
    date: str = "20220612T103031",
    seed: int = 0,
    offset: float | None = -1000.0,
    add_dn: int = 0,
    dx: float = 0.0,
    zero_block: bool = False,
) -> Path:
    """Write one SAFE product under ``root``; return its ``.SAFE`` folder.

    Args:
        root: parent folder.
        level: ``L1C`` (13 bands) or ``L2A`` (12 bands in ``R10m``/``R20m``/``R60m``).
        baseline: processing baseline, in the metadata and the product name.
        size: 10 m side in pixels (a multiple of 6).
        ext: band file format.
        bands: bands to write (default: all of the level's).
        tile: tile id.
        date: sensing time.
        seed: pixel seed (the same seed gives the same pixels in every product).
        offset: add offset in the metadata (see :func:`metadata_xml`).
        add_dn: added to every pixel (e.g. 1000 for a baseline-04.00 product holding
            the same reflectances as an older one of the same seed).
        dx: metres added to the x origin of every band (products side by side).
        zero_block: set the top-left quarter-side block of every band to 0 (NO_DATA).
    """
    if bands is None:
        bands = s2data.S2_BANDS_13 if level == "L1C" else s2data.L2A_BANDS_12
    n = baseline.replace(".", "")
    safe = Path(root) / f"S2B_MSI{level}_{date}_N{n}_R108_{tile}_{date[:8]}T120000.SAFE"
    granule = safe / "GRANULE" / f"{level}_{tile}_A000001_{date}" / "IMG_DATA"
    data = {}
    for band in bands:
        n_px = size * 10 // s2data.GSD[band]
        pixels = s2data.band_array(band, n_px, seed=seed) + add_dn
        if zero_block:
            pixels[: n_px // 4, : n_px // 4] = 0
        data[band] = pixels
    s2data.write_band_files(
        granule,
        size=size,
        layout="l1c" if level == "L1C" else "l2a",
        ext=ext,
        bands=bands,
        seed=seed,
        tile=tile,
        date=date,
        data=data,
        shifts=dict.fromkeys(bands, (dx, 0.0)),
    )
    safe.mkdir(parents=True, exist_ok=True)
    (safe / f"MTD_MSI{level}.xml").write_text(metadata_xml(level, baseline, offset=offset))
    return safe


def main(argv: Sequence[str]) -> int:
    """Write an L1C product and two L2A products (baselines 03.01 and 05.10)."""
    out = Path(argv[0] if argv else "safe_fixtures")
    write_safe(out / "l1c", level="L1C", baseline="02.09")
    write_safe(out / "l2a", baseline="03.01", date="20210612T103031")
    write_safe(out / "l2a", baseline="05.10", add_dn=1000)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
