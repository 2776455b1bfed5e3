"""Skip tiles that are mostly nodata: redraw them (training) or drop them (validation).

A tile's *invalid fraction* is the share of its pixels that are nodata or non-finite in
any band (``1 - valid.mean()``). Tiles above ``max_nodata_fraction`` are not trained on:

* training tiles come from a :class:`~torchgeo.samplers.RandomGeoSampler`; a rejected
  tile is replaced by another random tile of the same sampling regions, drawn with a
  generator seeded by the rejected tile's position, so runs stay reproducible with any
  number of loader workers or DDP ranks, and batches keep their size;
* validation tiles come from a fixed grid; rejected tiles are flagged and
  :func:`collate_kept` leaves them out of the batch.

Tiles at or below the threshold keep their nodata pixels, marked in ``valid``
``(1, H, W)``: the band pipeline zeroes them and the MAE loss excludes them.
"""

from __future__ import annotations

import logging
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchgeo.datasets import GeoDataset
from torchgeo.samplers import RandomGeoSampler
from torchgeo.samplers.utils import get_random_bounding_box

from geomae.datamodules.loaders import collate_tensors
from geomae.errors import ConfigError

__all__ = ["NodataFilter", "collate_kept", "invalid_fraction"]

log = logging.getLogger(__name__)

Query = tuple[slice, slice, slice]


def invalid_fraction(sample: Mapping[str, Any]) -> float:
    """Share of pixels that are invalid in any band.

    Args:
        sample: ``image`` ``(C, H, W)`` and optional ``valid`` ``(1, H, W)`` bool.

    Returns:
        A number in ``[0, 1]``.
    """
    image = sample["image"]  # (C, H, W)
    valid = torch.isfinite(image).all(dim=0, keepdim=True)  # (1, H, W)
    if "valid" in sample:
        valid &= sample["valid"].to(torch.bool)
    return 1.0 - valid.float().mean().item()


def _seed(query: Query, attempt: int) -> int:
    """A 31-bit seed from a query's spatial bounds and the attempt number."""
    x, y = query[0], query[1]
    packed = struct.pack(
        "<4dI", float(x.start), float(y.start), float(x.stop), float(y.stop), attempt
    )
    return zlib.crc32(packed) & 0x7FFFFFFF


class NodataFilter(Dataset[dict[str, Any]]):
    """Wrap a geo dataset so that tiles above ``max_nodata_fraction`` are not used.

    Args:
        dataset: the torchgeo dataset (samples with ``image`` ``(C, H, W)`` and
            optionally ``valid`` ``(1, H, W)``).
        max_nodata_fraction: largest accepted invalid fraction, in ``[0, 1]``.
        redraw_from: the training sampler; rejected tiles are replaced by tiles drawn
            from its regions. None: rejected tiles get ``keep=False`` (validation).
        max_redraws: replacement attempts per rejected tile; after that the tile with
            the smallest invalid fraction seen is used and a warning is logged.

    Raises:
        ConfigError: if ``max_nodata_fraction`` is outside ``[0, 1]`` or
            ``max_redraws < 1``.
    """

    def __init__(
        self,
        dataset: GeoDataset,
        *,
        max_nodata_fraction: float,
        redraw_from: RandomGeoSampler | None = None,
        max_redraws: int = 16,
    ) -> None:
        if not 0.0 <= max_nodata_fraction <= 1.0:
            raise ConfigError(f"max_nodata_fraction={max_nodata_fraction} must be in [0, 1]")
        if max_redraws < 1:
            raise ConfigError(f"max_redraws={max_redraws} must be >= 1")
        self.dataset = dataset
        self.max_nodata_fraction = float(max_nodata_fraction)
        self.max_redraws = int(max_redraws)
        self.redraw = redraw_from is not None
        if redraw_from is not None:
            self._bounds: list[tuple[float, float, float, float]] = list(redraw_from.bounds)
            self._intervals = list(redraw_from.intervals)
            self._areas = redraw_from.areas.clone()  # (N,)
            self._size = redraw_from.size
            self._res = redraw_from.res
        self.redrawn = 0
        self.exhausted = 0

    def __len__(self) -> int:
        """Length of the wrapped dataset."""
        return len(self.dataset)  # type: ignore[arg-type]

    def _draw(self, generator: torch.Generator) -> Query:
        """A random tile of the sampler's regions (RandomGeoSampler's rule)."""
        idx = int(torch.multinomial(self._areas, 1, generator=generator).item())
        x, y = get_random_bounding_box(self._bounds[idx], self._size, self._res, generator)
        interval = self._intervals[idx]
        return x, y, slice(interval.left, interval.right)

    def __getitem__(self, query: Query) -> dict[str, Any]:
        """Read ``query``; redraw or flag it if it is mostly nodata.

        Returns:
            The sample; with ``redraw_from=None`` it has ``keep`` ``()`` bool.
        """
        sample = self.dataset[query]
        fraction = invalid_fraction(sample)
        accepted = fraction <= self.max_nodata_fraction
        if not self.redraw:
            sample["keep"] = torch.tensor(accepted)
            return sample
        if accepted:
            return sample
        best, best_fraction = sample, fraction
        for attempt in range(self.max_redraws):
            generator = torch.Generator().manual_seed(_seed(query, attempt))
            candidate = self.dataset[self._draw(generator)]
            candidate_fraction = invalid_fraction(candidate)
            if candidate_fraction <= self.max_nodata_fraction:
                self.redrawn += 1
                return candidate
            if candidate_fraction < best_fraction:
                best, best_fraction = candidate, candidate_fraction
        self.exhausted += 1
        if self.exhausted <= 3:
            log.warning(
                "tile x=%s..%s y=%s..%s is %.0f%% nodata and %d redraws found no tile under "
                "max_nodata_fraction=%g: using one that is %.0f%% nodata (its nodata is "
                "masked out of the loss). Is most of the data empty?",
                query[0].start,
                query[0].stop,
                query[1].start,
                query[1].stop,
                100 * fraction,
                self.max_redraws,
                self.max_nodata_fraction,
                100 * best_fraction,
            )
        return best


def collate_kept(samples: Sequence[Mapping[str, Any]]) -> dict[str, Tensor]:
    """Collate the samples whose ``keep`` flag is True (all of them if none has one).

    Args:
        samples: dict samples, e.g. ``image`` ``(C, H, W)``, ``keep`` ``()`` bool.

    Returns:
        The batch without ``keep``; when every sample is dropped, tensors with a batch
        dimension of 0 (e.g. ``image`` ``(0, C, H, W)``).
    """
    kept = [s for s in samples if bool(s.get("keep", True))]
    if kept:
        batch = collate_tensors(kept)
    else:
        template = collate_tensors(samples[:1])
        batch = {k: v[:0] for k, v in template.items()}
    batch.pop("keep", None)
    return batch
