"""geomae DataModules: torchgeo-based, with the on-device band pipeline."""

from geomae.datamodules.base import BandPipelineMixin
from geomae.datamodules.bigearthnet import BigEarthNetDataModule
from geomae.datamodules.bigearthnet_v2 import BigEarthNetV2DataModule
from geomae.datamodules.eurosat import EuroSATDataModule
from geomae.datamodules.pretrain import Sentinel2PretrainDataModule
from geomae.datamodules.segmentation import LandCoverSegmentationDataModule
from geomae.datamodules.ssl4eo import SSL4EOS12DataModule
from geomae.datamodules.tilestore import TileStoreDataModule
from geomae.datamodules.xarray_source import XarrayDataModule

__all__ = [
    "BandPipelineMixin",
    "BigEarthNetDataModule",
    "BigEarthNetV2DataModule",
    "EuroSATDataModule",
    "LandCoverSegmentationDataModule",
    "SSL4EOS12DataModule",
    "Sentinel2PretrainDataModule",
    "TileStoreDataModule",
    "XarrayDataModule",
]
