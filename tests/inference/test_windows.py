"""Window placement and blending weights."""

import numpy as np
import pytest

from geomae.errors import ConfigError
from geomae.inference.windows import WindowGrid, blend_weights, ramp, window_starts


def test_windows_cover_every_pixel_and_the_last_ends_on_the_edge():
    starts = window_starts(100, 32, 24)
    assert starts == [0, 24, 48, 68]
    covered = np.zeros(100, bool)
    for s in starts:
        covered[s : s + 32] = True
    assert covered.all()


def test_a_scene_smaller_than_a_window_is_one_padded_window():
    assert window_starts(20, 32, 24) == [0]


def test_aligned_windows_start_on_the_patch_grid():
    starts = window_starts(100, 32, 24, align=8)  # covered extent 104
    assert starts == [0, 24, 48, 72] and all(s % 8 == 0 for s in starts)
    assert starts[-1] + 32 == 104
    with pytest.raises(ConfigError, match="multiples of 8"):
        window_starts(100, 32, 20, align=8)


@pytest.mark.parametrize("kind", ["cosine", "linear"])
def test_ramps_of_neighbours_sum_to_one(kind):
    up = ramp(8, kind)
    assert np.allclose(up + up[::-1], 1.0)
    weights = blend_weights(32, 8, kind)
    assert weights.shape == (32, 32) and (weights > 0).all()
    assert weights[8:24, 8:24].min() == 1.0
    # two windows side by side at stride 24: their weights sum to one over the overlap
    edge = weights[16]
    total = np.zeros(56)
    total[:32] += edge
    total[24:] += edge
    assert np.allclose(total[8:48], 1.0)


def test_grid_refuses_an_overlap_as_large_as_the_window():
    with pytest.raises(ConfigError, match="overlap"):
        WindowGrid(height=64, width=64, window=16, overlap=16)
    grid = WindowGrid(height=40, width=100, window=32, overlap=8)
    assert len(grid) == 2 * 4 and grid.padded_width == 100
