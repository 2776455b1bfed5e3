"""Lightning plugins and callbacks: atomic checkpoints, batch audits, the online probe."""

from geomae.callbacks.atomic_io import AtomicCheckpointIO, atomic_torch_save
from geomae.callbacks.fingerprints import BatchFingerprints, read_fingerprints
from geomae.callbacks.online_probe import OnlineProbe

__all__ = [
    "AtomicCheckpointIO",
    "BatchFingerprints",
    "OnlineProbe",
    "atomic_torch_save",
    "read_fingerprints",
]
