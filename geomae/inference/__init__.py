"""Whole-scene inference: sliding windows, blending, COG class maps and zarr embeddings.

``geomae predict-scene`` (:mod:`geomae.cli.predict_scene`) runs a fine-tuned
checkpoint or encoder weights over whole Sentinel-2 scenes, one row of windows at a
time (:mod:`.run`): :mod:`.windows` places the windows and their blending weights,
:mod:`.scene` reads the scene on its 10 m grid, :mod:`.predictor` turns a model file
into a per-window function, :mod:`.accumulator` blends overlapping outputs over one
band of rows, :mod:`.writers` writes the finished rows (COG, zarr).
"""

from geomae.inference.accumulator import FinishedRows, RowBandAccumulator
from geomae.inference.predictor import WindowPredictor, load_predictor
from geomae.inference.run import SceneRun, predict_scene
from geomae.inference.scene import SceneGrid, SceneReader
from geomae.inference.windows import WindowGrid, blend_weights, window_starts
from geomae.inference.writers import ClassMapWriter, EmbeddingCubeWriter

__all__ = [
    "ClassMapWriter",
    "EmbeddingCubeWriter",
    "FinishedRows",
    "RowBandAccumulator",
    "SceneGrid",
    "SceneReader",
    "SceneRun",
    "WindowGrid",
    "WindowPredictor",
    "blend_weights",
    "load_predictor",
    "predict_scene",
    "window_starts",
]
