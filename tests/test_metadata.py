import pytest

from geomae.metadata import GeoMetadata
from geomae.stats import BandStats


def _meta(**kw):
    args = dict(
        bands=["B04", "B03", "B02", "B08"],
        groups=[["B02", "B03", "B04"], ["B08"]],
        stats=BandStats.default(),
        patch_size=8,
        img_size=64,
        arch={"embed_dim": 32},
    )
    args.update(kw)
    return GeoMetadata(**args)


def test_round_trip_keeps_order_and_selects_stats():
    meta = _meta()
    assert list(meta.stats.bands) == ["B04", "B03", "B02", "B08"]
    again = GeoMetadata.from_json(meta.to_json())
    assert again.to_dict() == meta.to_dict()
    d = meta.to_dict()
    assert d["wavelengths_nm"] == [664.6, 559.8, 492.4, 832.8]
    assert set(d) >= {
        "bands",
        "wavelengths_nm",
        "groups",
        "stats",
        "patch_size",
        "img_size",
        "arch",
    }


def test_groups_must_cover_bands():
    with pytest.raises(ValueError, match="must cover bands"):
        _meta(groups=[["B02", "B03"], ["B08"]])


def test_incomplete_metadata():
    d = _meta().to_dict()
    del d["stats"], d["groups"]
    with pytest.raises(ValueError, match=r"lacks \['groups', 'stats'\]"):
        GeoMetadata.from_dict(d, source="x.ckpt")
    with pytest.raises(ValueError, match="not valid JSON"):
        GeoMetadata.from_json("{oops")
