"""geomae DataModules: torchgeo-based, with the on-device band pipeline."""

from geomae.datamodules.base import BandPipelineMixin
from geomae.datamodules.pretrain import Sentinel2PretrainDataModule

__all__ = ["BandPipelineMixin", "Sentinel2PretrainDataModule"]
