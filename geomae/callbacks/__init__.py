"""Lightning callbacks: batch audits and the online probe.

(Atomic checkpoint writing is a CheckpointIO plugin: :mod:`geomae.checkpoint_io`.)
"""

from geomae.callbacks.fingerprints import BatchFingerprints, read_fingerprints
from geomae.callbacks.online_probe import OnlineProbe

__all__ = ["BatchFingerprints", "OnlineProbe", "read_fingerprints"]
