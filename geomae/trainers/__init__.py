"""LightningModules: MAE pretraining, classification and segmentation fine-tuning."""

from geomae.trainers.classification import ClassificationTask
from geomae.trainers.mae import MAETask
from geomae.trainers.segmentation import SegmentationTask

__all__ = ["ClassificationTask", "MAETask", "SegmentationTask"]
