"""Lightning plugins and callbacks for reliable runs: atomic checkpoints, batch audits."""

from geomae.callbacks.atomic_io import AtomicCheckpointIO, atomic_torch_save
from geomae.callbacks.fingerprints import BatchFingerprints, read_fingerprints

__all__ = ["AtomicCheckpointIO", "BatchFingerprints", "atomic_torch_save", "read_fingerprints"]
