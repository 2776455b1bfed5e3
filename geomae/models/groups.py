"""Band groups: presets, validation, channel indices and group wavelengths.

A model's bands are split into groups; each group has its own patch embedding and
spectral embedding. ``groups`` is either a preset name or explicit lists of bands:

- ``single``: all bands in one group (the classic MAE; converts to a stock timm ViT).
- ``satmae``: spectral groups after SatMAE, restricted to the bands present, empty
  groups dropped: visible + NIR (B02 B03 B04 B08), red edge (B05 B06 B07 B8A), SWIR
  (B11 B12) and the 60 m atmospheric bands (B01 B09, plus B10 for L1C products).
- ``per-band``: every band its own group.
- a list of lists of band names (any spelling; a string item is parsed as a band
  spec, so ``"B02,B03"`` or ``"rgb"`` is one group).

Within a preset group, bands follow the model's band order; explicit groups keep the
order given. Every band of the model must be in exactly one group.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from geomae.bands import parse_bands, wavelengths
from geomae.errors import BandError, ConfigError

__all__ = [
    "GROUP_PRESETS",
    "SATMAE_GROUPS",
    "GroupPreset",
    "GroupSpec",
    "group_indices",
    "group_wavelengths",
    "resolve_groups",
]

GroupPreset = Literal["single", "satmae", "per-band"]
GroupSpec = str | Sequence[Sequence[str] | str]

GROUP_PRESETS: tuple[str, ...] = ("single", "satmae", "per-band")

#: SatMAE-style spectral groups (B10, L1C only, joins the 60 m atmospheric bands).
SATMAE_GROUPS: tuple[tuple[str, ...], ...] = (
    ("B02", "B03", "B04", "B08"),
    ("B05", "B06", "B07", "B8A"),
    ("B11", "B12"),
    ("B01", "B09", "B10"),
)


def resolve_groups(bands: Sequence[str], groups: GroupSpec) -> list[list[str]]:
    """Turn a group preset or explicit groups into validated lists of canonical bands.

    Args:
        bands: the model's bands (any spelling), in channel order.
        groups: a preset name (``single``, ``satmae``, ``per-band``) or lists of bands.

    Returns:
        Non-empty groups of canonical band names covering ``bands`` exactly once.

    Raises:
        ConfigError: unknown preset name or an empty group.
        BandError: a group band that is unknown or not among ``bands``, a band in two
            groups, or a band of the model in no group.
    """
    names = parse_bands(bands, keep_order=True)
    if isinstance(groups, str):
        key = groups.strip().lower().replace("_", "-")
        if key == "single":
            return [list(names)]
        if key == "per-band":
            return [[b] for b in names]
        if key == "satmae":
            out = [[b for b in names if b in preset] for preset in SATMAE_GROUPS]
            return [g for g in out if g]
        raise ConfigError(
            f"unknown band-group preset {groups!r}; expected one of {list(GROUP_PRESETS)} "
            "or a list of lists of band names"
        )
    resolved: list[list[str]] = []
    for i, group in enumerate(groups):
        if not isinstance(group, str) and len(group) == 0:
            raise ConfigError(f"band group {i} is empty; every group needs at least one band")
        resolved.append(parse_bands(group, keep_order=True))
    if not resolved:
        raise ConfigError("no band groups given; use a preset or a non-empty list of lists")
    _check_cover(names, resolved)
    return resolved


def _check_cover(bands: list[str], groups: list[list[str]]) -> None:
    """Raise BandError unless ``groups`` cover ``bands`` exactly once."""
    seen: dict[str, int] = {}
    for i, group in enumerate(groups):
        for band in group:
            if band not in bands:
                raise BandError(
                    f"band {band} in group {i} {group} is not one of the model's bands {bands}"
                )
            if band in seen:
                raise BandError(f"band {band} is in group {seen[band]} and in group {i}")
            seen[band] = i
    missing = [b for b in bands if b not in seen]
    if missing:
        raise BandError(f"band(s) {missing} are in no group; groups {groups} must cover {bands}")


def group_indices(bands: Sequence[str], groups: Sequence[Sequence[str]]) -> list[list[int]]:
    """Channel indices (into ``bands``) of each group's bands, in group order."""
    position = {b: i for i, b in enumerate(bands)}
    return [[position[b] for b in group] for group in groups]


def group_wavelengths(groups: Sequence[Sequence[str]]) -> list[float]:
    """Mean central wavelength in nanometres of each group."""
    return [sum(wavelengths(g)) / len(g) for g in groups]
