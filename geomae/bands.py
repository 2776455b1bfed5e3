"""Sentinel-2 band table and band-set parsing.

Every band in geomae is referred to by its canonical Sentinel-2 name (``B01`` ..
``B12``, ``B8A``). Users may write ``B8``, ``b08`` or ``8a``; :func:`parse_bands`
turns any of those into canonical names, in canonical (wavelength) order unless the
caller asks to keep the given order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from geomae.errors import BandError

__all__ = [
    "BAND_SETS",
    "L2A_BANDS",
    "S2_BANDS",
    "Band",
    "canonical_band",
    "parse_bands",
    "wavelengths",
]


@dataclass(frozen=True)
class Band:
    """One Sentinel-2 MSI band.

    Attributes:
        name: canonical name, e.g. ``"B8A"``.
        wavelength_nm: central wavelength of Sentinel-2A in nanometres.
        gsd_m: ground sampling distance in metres.
        l1c_only: True for bands absent from L2A products (B10, cirrus).
        default_mean: approximate archive-wide mean of L1C digital numbers.
        default_std: approximate archive-wide standard deviation of L1C digital numbers.
    """

    name: str
    wavelength_nm: float
    gsd_m: int
    l1c_only: bool
    default_mean: float
    default_std: float


# Central wavelengths: ESA Sentinel-2A spectral response functions (nm).
# Default statistics are approximate global L1C values (reflectance x 10000); they are
# a fallback only: ``geomae stats`` computes the real ones for your data.
S2_BANDS: dict[str, Band] = {
    b.name: b
    for b in (
        Band("B01", 442.7, 60, False, 1610.0, 790.0),
        Band("B02", 492.4, 10, False, 1400.0, 850.0),
        Band("B03", 559.8, 10, False, 1320.0, 880.0),
        Band("B04", 664.6, 10, False, 1370.0, 1140.0),
        Band("B05", 704.1, 20, False, 1560.0, 1130.0),
        Band("B06", 740.5, 20, False, 2110.0, 1160.0),
        Band("B07", 782.8, 20, False, 2390.0, 1280.0),
        Band("B08", 832.8, 10, False, 2320.0, 1250.0),
        Band("B8A", 864.7, 20, False, 2580.0, 1345.0),
        Band("B09", 945.1, 60, False, 840.0, 580.0),
        Band("B10", 1373.5, 60, True, 20.0, 50.0),
        Band("B11", 1613.7, 20, False, 2200.0, 1340.0),
        Band("B12", 2202.4, 20, False, 1540.0, 1150.0),
    )
}

#: The 12 bands of an L2A product, in canonical order (B10 dropped).
L2A_BANDS: tuple[str, ...] = tuple(n for n, b in S2_BANDS.items() if not b.l1c_only)

#: Named band sets accepted wherever a band list is.
BAND_SETS: dict[str, tuple[str, ...]] = {
    "rgb": ("B04", "B03", "B02"),
    "rgbn": ("B04", "B03", "B02", "B08"),
    "10m": ("B02", "B03", "B04", "B08"),
    "20m": ("B05", "B06", "B07", "B8A", "B11", "B12"),
    "10m20m": ("B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"),
    "60m": ("B01", "B09"),
    "all": L2A_BANDS,
    "l1c": tuple(S2_BANDS),
}

_ORDER = {name: i for i, name in enumerate(S2_BANDS)}
_SPELLING = re.compile(r"^\s*(?:B|BAND)?\s*0?(\d{1,2})(A?)\s*$", re.IGNORECASE)


def canonical_band(name: str) -> str:
    """Return the canonical spelling of one band name.

    Args:
        name: a band name such as ``"B8"``, ``"b08"``, ``"8A"`` or ``"B8A"``.

    Returns:
        The canonical name, e.g. ``"B08"``.

    Raises:
        BandError: (a ValueError) if ``name`` is not a Sentinel-2 band; the message
            lists the valid names.
    """
    match = _SPELLING.match(str(name))
    if match:
        number, suffix = int(match.group(1)), match.group(2).upper()
        candidate = f"B{number}A" if suffix else f"B{number:02d}"
        if candidate in S2_BANDS:
            return candidate
    raise BandError(
        f"unknown Sentinel-2 band {name!r}; valid bands are {', '.join(S2_BANDS)} "
        f"(spellings like 'B8', 'b08', '8a' are accepted) or a band set "
        f"({', '.join(BAND_SETS)})"
    )


def parse_bands(spec: str | Sequence[str], *, keep_order: bool = False) -> list[str]:
    """Parse a band specification into canonical band names.

    Args:
        spec: a band-set name (``"rgb"``, ``"all"``, ...), a comma-separated string of
            band names (``"B4,B3,B2"``), or a sequence of band names.
        keep_order: keep the order given (band sets keep their own order, e.g. ``rgb``
            is B04, B03, B02); otherwise sort into canonical wavelength order.

    Returns:
        The list of canonical band names.

    Raises:
        BandError: (a ValueError) on an unknown band name, a duplicated band or an empty spec.
    """
    if isinstance(spec, str):
        key = spec.strip().lower()
        if key in BAND_SETS:
            names = list(BAND_SETS[key])
            return names if keep_order else sorted(names, key=_ORDER.__getitem__)
        items: Sequence[str] = [s for s in spec.split(",") if s.strip()]
    else:
        items = list(spec)
    if not items:
        raise BandError(f"empty band specification {spec!r}")
    names = [canonical_band(item) for item in items]
    seen: set[str] = set()
    duplicated = [n for n in names if n in seen or seen.add(n)]  # type: ignore[func-returns-value]
    if duplicated:
        raise BandError(
            f"duplicated band(s) {sorted(set(duplicated))} in {list(items)}; "
            "each band may appear once"
        )
    return names if keep_order else sorted(names, key=_ORDER.__getitem__)


def wavelengths(bands: Sequence[str]) -> list[float]:
    """Central wavelengths in nanometres of canonical ``bands``, in the same order."""
    return [S2_BANDS[canonical_band(b)].wavelength_nm for b in bands]
