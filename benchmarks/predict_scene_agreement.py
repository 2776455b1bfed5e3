"""Test-strip mIoU of a whole-scene class map vs the tile-wise `geomae test` of the same checkpoint.

Both numbers come from the configuration's own DataModule: its test split (the test
strip), its grid of test tiles (``InsideGridGeoSampler``), its rasterized labels, its
classes and ignore handling, and the same confusion-matrix mIoU as
``SegmentationTask`` (mean IoU over the classes present in labels or predictions).

- ``tiles``: the checkpoint predicts each test tile on its own, as ``geomae test`` does.
- ``map``: the same tiles are cut out of the map ``geomae predict-scene`` wrote over the
  whole scene (blended overlapping windows that also see beyond the strip).

A second ``map`` number counts each test-strip pixel once (the tile grid counts the
pixels of the shifted-back last row and column twice).

``--tiling-offsets 8,16,...`` also scores non-overlapping tilings of the whole scene
whose grid starts ``d`` px right and down of the scene's corner (the scene's first
``d`` rows and columns are left out; the test strip is not near them): the spread of
those numbers is how much a mIoU on this test strip moves with where the tile edges
fall, the yardstick for the map-vs-tiles difference.

    python benchmarks/predict_scene_agreement.py --config configs/segment_sample_osm.yaml \
        --ckpt runs/predict_check/version_0/checkpoints/BEST.ckpt \
        --map runs/predict_check/maps/osm_map.tif
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
import torch
import yaml
from rasterio.windows import Window
from torchmetrics.classification import MulticlassConfusionMatrix

from geomae.datamodules import LandCoverSegmentationDataModule
from geomae.inference.predictor import load_predictor
from geomae.inference.run import predict_scene
from geomae.inference.scene import SceneGrid, SceneReader
from geomae.inference.writers import CLASS_NODATA
from geomae.trainers import SegmentationTask
from geomae.trainers.segmentation import iou_from_confusion


def miou(confusion: torch.Tensor) -> float:
    iou, present = iou_from_confusion(confusion)
    return float(iou[present].mean())


def per_class(confusion: torch.Tensor) -> list[str]:
    iou, present = iou_from_confusion(confusion)
    return [f"{v:.3f}" if p else "-" for v, p in zip(iou.tolist(), present.tolist(), strict=True)]


def datamodule(config: Path) -> LandCoverSegmentationDataModule:
    cfg = yaml.safe_load(config.read_text())
    init = dict(cfg["data"]["init_args"])
    init["num_workers"] = 0
    return LandCoverSegmentationDataModule(**init)


def map_tile(src: rasterio.io.DatasetReader, bounds: tuple[float, float, float, float], size: int):
    # the DataModule's tiles need not start on a pixel edge (here 0.6 px past one): their
    # nearest-neighbour reads take the pixel whose centre is nearest, i.e. the rounded offset
    left, bottom, right, top = bounds
    col = round((left - src.transform.c) / src.transform.a)
    row = round((src.transform.f - top) / -src.transform.e)
    window = Window(col, row, size, size)
    tile = src.read(1, window=window, boundless=True, fill_value=CLASS_NODATA)
    assert tile.shape == (size, size), (tile.shape, bounds)
    return torch.from_numpy(tile.astype(np.int64))


class ShiftedReader:
    """The scene without its first ``d`` rows and columns (a tiling grid moved by ``d``)."""

    def __init__(self, reader: SceneReader, d: int) -> None:
        self.inner, self.d = reader, d
        g = reader.grid
        self.grid = SceneGrid(g.crs, g.transform, g.width - d, g.height - d)

    def read(self, row, height, col=0, width=None):
        width = self.grid.width - col if width is None else width
        return self.inner.read(row + self.d, height, col + self.d, width)

    def has_data(self, image):
        return self.inner.has_data(image)


class ArraySink:
    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []

    def write(self, rows) -> None:
        self.parts.append(np.nan_to_num(rows.values, nan=-1).argmax(0).astype(np.int64))


def tiling_map(ckpt: Path, scenes, d: int) -> np.ndarray:
    """Class map of non-overlapping windows whose grid starts at (d, d); 255 before it."""
    predictor = load_predictor(ckpt, device="cpu")
    reader = SceneReader(paths=scenes, bands=predictor.bands)
    predictor.configure_input(offset=reader.offset, nodata=0.0)
    sink = ArraySink()
    predict_scene(
        predictor, ShiftedReader(reader, d), sink, overlap=0, blend="none", progress=False
    )
    full = np.full((reader.grid.height, reader.grid.width), CLASS_NODATA, np.int64)
    full[d:, d:] = np.concatenate(sink.parts, axis=0)
    return full


def score_array(dm, array: np.ndarray, left: float, top: float, res: float) -> float:
    k, ignore, size = dm.num_classes, dm.ignore_index, dm.patch_size
    confusion = MulticlassConfusionMatrix(num_classes=k, ignore_index=ignore)
    for query in dm.test_sampler:
        x, y, _ = query
        mask = dm.test_dataset[query]["mask"][None].long()
        col, row = round((x.start - left) / res), round((top - y.stop) / res)
        pred = torch.from_numpy(array[row : row + size, col : col + size])[None]
        confusion.update(pred.clamp(max=k - 1), torch.where(pred == CLASS_NODATA, ignore, mask))
    return miou(confusion.compute())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--ckpt", type=Path, required=True)
    parser.add_argument("--map", type=Path, required=True)
    parser.add_argument("--tiling-offsets", default="", help="e.g. 8,16,24 (see above)")
    args = parser.parse_args()

    dm = datamodule(args.config)
    task = SegmentationTask.load_from_checkpoint(args.ckpt, map_location="cpu", weights_only=True)
    task.setup_from_datamodule(dm)  # the checkpoint's statistics normalize the data
    task.eval()
    dm.setup("test")
    k, ignore = dm.num_classes, dm.ignore_index
    tiles = MulticlassConfusionMatrix(num_classes=k, ignore_index=ignore)
    mapped = MulticlassConfusionMatrix(num_classes=k, ignore_index=ignore)
    size = dm.patch_size
    strip_labels: dict[tuple[int, int], int] = {}
    strip_preds: dict[tuple[int, int], int] = {}
    nodata_labelled = 0
    with rasterio.open(args.map) as src:
        res = src.transform.a
        for query in dm.test_sampler:
            x, y, _ = query
            sample = dm.test_dataset[query]
            batch = {"image": sample["image"][None], "mask": sample["mask"][None]}
            if "valid" in sample:
                batch["valid"] = sample["valid"][None]
            batch = dm.on_after_batch_transfer(batch, 0)
            mask = batch["mask"].long()  # (1, P, P)
            with torch.no_grad():
                tiles.update(task(batch["image"]).argmax(1), mask)
            pred = map_tile(src, (x.start, y.start, x.stop, y.stop), size)[None]  # (1, P, P)
            missing = (pred == CLASS_NODATA) & (mask != ignore)
            nodata_labelled += int(missing.sum())
            target = torch.where(pred == CLASS_NODATA, ignore, mask)
            mapped.update(pred.clamp(max=k - 1), target)
            col0 = round((x.start - src.transform.c) / res)
            row0 = round((src.transform.f - y.stop) / res)
            m, p = target[0].numpy(), pred[0].numpy()
            rows, cols = np.nonzero(m != ignore)
            for r, c in zip(rows.tolist(), cols.tolist(), strict=True):
                strip_labels[(row0 + r, col0 + c)] = int(m[r, c])
                strip_preds[(row0 + r, col0 + c)] = int(p[r, c])
    once = torch.zeros(k, k, dtype=torch.long)
    for key, label in strip_labels.items():
        once[label, strip_preds[key]] += 1
    tiles_miou, map_miou = miou(tiles.compute()), miou(mapped.compute())
    labelled = int(tiles.compute().sum())
    print(f"test tiles: {len(dm.test_sampler)} of {size} px; labelled pixels {labelled}")
    print(f"tile-wise mIoU (geomae test)           {tiles_miou:.4f}")
    print(f"whole-scene map mIoU, same tiles        {map_miou:.4f}")
    print(f"difference (map - tiles)                {map_miou - tiles_miou:+.4f}")
    print(f"whole-scene map mIoU, each pixel once   {miou(once):.4f}")
    print(f"labelled pixels the map left nodata     {nodata_labelled}")
    offsets = [int(v) for v in args.tiling_offsets.split(",") if v]
    if offsets:
        with rasterio.open(args.map) as src:
            left, top, res = src.transform.c, src.transform.f, src.transform.a
        scores = {0: score_array(dm, tiling_map(args.ckpt, dm.image_paths, 0), left, top, res)}
        for d in offsets:
            scores[d] = score_array(dm, tiling_map(args.ckpt, dm.image_paths, d), left, top, res)
        values = np.array(list(scores.values()))
        listed = ", ".join(f"{d}: {v:.4f}" for d, v in scores.items())
        print(f"non-overlapping tilings moved by d px, same tiles: {listed}")
        spread = f"range {values.min():.4f}..{values.max():.4f}"
        print(f"  mean {values.mean():.4f}, std {values.std(ddof=1):.4f}, {spread}")
    print("per class IoU (tiles / map, same tiles; - = absent from labels and predictions):")
    for name, a, b in zip(
        dm.class_names, per_class(tiles.compute()), per_class(mapped.compute()), strict=True
    ):
        print(f"  {name:<12} {a:>6} / {b:>6}")


if __name__ == "__main__":
    main()
