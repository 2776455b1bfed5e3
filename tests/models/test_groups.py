import pytest

from geomae.bands import BAND_SETS, L2A_BANDS
from geomae.errors import BandError, ConfigError
from geomae.models import group_indices, group_wavelengths, resolve_groups


def test_single_and_per_band_presets():
    bands = ["B04", "B03", "B02", "B08"]
    assert resolve_groups(bands, "single") == [["B04", "B03", "B02", "B08"]]
    assert resolve_groups(bands, "per-band") == [["B04"], ["B03"], ["B02"], ["B08"]]
    assert resolve_groups(bands, "per_band") == [["B04"], ["B03"], ["B02"], ["B08"]]


def test_satmae_preset_all_bands():
    assert resolve_groups(L2A_BANDS, "satmae") == [
        ["B02", "B03", "B04", "B08"],
        ["B05", "B06", "B07", "B8A"],
        ["B11", "B12"],
        ["B01", "B09"],
    ]


def test_satmae_preset_restricted_and_empty_groups_dropped():
    # only visible and SWIR bands: red-edge and 60 m groups disappear
    assert resolve_groups(["B04", "B03", "B02", "B11"], "satmae") == [
        ["B04", "B03", "B02"],
        ["B11"],
    ]
    # L1C adds B10 to the 60 m atmospheric group
    assert resolve_groups(BAND_SETS["l1c"], "satmae")[-1] == ["B01", "B09", "B10"]


def test_explicit_groups_canonicalized_in_given_order():
    groups = resolve_groups(["B02", "B03", "B04", "B08"], [["b8", "4"], "B03,B02"])
    assert groups == [["B08", "B04"], ["B03", "B02"]]


def test_band_in_two_groups():
    with pytest.raises(BandError, match="B03 is in group 0 and in group 1"):
        resolve_groups(["B02", "B03"], [["B02", "B03"], ["B03"]])


def test_band_in_no_group():
    with pytest.raises(BandError, match=r"\['B04'\] are in no group"):
        resolve_groups(["B02", "B03", "B04"], [["B02", "B03"]])


def test_group_band_not_in_model():
    with pytest.raises(BandError, match="band B08 in group 1"):
        resolve_groups(["B02", "B03"], [["B02", "B03"], ["B08"]])


def test_unknown_band_in_group():
    with pytest.raises(BandError, match="unknown Sentinel-2 band 'B99'"):
        resolve_groups(["B02", "B03"], [["B02", "B99"]])


def test_unknown_preset_and_empty_group():
    with pytest.raises(ConfigError, match="unknown band-group preset 'spectral'"):
        resolve_groups(["B02"], "spectral")
    with pytest.raises(ConfigError, match="group 1 is empty"):
        resolve_groups(["B02"], [["B02"], []])


def test_indices_and_wavelengths():
    bands = ["B08", "B02", "B04"]
    groups = [["B02", "B04"], ["B08"]]
    assert group_indices(bands, groups) == [[1, 2], [0]]
    wl = group_wavelengths(groups)
    assert wl[0] == pytest.approx((492.4 + 664.6) / 2)
    assert wl[1] == pytest.approx(832.8)
