"""The streaming accumulator behind every BandStats: exactness, stability, merging."""

import numpy as np
import pytest
import torch

from geomae.errors import DataError
from geomae.stats_accumulator import BandAccumulator, StatsAccumulator


def test_accumulator_matches_numpy_integer_data():
    rng = np.random.default_rng(0)
    chunks = [rng.integers(0, 5000, size=n).astype(np.float32) for n in (1, 999, 5000, 37)]
    acc = BandAccumulator()
    gen = torch.Generator().manual_seed(0)
    for chunk in chunks:
        acc.update(torch.from_numpy(chunk), gen)
    ref = np.concatenate(chunks).astype(np.float64)
    assert acc.count == ref.size
    assert acc.mean == pytest.approx(ref.mean(), rel=1e-12)
    assert acc.std == pytest.approx(ref.std(), rel=1e-12)
    assert acc.exact_percentiles
    for q in (0, 2, 37.5, 98, 100):
        assert acc.percentile(q) == pytest.approx(np.percentile(ref, q), abs=1e-9)


def test_accumulator_is_stable_for_large_offsets():
    # values 1e9 + small noise: a naive sum-of-squares in float64 would lose the std
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(1)
    values = 1e9 + rng.normal(0, 0.5, size=20_000)
    acc = BandAccumulator(size=100)
    for chunk in np.array_split(values, 20):
        acc.update(torch.from_numpy(chunk), gen)
    assert acc.std == pytest.approx(values.std(), rel=1e-6)
    assert not acc.exact_percentiles


def test_accumulator_float_data_uses_reservoir():
    rng = np.random.default_rng(2)
    values = rng.normal(100, 10, size=50_000)
    gen = torch.Generator().manual_seed(0)
    full = BandAccumulator(size=100_000)
    small = BandAccumulator(size=5_000)
    for chunk in np.array_split(values, 10):
        full.update(torch.from_numpy(chunk), gen)
        small.update(torch.from_numpy(chunk), gen)
    assert not full.exact_percentiles
    assert full.percentile(2) == pytest.approx(np.percentile(values, 2), abs=1e-9)
    assert small.reservoir.numel() == 5_000
    assert small.percentile(98) == pytest.approx(np.percentile(values, 98), abs=1.5)


def _tiles(seed: int, k: int, *, integer: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 4000, size=(k, 3, 8, 8)).astype(np.float32)  # (K, C, T, T)
    if not integer:
        image += rng.random(image.shape, dtype=np.float32)
    valid = rng.random((k, 8, 8)) > 0.2  # (K, T, T)
    return image, valid


def test_stats_accumulator_matches_numpy_over_valid_pixels_with_and_without_buffering():
    parts = [_tiles(s, k) for s, k in ((0, 3), (1, 5), (2, 1))]
    direct = StatsAccumulator(["B02", "B03", "B04"])
    buffered = StatsAccumulator(["B02", "B03", "B04"], flush_pixels=10_000)
    for image, valid in parts:
        direct.update(image, valid)
        buffered.update(torch.from_numpy(image), torch.from_numpy(valid))
    a = direct.result(where="test", offset=1000.0, attrs={"source": "x"})
    b = buffered.result(where="test", offset=1000.0)
    image = np.concatenate([i for i, _ in parts])
    valid = np.concatenate([v for _, v in parts])
    for c, band in enumerate(["B02", "B03", "B04"]):
        ref = image[:, c][valid].astype(np.float64)
        for stats in (a, b):
            stat = stats.bands[band]
            assert stat.mean == pytest.approx(ref.mean() - 1000.0, rel=1e-12)
            assert stat.std == pytest.approx(ref.std(), rel=1e-12)
            assert stat.p2 == pytest.approx(np.percentile(ref, 2) - 1000.0, abs=1e-9)
            assert stat.p98 == pytest.approx(np.percentile(ref, 98) - 1000.0, abs=1e-9)
    assert a.attrs["pixels"] == {band: int(valid.sum()) for band in ("B02", "B03", "B04")}
    assert a.attrs["source"] == "x" and a.attrs["offset"] == 1000.0
    assert a.attrs["percentiles"].startswith("exact")


@pytest.mark.parametrize("integer", [True, False])
def test_merged_accumulators_equal_one_over_all_tiles(integer):
    bands = ["B02", "B03", "B04"]
    (i1, v1), (i2, v2) = _tiles(3, 4, integer=integer), _tiles(4, 6, integer=integer)
    left, right, whole = (StatsAccumulator(bands, reservoir_size=500) for _ in range(3))
    left.update(i1, v1)
    right.update(i2, v2)
    whole.update(np.concatenate([i1, i2]), np.concatenate([v1, v2]))
    left.merge(right)
    merged, single = left.result(where="merged"), whole.result(where="whole")
    for band in bands:
        assert merged.bands[band].mean == pytest.approx(single.bands[band].mean, rel=1e-12)
        assert merged.bands[band].std == pytest.approx(single.bands[band].std, rel=1e-12)
        acc = left.accumulators[band]
        assert acc.exact_percentiles is integer
        if integer:  # exact histograms add up to the histogram of all tiles
            assert merged.bands[band].p98 == single.bands[band].p98
        else:  # the merged reservoir is still a capped sample of both parts' values
            assert acc.reservoir.numel() == 500
            assert set(acc.reservoir.tolist()) <= set(
                np.concatenate([i1[:, bands.index(band)][v1], i2[:, bands.index(band)][v2]])
                .astype(np.float64)
                .tolist()
            )


def test_stats_accumulator_errors_name_the_source_and_band():
    acc = StatsAccumulator(["B02", "B03"])
    image = np.ones((2, 2, 4, 4), dtype=np.float32)
    valid = np.zeros((2, 4, 4), dtype=bool)
    acc.update(image, valid)
    with pytest.raises(DataError, match=r"scene X: band\(s\) \['B02', 'B03'\] have no valid"):
        acc.result(where="scene X")
    with pytest.raises(ValueError, match="do not match bands"):
        acc.update(np.ones((2, 3, 4, 4)), valid)
    with pytest.raises(ValueError, match="cannot merge"):
        acc.merge(StatsAccumulator(["B04"]))
