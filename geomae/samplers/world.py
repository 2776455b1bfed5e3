"""World size and rank for the samplers: given, from a Lightning trainer, or from torch."""

from __future__ import annotations

from typing import Any

import torch

__all__ = ["resolve_world", "trainer_world"]


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
