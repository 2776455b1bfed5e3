"""GPU band transforms: L2A offset, per-band normalization, augmentation, the pipeline."""

from geomae.transforms.augment import AUGMENT_KINDS, AugmentKind, SpatialAugment
from geomae.transforms.normalize import BandNormalize
from geomae.transforms.offset import L2AOffset
from geomae.transforms.pipeline import BandPipeline

__all__ = [
    "AUGMENT_KINDS",
    "AugmentKind",
    "BandNormalize",
    "BandPipeline",
    "L2AOffset",
    "SpatialAugment",
]
