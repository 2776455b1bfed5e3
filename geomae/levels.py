"""Sentinel-2 processing levels (L1C top-of-atmosphere, L2A surface reflectance).

Weights pretrained on one level see different values on the other (L2A removes the
atmosphere's contribution; L1C has the cirrus band B10), so feeding L1C weights L2A
data, or the reverse, is refused unless the user allows it explicitly
(``allow_level_mismatch``). A level that is unknown on either side (``None``: older
weight files, DataModules over data of any level) is not checked.
"""

from __future__ import annotations

import logging
from typing import Literal, cast, get_args

from geomae.errors import ConfigError

__all__ = ["PROCESSING_LEVELS", "ProcessingLevel", "check_level", "parse_level"]

log = logging.getLogger(__name__)

ProcessingLevel = Literal["L1C", "L2A"]
PROCESSING_LEVELS: tuple[str, ...] = get_args(ProcessingLevel)


def parse_level(value: str | None, *, what: str = "processing level") -> ProcessingLevel | None:
    """Canonical level (``L1C`` / ``L2A``, any case, ``1C``/``2A`` accepted), or None.

    Raises:
        ConfigError: any other value, naming ``what``.
    """
    if value is None:
        return None
    text = str(value).strip().upper()
    if text in ("1C", "2A"):
        text = "L" + text
    if text not in PROCESSING_LEVELS:
        raise ConfigError(
            f"{what} must be one of {list(PROCESSING_LEVELS)} (or unset), got {value!r}"
        )
    return cast(ProcessingLevel, text)


def check_level(
    *,
    data_level: str | None,
    weights_level: str | None,
    allow: bool,
    data: str,
    weights: str,
) -> None:
    """Refuse weights of one processing level on data of the other.

    Args:
        data_level: the DataModule's level, or None if unknown.
        weights_level: the level of the weights' pretraining data, or None if unknown.
        allow: the user's explicit ``allow_level_mismatch``: warn instead of refusing.
        data: the data's name, for messages (e.g. the DataModule class).
        weights: the weights' name, for messages (e.g. the file).

    Raises:
        ConfigError: the levels are known and differ, and ``allow`` is False.
    """
    if data_level is None or weights_level is None or data_level == weights_level:
        return
    message = (
        f"{weights} were pretrained on Sentinel-2 {weights_level} data but {data} yields "
        f"{data_level} data"
    )
    if allow:
        log.warning("%s; going on because allow_level_mismatch is set", message)
        return
    expected = "top-of-atmosphere" if weights_level == "L1C" else "surface"
    raise ConfigError(
        f"{message}: the input values differ from pretraining ({expected} reflectance "
        f"expected). Use {weights_level} data, or set allow_level_mismatch: true "
        "on the DataModule to go on anyway"
    )
