import pytest

from geomae.errors import BandError
from geomae.stats import BandStat, BandStats


def _stats():
    return BandStats(
        {"B2": BandStat(1000.0, 200.0, 600.0, 1500.0), "B8": BandStat(2500.0, 600.0)},
        {"source": "test"},
    )


def test_canonical_keys_and_select_order():
    stats = _stats()
    assert list(stats.bands) == ["B02", "B08"]
    sub = stats.select(["b8", "B02"])
    assert list(sub.bands) == ["B08", "B02"]
    assert stats.mean(["B08", "B02"]) == [2500.0, 1000.0]
    assert stats.std(["B02"]) == [200.0]


def test_missing_band_names_band_and_source():
    with pytest.raises(
        BandError, match=r"stats file x.yaml has no statistics for band\(s\) \['B04'\]"
    ):
        _stats().select(["B02", "B04"], source="stats file x.yaml")


@pytest.mark.parametrize("std", [0.0, -1.0])
def test_zero_std_is_an_error(std):
    with pytest.raises(BandError, match="B03: std must be > 0"):
        BandStats({"B03": BandStat(1.0, std)})


def test_yaml_round_trip(tmp_path):
    path = tmp_path / "stats.yaml"
    _stats().save(path)
    loaded = BandStats.load(path)
    assert loaded == _stats()
    assert BandStats.coerce(str(path)) == loaded
    assert BandStats.coerce(loaded.to_dict()) == loaded


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.yaml"):
        BandStats.load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("bands:\n  B02: {mean: 1}\n")
    with pytest.raises(ValueError, match=r"bad.yaml: band 'B02' needs 'mean' and 'std'"):
        BandStats.load(bad)
    zero = tmp_path / "zero.yaml"
    zero.write_text("bands:\n  B02: {mean: 1, std: 0}\n")
    with pytest.raises(BandError, match=r"zero.yaml: band B02: std must be > 0"):
        BandStats.load(zero)


def test_defaults_cover_all_bands():
    assert len(BandStats.default().bands) == 13
