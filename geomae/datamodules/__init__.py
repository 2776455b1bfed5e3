"""geomae DataModules: torchgeo-based, with the on-device band pipeline."""

from geomae.datamodules.base import GeomaeDataModule
from geomae.datamodules.bigearthnet import BigEarthNetDataModule
from geomae.datamodules.bigearthnet_v2 import BigEarthNetV2DataModule
from geomae.datamodules.contract import (
    BandData,
    FinetuneData,
    LabelledData,
    PretrainData,
    SegmentationData,
    SplitData,
    TiledData,
    require_data,
)
from geomae.datamodules.eurosat import EuroSATDataModule
from geomae.datamodules.pretrain import Sentinel2PretrainDataModule
from geomae.datamodules.segmentation import LandCoverSegmentationDataModule
from geomae.datamodules.ssl4eo import SSL4EOS12DataModule
from geomae.datamodules.tilestore import TileStoreDataModule
from geomae.datamodules.xarray_source import XarrayDataModule

__all__ = [
    "BandData",
    "BigEarthNetDataModule",
    "BigEarthNetV2DataModule",
    "EuroSATDataModule",
    "FinetuneData",
    "GeomaeDataModule",
    "LabelledData",
    "LandCoverSegmentationDataModule",
    "PretrainData",
    "SSL4EOS12DataModule",
    "SegmentationData",
    "Sentinel2PretrainDataModule",
    "SplitData",
    "TileStoreDataModule",
    "TiledData",
    "XarrayDataModule",
    "require_data",
]
