"""LightningModules: MAE pretraining, classification and segmentation fine-tuning."""

from geomae.trainers.mae import MAETask

__all__ = ["MAETask"]
