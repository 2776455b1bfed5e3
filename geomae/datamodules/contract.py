"""What the tasks need from a DataModule, as typed ``Protocol`` classes.

The tasks never reach into a DataModule by name: each states the protocol it needs,
checks the DataModule once with :func:`require_data` where it first sees it (a
:class:`~geomae.errors.ConfigError` names the DataModule class and every missing
attribute), and then reads the protocol's attributes directly.

- :class:`BandData`: every geomae DataModule (:class:`~geomae.datamodules.base.
  GeomaeDataModule`): bands, statistics, offset, processing level, ``describe()``.
- :class:`PretrainData`: :class:`BandData` with the tile side (``patch_size``), for
  :class:`~geomae.trainers.MAETask`.
- :class:`FinetuneData`: :class:`BandData` that takes the backbone's statistics
  (``set_stats``, :class:`~geomae.datamodules.base.GeomaeDataModule`).
- :class:`LabelledData`: :class:`FinetuneData` with labels (``task``, ``num_classes``,
  ``class_names``), for :class:`~geomae.trainers.ClassificationTask`.
- :class:`SegmentationData`: :class:`LabelledData` with ``ignore_index``, for
  :class:`~geomae.trainers.SegmentationTask`.
- :class:`TiledData` and :class:`SplitData` are what the tile-size lookup of
  :func:`geomae.backbone.datamodule_tile_size` may find (a ``patch_size``; the torchgeo
  ``dataset_class`` and split datasets); neither is required.

Members are read-only properties, so a DataModule attribute of a narrower type (e.g.
``task: Literal["multiclass", ...]``) satisfies them. All protocols are
``runtime_checkable``: ``isinstance`` checks that the members exist, not their types.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

from geomae.errors import ConfigError
from geomae.stats import BandStats

__all__ = [
    "BandData",
    "FinetuneData",
    "LabelledData",
    "PretrainData",
    "SegmentationData",
    "SplitData",
    "TiledData",
    "protocol_members",
    "require_data",
]

log = logging.getLogger(__name__)


@runtime_checkable
class BandData(Protocol):
    """Bands and normalization of a DataModule's batches."""

    @property
    def bands(self) -> list[str]:
        """Canonical bands the model sees, in the batch's channel order."""
        ...

    @property
    def stats(self) -> BandStats:
        """Normalization statistics, selected to :attr:`bands`."""
        ...

    @property
    def offset(self) -> float:
        """Value subtracted from raw DN before normalization."""
        ...

    @property
    def processing_level(self) -> str | None:
        """``L1C`` / ``L2A``, or None when the DataModule cannot tell."""
        ...

    @property
    def allow_level_mismatch(self) -> bool:
        """Run weights pretrained on the other processing level anyway (a warning)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Bands, statistics (as a dict) and offset, for the metadata."""
        ...


@runtime_checkable
class TiledData(Protocol):
    """A DataModule that states the side of its tiles."""

    @property
    def patch_size(self) -> int | tuple[int, int]:
        """Tile side in pixels, or ``(height, width)``."""
        ...


@runtime_checkable
class PretrainData(BandData, TiledData, Protocol):
    """What :class:`~geomae.trainers.MAETask` reads: bands, stats, offset, tile side."""


@runtime_checkable
class FinetuneData(BandData, Protocol):
    """Band data whose normalization the backbone's statistics can replace."""

    def set_stats(self, stats: BandStats, *, source: str, expects: str | None = None) -> None:
        """Hand in the statistics the data should be normalized with (the backbone's).

        Args:
            stats: statistics covering :attr:`bands`.
            source: what they come from, for messages.
            expects: the weights' normalization in words, for the warnings.
        """
        ...


@runtime_checkable
class LabelledData(FinetuneData, Protocol):
    """Fine-tuning data with labels: the kind of task and the classes."""

    @property
    def task(self) -> str:
        """``multiclass``, ``multilabel`` or ``segmentation``."""
        ...

    @property
    def num_classes(self) -> int:
        """Number of classes (labels of a multi-label task)."""
        ...

    @property
    def class_names(self) -> Sequence[str]:
        """Class names in index order (empty when unknown)."""
        ...


@runtime_checkable
class SegmentationData(LabelledData, Protocol):
    """Labelled data with per-pixel masks."""

    @property
    def ignore_index(self) -> int:
        """``mask`` value of unlabeled pixels (never a class index)."""
        ...


@runtime_checkable
class SplitData(Protocol):
    """The torchgeo DataModule parts: the dataset class and the split datasets."""

    @property
    def dataset_class(self) -> type[Any]:
        """Class the split datasets are built from."""
        ...

    @property
    def train_dataset(self) -> object | None:
        """Training dataset, once :meth:`setup` built it."""
        ...

    @property
    def val_dataset(self) -> object | None:
        """Validation dataset, once :meth:`setup` built it."""
        ...

    @property
    def test_dataset(self) -> object | None:
        """Test dataset, once :meth:`setup` built it."""
        ...

    @property
    def predict_dataset(self) -> object | None:
        """Prediction dataset, once :meth:`setup` built it."""
        ...


def protocol_members(protocol: type) -> list[str]:
    """Public attribute and method names of ``protocol`` and its base protocols.

    Args:
        protocol: a ``Protocol`` class of this module.

    Returns:
        The names, base protocols' first, each once, in declaration order.
    """
    names: dict[str, None] = {}
    for base in reversed(protocol.__mro__):
        if base is object:
            continue
        declared = [*vars(base).get("__annotations__", {}), *vars(base)]
        names.update((name, None) for name in declared if not name.startswith("_"))
    return list(names)


def require_data(datamodule: object, protocol: type, *, user: str) -> None:
    """Raise a ConfigError unless ``datamodule`` has every member of ``protocol``.

    Call it once where a task first sees its DataModule, then read the members
    through the protocol type (``cast(protocol, datamodule)``).

    Args:
        datamodule: the DataModule the task was given.
        protocol: the protocol the task needs, e.g. :class:`LabelledData`.
        user: who needs it (the task's class name), for the message.

    Raises:
        ConfigError: naming the DataModule class, the protocol and the missing
            attributes.
    """
    missing = [name for name in protocol_members(protocol) if not hasattr(datamodule, name)]
    if not missing:
        return
    raise ConfigError(
        f"{user} needs a DataModule with {', '.join(protocol_members(protocol))} "
        f"({protocol.__name__}); {type(datamodule).__name__} lacks {', '.join(missing)}. "
        "Use a geomae DataModule (geomae.datamodules) or add the missing attributes"
    )
