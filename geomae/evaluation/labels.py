"""Label fractions: stratified, seeded subsets of the training tiles (label efficiency).

The limited-label setting of PANGAEA and GEO-Bench: every protocol of a cell with label
fraction ``f < 1`` sees only a subset of the training tiles (the "labelled" tiles),
drawn per class so that rare classes keep their share:

- each training tile gets a stratum (:func:`tile_strata`): its class (multiclass), its
  rarest positive label (multilabel; tiles without a positive label form one stratum
  of their own), or its dominant labelled class (segmentation: the class with the most
  labelled pixels of the tile; tiles without a labelled pixel are never drawn);
- from each stratum of ``n`` tiles, ``max(1, round(f * n))`` are drawn
  (:func:`stratified_subset`): every stratum keeps at least one tile, so a tiny
  fraction still sees every class;
- the draw is a per-stratum permutation seeded with the cell's seed, and a smaller
  fraction takes a prefix of the same permutation, so for one seed the subsets are
  nested (``0.01 ⊂ 0.1 ⊂ 1.0``) and differ between seeds.

Segmentation fractions are fractions of tiles (the unit an annotator labels), not of
pixels: the tiles are the fixed grid of the training strip the probes read
(:mod:`geomae.evaluation.data`), and a fine-tuning cell with ``f < 1`` trains on those grid
tiles only (shuffled, augmented) instead of random windows over the whole strip.

How the protocols use a subset: the probes fit on the whole subset (their own
``train_fraction`` draw applies to the full training set, ``f = 1``, only: a small
subset is already a seeded sample); fine-tuning trains on the subset.
"""

from __future__ import annotations

import numpy as np

from geomae.errors import DataError

__all__ = ["stratified_subset", "tile_strata"]


def tile_strata(
    labels: np.ndarray, *, kind: str, num_classes: int, ignore_index: int = 255
) -> np.ndarray:
    """The stratum of every training tile (``-1``: never drawn).

    Args:
        labels: ``(N,)`` class indices, ``(N, K)`` multi-hot, or ``(N, H, W)`` masks.
        kind: ``multiclass``, ``multilabel`` or ``segmentation``.
        num_classes: K.
        ignore_index: mask value of unlabelled pixels (segmentation).

    Returns:
        ``(N,)`` int64 strata.
    """
    labels = np.asarray(labels)
    if kind == "multiclass":
        return labels.astype(np.int64).reshape(-1)
    if kind == "multilabel":
        multi_hot = labels.astype(bool)  # (N, K)
        frequency = multi_hot.sum(axis=0)  # (K,)
        rarity = np.where(multi_hot, frequency[None, :], np.iinfo(np.int64).max)  # (N, K)
        rarest = rarity.argmin(axis=1)  # (N,)
        return np.where(multi_hot.any(axis=1), rarest, num_classes).astype(np.int64)
    masks = labels.reshape(len(labels), -1).astype(np.int64)  # (N, H*W)
    labelled = (masks != ignore_index) & (masks >= 0) & (masks < num_classes)
    counts = np.zeros((len(masks), num_classes), dtype=np.int64)  # (N, K)
    for k in range(num_classes):
        counts[:, k] = ((masks == k) & labelled).sum(axis=1)
    dominant = counts.argmax(axis=1)  # (N,)
    return np.where(counts.sum(axis=1) > 0, dominant, -1).astype(np.int64)


def stratified_subset(strata: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """Sorted indices of ``max(1, round(fraction * n))`` tiles of every stratum.

    Args:
        strata: ``(N,)`` stratum of each tile (``-1``: never drawn).
        fraction: share in ``(0, 1]``; 1 returns every tile with a stratum >= 0.
        seed: seed of the per-stratum permutations (nested across fractions).

    Raises:
        DataError: no tile can be drawn.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    strata = np.asarray(strata, dtype=np.int64)
    rng = np.random.default_rng(seed)
    chosen: list[np.ndarray] = []
    for stratum in np.unique(strata):
        if stratum < 0:
            continue
        members = np.flatnonzero(strata == stratum)
        order = rng.permutation(members)  # one permutation per stratum and seed
        take = len(members) if fraction >= 1 else max(1, round(fraction * len(members)))
        chosen.append(order[:take])
    if not chosen:
        raise DataError("no training tile holds a label to draw a label fraction from")
    return np.sort(np.concatenate(chosen))
