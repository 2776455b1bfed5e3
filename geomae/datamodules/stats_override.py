"""Which normalization statistics a fine-tuning DataModule uses, and saying so.

A fine-tuned backbone should see its inputs normalized exactly as during pretraining,
so by default a DataModule takes the backbone's statistics (handed in with
:meth:`StatsOverrideMixin.set_stats`). A user may still pass their own ``stats``; they
then win, and a warning names every band whose mean or standard deviation differs from
the backbone's. With neither, the approximate band-table defaults are used, with a
warning at ``setup``.

The statistics may also stand for a plain scaling: weights imported from SSL4EO-S12
expect ``x / 10000``, which is ``mean 0, std 10000`` per band (see
:mod:`geomae.normalization`); user statistics that differ are reported the same way,
with what the weights expect.

A DataModule also says which processing level its data has (``processing_level``:
``L1C``, ``L2A`` or None when it cannot tell) and whether the user allows weights of
the other level (``allow_level_mismatch``); the task checks them against the
backbone's level (:func:`geomae.levels.check_level`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from geomae.datamodules.base import BandPipelineMixin
from geomae.stats import BandStats
from geomae.transforms import AugmentKind

__all__ = ["StatsOverrideMixin", "stats_differences"]

log = logging.getLogger(__name__)


def stats_differences(
    ours: BandStats,
    theirs: BandStats,
    bands: Sequence[str],
    *,
    rel_tol: float = 1e-6,
) -> list[str]:
    """Describe how ``ours`` differs from ``theirs`` on ``bands``.

    Args:
        ours: the statistics in use.
        theirs: the statistics compared against (e.g. the backbone's).
        bands: canonical band names to compare.
        rel_tol: relative tolerance under which two values count as equal.

    Returns:
        One line per differing band, e.g. ``"B02: mean 1400 vs 1350"`` or
        ``"B05: missing from the compared stats"``; empty when they agree.
    """
    lines = []
    for band in bands:
        a, b = ours.bands.get(band), theirs.bands.get(band)
        if a is None or b is None:
            side = "the stats in use" if a is None else "the compared stats"
            lines.append(f"{band}: missing from {side}")
            continue
        parts = [
            f"{name} {x:g} vs {y:g}"
            for name, x, y in (("mean", a.mean, b.mean), ("std", a.std, b.std))
            if not math.isclose(x, y, rel_tol=rel_tol)
        ]
        if parts:
            lines.append(f"{band}: " + ", ".join(parts))
    return lines


class StatsOverrideMixin(BandPipelineMixin):
    """A :class:`BandPipelineMixin` that knows where its statistics came from.

    Subclasses call :meth:`_configure_band_pipeline` instead of
    ``_init_band_pipeline``. The warning about default statistics comes with the first
    batch, after a task had the chance to provide its backbone's (:meth:`set_stats`).

    Attributes:
        stats_source: where the statistics in use came from (``"default"``, a file
            name, ``"user stats"`` or the ``source`` given to :meth:`set_stats`).
    """

    stats_source: str

    def _configure_band_pipeline(
        self,
        *,
        source_bands: Sequence[str],
        bands: str | Sequence[str],
        stats: str | Path | dict[str, Any] | BandStats | None,
        offset: float,
        nodata: float | None,
        augment: AugmentKind,
        crop_scale: tuple[float, float],
    ) -> None:
        """Remember the pipeline settings and build it with the user's stats or defaults.

        Args:
            source_bands: bands the dataset yields, in order.
            bands: bands the model sees.
            stats: the user's statistics (BandStats, dict, YAML path) or None.
            offset: value subtracted from raw DN before normalization.
            nodata: raw value marking missing pixels, or None.
            augment: augmentation applied to training batches.
            crop_scale: crop area range for ``augment="full"``.
        """
        self._pipeline_kwargs: dict[str, Any] = {
            "source_bands": list(source_bands),
            "bands": bands,
            "offset": offset,
            "nodata": nodata,
            "augment": augment,
            "crop_scale": tuple(crop_scale),
        }
        self._user_stats: BandStats | None = None
        if stats is None:
            self.stats_source = "default"
            self._init_band_pipeline(stats=BandStats.default(), **self._pipeline_kwargs)
        else:
            self.stats_source = (
                f"stats file {stats}" if isinstance(stats, (str, Path)) else "user stats"
            )
            self._user_stats = BandStats.coerce(stats)
            self._init_band_pipeline(stats=stats, **self._pipeline_kwargs)

    def set_stats(self, stats: BandStats, *, source: str, expects: str | None = None) -> None:
        """Hand in the statistics the data should be normalized with (the backbone's).

        Without user-given ``stats`` these replace the current ones. With user-given
        ``stats`` the user's are kept and a warning names each band whose mean or std
        differs from ``stats`` (nothing is logged when they agree).

        Args:
            stats: statistics covering :attr:`bands`, e.g. from the backbone's metadata.
            source: what they come from (e.g. the checkpoint path), for messages.
            expects: the weights' normalization in words (e.g. ``x / 10000``), for the
                warning.

        Raises:
            BandError: if the statistics in use lack one of :attr:`bands`.
        """
        if self._user_stats is not None:
            differences = stats_differences(self._user_stats, stats, self.bands)
            if differences:
                log.warning(
                    "%s override the statistics of %s%s for band(s): %s",
                    self.stats_source,
                    source,
                    f" (its inputs must be {expects})" if expects else "",
                    "; ".join(differences),
                )
            return
        self._init_band_pipeline(stats=stats, **self._pipeline_kwargs)
        self.stats_source = source

    def on_after_batch_transfer(self, batch: dict[str, Any], dataloader_idx: int) -> dict[str, Any]:
        """Run the band pipeline; warn once if only default statistics were available."""
        self._warn_if_default_stats()
        return super().on_after_batch_transfer(batch, dataloader_idx)

    def _warn_if_default_stats(self) -> None:
        """Warn (once) when nothing better than the band-table defaults was given."""
        if self.stats_source == "default" and not getattr(self, "_default_warned", False):
            self._default_warned = True
            log.warning(
                "%s: no band statistics given and none from a backbone: normalizing "
                "bands %s with approximate global L1C defaults; pass `stats` or compute "
                "them with `geomae stats`",
                type(self).__name__,
                self.bands,
            )
