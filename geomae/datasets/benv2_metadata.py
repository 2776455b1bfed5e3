"""BigEarthNet v2 (reBEN) metadata: the parquet tables, their checks and patch selection.

The release ships ``metadata.parquet`` (one row per kept Sentinel-2 patch) and
``metadata_for_patches_with_snow_cloud_or_shadow.parquet`` (the patches the v2 authors
set aside because they hold seasonal snow, clouds or cloud shadows; same columns). The
columns geomae reads are:

- ``patch_id``: e.g. ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_37_88``;
- ``labels``: list of class names of the 19-class nomenclature;
- ``split``: ``train``, ``validation`` or ``test`` (the official, geographic split);
- ``country``: e.g. ``Austria``;
- ``contains_seasonal_snow``, ``contains_cloud_or_shadow``: booleans.

Other columns (``s1_name``, ``s2v1_name``, ...) are ignored. Patches are selected by
split (official, or by country with ``country_split``), by country and by the two flags;
the snow/cloud table is read only when snowy or cloudy patches are asked for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from geomae.errors import ConfigError, DataError

__all__ = [
    "METADATA_FILE",
    "REQUIRED_COLUMNS",
    "SNOW_CLOUD_FILE",
    "SPLIT_VALUES",
    "PatchTable",
    "read_metadata",
    "select_patches",
]

#: Default file names, relative to the dataset root.
METADATA_FILE = "metadata.parquet"
SNOW_CLOUD_FILE = "metadata_for_patches_with_snow_cloud_or_shadow.parquet"

#: Columns every metadata table must have.
REQUIRED_COLUMNS: tuple[str, ...] = (
    "patch_id",
    "labels",
    "split",
    "country",
    "contains_seasonal_snow",
    "contains_cloud_or_shadow",
)

#: geomae split name -> value of the ``split`` column.
SPLIT_VALUES: dict[str, str] = {"train": "train", "val": "validation", "test": "test"}


class PatchTable(NamedTuple):
    """The selected patches of one split, in metadata order.

    Attributes:
        patch_ids: patch ids, e.g. ``S2A_MSIL2A_20170613T101031_N9999_R022_T33UUP_37_88``.
        labels: class names of each patch (19-class nomenclature).
        countries: country of each patch.
    """

    patch_ids: list[str]
    labels: list[list[str]]
    countries: list[str]


def read_metadata(path: Path) -> pa.Table:
    """Read one BigEarthNet v2 metadata parquet file and check its columns.

    Args:
        path: ``metadata.parquet`` or the snow/cloud table.

    Returns:
        The table with the :data:`REQUIRED_COLUMNS` only.

    Raises:
        DataError: if the file is missing, unreadable or lacks a required column
            (the message names the file and the missing columns).
    """
    if not path.is_file():
        raise DataError(f"BigEarthNet v2 metadata file not found: {path}")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as err:
        raise DataError(f"{path} is not a readable parquet file: {err}") from err
    missing = [c for c in REQUIRED_COLUMNS if c not in schema.names]
    if missing:
        raise DataError(
            f"{path} has no column(s) {missing}; a BigEarthNet v2 metadata table needs "
            f"{list(REQUIRED_COLUMNS)} (it has {schema.names})"
        )
    table = pq.read_table(path, columns=list(REQUIRED_COLUMNS))
    if not pa.types.is_list(table.schema.field("labels").type) and not pa.types.is_large_list(
        table.schema.field("labels").type
    ):
        raise DataError(
            f"{path}: column 'labels' must hold lists of class names, "
            f"got {table.schema.field('labels').type}"
        )
    return table


def select_patches(
    tables: Sequence[tuple[Path, pa.Table]],
    *,
    split: str,
    countries: Sequence[str] | None = None,
    country_split: Mapping[str, Sequence[str]] | None = None,
    include_snowy: bool = False,
    include_cloudy: bool = False,
) -> PatchTable:
    """Select the patches of one split.

    Args:
        tables: ``(path, table)`` of ``metadata.parquet`` and, if read, the snow/cloud
            table (paths name the files in errors).
        split: ``"train"``, ``"val"`` or ``"test"``.
        countries: keep only patches of these countries (None: all).
        country_split: ``{split: [country, ...]}``: the split is chosen by country
            instead of the ``split`` column (a country-based split; every patch of a
            listed country, whatever its official split). Splits not given are empty.
        include_snowy: keep patches with ``contains_seasonal_snow``.
        include_cloudy: keep patches with ``contains_cloud_or_shadow``.

    Returns:
        The selected patches (duplicate patch ids across the tables kept once).

    Raises:
        ConfigError: on an unknown split, a country no table holds, or a country given
            to several splits of ``country_split``.
    """
    if split not in SPLIT_VALUES:
        raise ConfigError(
            f"BigEarthNet v2 split must be one of {list(SPLIT_VALUES)}, got {split!r}"
        )
    table = pa.concat_tables([t for _, t in tables], promote_options="default")
    present = set(table.column("country").to_pylist())
    where = " and ".join(str(p) for p, _ in tables)
    _check_countries(countries, present, where, "countries")
    if country_split is not None:
        _check_country_split(country_split, present, where)
        mine = list(country_split.get(split, []))
        keep = pc.is_in(table.column("country"), value_set=pa.array(mine, pa.string()))
    else:
        keep = pc.equal(table.column("split"), SPLIT_VALUES[split])
    if countries is not None:
        in_countries = pc.is_in(
            table.column("country"), value_set=pa.array(list(countries), pa.string())
        )
        keep = pc.and_(keep, in_countries)
    if not include_snowy:
        keep = pc.and_(keep, pc.invert(table.column("contains_seasonal_snow")))
    if not include_cloudy:
        keep = pc.and_(keep, pc.invert(table.column("contains_cloud_or_shadow")))
    selected = table.filter(pc.fill_null(keep, False))
    ids: list[str] = selected.column("patch_id").to_pylist()
    labels: list[list[str] | None] = selected.column("labels").to_pylist()
    country: list[str] = selected.column("country").to_pylist()
    seen: set[str] = set()
    out = PatchTable([], [], [])
    for patch_id, names, land in zip(ids, labels, country, strict=True):
        if patch_id in seen:
            continue
        seen.add(patch_id)
        out.patch_ids.append(patch_id)
        out.labels.append(list(names or []))
        out.countries.append(land)
    return out


def _check_countries(
    countries: Sequence[str] | None, present: set[str], where: str, what: str
) -> None:
    """Every requested country must occur in the metadata."""
    if countries is None:
        return
    if isinstance(countries, str):
        raise ConfigError(f"{what} must be a list of country names, got the string {countries!r}")
    unknown = sorted(set(countries) - present)
    if unknown:
        raise ConfigError(
            f"{what}: no patch of {unknown} in {where}; its countries are {sorted(present)}"
        )


def _check_country_split(
    country_split: Mapping[str, Sequence[str]], present: set[str], where: str
) -> None:
    """Known split names, known countries, and no country in two splits."""
    bad = sorted(set(country_split) - set(SPLIT_VALUES))
    if bad:
        raise ConfigError(f"country_split keys must be among {list(SPLIT_VALUES)}, got {bad}")
    owner: dict[str, str] = {}
    for name, countries in country_split.items():
        _check_countries(countries, present, where, f"country_split[{name!r}]")
        for country in countries:
            if country in owner and owner[country] != name:
                raise ConfigError(
                    f"country_split puts {country!r} in both {owner[country]!r} and "
                    f"{name!r}; a country-based split needs disjoint countries"
                )
            owner[country] = name
