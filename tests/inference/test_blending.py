"""Sliding windows blended without seams; memory bounded by one row of windows."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geomae.errors import ConfigError
from geomae.inference.accumulator import RowBandAccumulator
from geomae.inference.run import predict_scene
from geomae.inference.scene import SceneReader

pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")

BANDS = ["B02", "B03", "B04"]


def _run(toy, reader, forward, *, channels, window, overlap, blend="cosine", scale=1):
    predictor = toy.predictor(forward, bands=BANDS, channels=channels, window=window, scale=scale)
    sink = toy.Sink()
    run = predict_scene(
        predictor, reader, sink, overlap=overlap, batch_size=3, blend=blend, progress=False
    )
    return sink, run


@pytest.mark.parametrize("blend", ["cosine", "linear", "none"])
def test_a_constant_model_blends_to_the_constant_across_window_borders(s2_scene, toy, blend):
    reader = SceneReader(paths=s2_scene, bands=BANDS)

    def constant(x):
        out = torch.empty(len(x), 2, *x.shape[-2:])
        out[:, 0], out[:, 1] = 0.25, 0.75
        return out

    sink, run = _run(toy, reader, constant, channels=2, window=32, overlap=8, blend=blend)
    values = sink.values()  # (2, 96, 96)
    assert values.shape == (2, 96, 96) and run.windows == 16
    assert np.allclose(values[0], 0.25, atol=1e-6) and np.allclose(values[1], 0.75, atol=1e-6)
    coverage = sink.coverage()
    assert (coverage[:24, :24] == 0).all() and (coverage[24:, :] == 1).all()


def test_a_per_pixel_model_equals_one_full_scene_pass(s2_scene, toy):
    reader = SceneReader(paths=s2_scene, bands=BANDS)
    sliding, _ = _run(toy, reader, lambda x: x, channels=3, window=32, overlap=8)
    full, run = _run(toy, reader, lambda x: x, channels=3, window=96, overlap=0)
    assert run.windows == 1
    assert np.allclose(sliding.values(), full.values(), rtol=1e-6)
    # and that is the scene itself (nodata pixels are 0 after normalization)
    assert np.allclose(full.values(), reader.read(0, 96), rtol=1e-6)


def test_a_convolution_equals_one_full_scene_pass_within_tolerance(s2_scene, toy):
    reader = SceneReader(paths=s2_scene, bands=BANDS)

    def blur(x):  # translation-equivariant, 3x3 receptive field, zero padding
        return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=True)

    sliding, _ = _run(toy, reader, blur, channels=3, window=32, overlap=8)
    full, _ = _run(toy, reader, blur, channels=3, window=96, overlap=0)
    a, b = sliding.values(), full.values()
    assert np.allclose(a, b, rtol=0.01, atol=1.0)
    plain, _ = _run(toy, reader, blur, channels=3, window=32, overlap=8, blend="none")
    # the cosine ramp beats plain averaging at the window borders
    assert np.abs(a - b).max() < np.abs(plain.values() - b).max()


def test_patch_outputs_stay_on_the_patch_grid(s2_scene, toy):
    reader = SceneReader(paths=s2_scene, bands=BANDS)

    def pool(x):
        return F.avg_pool2d(x, 8)  # (B, C, P / 8, P / 8)

    sliding, _ = _run(toy, reader, pool, channels=3, window=32, overlap=16, scale=8)
    full = F.avg_pool2d(torch.from_numpy(reader.read(0, 96))[None], 8)[0].numpy()
    assert sliding.values().shape == (3, 12, 12)
    assert np.allclose(sliding.values(), full, rtol=1e-5)


@pytest.mark.parametrize("size", [96, 192])
def test_memory_is_one_row_of_windows_whatever_the_scene_height(s2data, tmp_path, toy, size):
    s2data.write_band_files(tmp_path, size=size, bands=BANDS)
    reader = SceneReader(paths=tmp_path, bands=BANDS)
    reads = []
    read = reader.read

    def spy(row, height, col=0, width=None):
        band = read(row, height, col, width)
        reads.append(band.shape)
        return band

    reader.read = spy
    sink, run = _run(toy, reader, lambda x: x[:, :2], channels=2, window=16, overlap=4)
    assert run.accumulator_shape == (2, 16, size)  # a window row by the width, never taller
    assert {shape[1] for shape in reads} == {16}  # each read is one band of window rows
    assert len(sink.parts) == len(run.grid.row_starts)  # rows leave as soon as finished
    assert max(p.values.shape[1] for p in sink.parts) <= 16
    assert sink.values().shape == (2, size, size)


def test_the_accumulator_refuses_windows_outside_its_band():
    acc = RowBandAccumulator(channels=1, height=4, width=8, padded_width=8, total_rows=12)
    ones = np.ones((1, 4, 4), np.float32)
    acc.add(ones, ones[0], ones[0], row=0, col=0)
    finished = acc.advance(3)
    assert finished.row == 0 and finished.values.shape == (1, 3, 8)
    with pytest.raises(ConfigError, match="outside"):
        acc.add(ones, ones[0], ones[0], row=0, col=0)
