"""World size and rank for the samplers: given, from a Lightning trainer, or from torch."""

from __future__ import annotations

from collections.abc import Sized
from typing import Any, TypeVar

import torch
from torch.utils.data import DistributedSampler

__all__ = ["ShardedSampler", "resolve_world", "trainer_world"]

T = TypeVar("T")


def resolve_world(num_replicas: int | None, rank: int | None) -> tuple[int, int]:
    """World size and rank: the given values, else torch.distributed's, else (1, 0)."""
    initialized = torch.distributed.is_available() and torch.distributed.is_initialized()
    if num_replicas is None:
        num_replicas = torch.distributed.get_world_size() if initialized else 1
    if rank is None:
        rank = torch.distributed.get_rank() if initialized else 0
    if not 0 <= rank < num_replicas:
        raise ValueError(f"rank {rank} is not in [0, {num_replicas})")
    return num_replicas, rank


def trainer_world(trainer: Any) -> dict[str, int]:
    """``num_replicas`` and ``rank`` of a Lightning trainer's distributed strategy.

    Returns:
        ``{"num_replicas": R, "rank": r}`` under a distributed strategy, else ``{}``
        (samplers then ask torch.distributed, or assume one process).
    """
    kwargs = getattr(trainer, "distributed_sampler_kwargs", None) if trainer else None
    if not kwargs:
        return {}
    return {"num_replicas": int(kwargs["num_replicas"]), "rank": int(kwargs["rank"])}


class ShardedSampler(DistributedSampler[T]):
    """A ``DistributedSampler`` whose world size and rank default to torch.distributed's.

    Lightning keeps such a sampler under DDP and calls ``set_epoch``; subclasses draw
    their epoch's order in ``__iter__`` from ``(seed, epoch)``.

    Args:
        dataset: the sampled dataset (its length).
        shuffle: shuffle (training) or keep the order.
        seed: base seed (the same on every rank).
        drop_last: drop the tail instead of padding so every rank gets ``N // R``.
        num_replicas: world size (default: from torch.distributed, else 1).
        rank: this process's rank (default: from torch.distributed, else 0).
    """

    def __init__(
        self,
        dataset: Sized,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int | None = None,
        rank: int | None = None,
    ) -> None:
        world, rank = resolve_world(num_replicas, rank)
        super().__init__(
            dataset,  # type: ignore[arg-type]
            num_replicas=world,
            rank=rank,
            shuffle=shuffle,
            seed=seed,
            drop_last=drop_last,
        )
