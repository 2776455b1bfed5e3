import pytest

from geomae.bands import BAND_SETS, L2A_BANDS, S2_BANDS, canonical_band, parse_bands, wavelengths
from geomae.errors import BandError


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("B8", "B08"),
        ("b08", "B08"),
        ("8", "B08"),
        ("B8A", "B8A"),
        ("b8a", "B8A"),
        ("8a", "B8A"),
        ("B1", "B01"),
        ("B12", "B12"),
        (" b02 ", "B02"),
        ("band4", "B04"),
    ],
)
def test_spellings(spelling, canonical):
    assert canonical_band(spelling) == canonical


def test_band_table():
    assert len(S2_BANDS) == 13
    assert len(L2A_BANDS) == 12 and "B10" not in L2A_BANDS
    assert S2_BANDS["B10"].l1c_only
    waves = [S2_BANDS[b].wavelength_nm for b in S2_BANDS]
    assert waves == sorted(waves), "canonical order is wavelength order"
    assert {S2_BANDS[b].gsd_m for b in BAND_SETS["10m"]} == {10}
    assert {S2_BANDS[b].gsd_m for b in BAND_SETS["20m"]} == {20}


def test_band_sets_and_order():
    assert parse_bands("rgb") == ["B02", "B03", "B04"]
    assert parse_bands("rgb", keep_order=True) == ["B04", "B03", "B02"]
    assert parse_bands("RGBN") == ["B02", "B03", "B04", "B08"]
    assert parse_bands("all") == list(L2A_BANDS)
    assert parse_bands("B8,b4, 3") == ["B03", "B04", "B08"]
    assert parse_bands(["B8A", "B8"], keep_order=True) == ["B8A", "B08"]
    assert wavelengths(["B02", "B8A"]) == [492.4, 864.7]


@pytest.mark.parametrize("bad", ["B13", "B0", "red", "8B", ""])
def test_unknown_band_lists_valid_names(bad):
    with pytest.raises(BandError) as err:
        parse_bands([bad] if bad else bad)
    if bad:
        assert repr(bad) in str(err.value)
        assert "B8A" in str(err.value) and "rgb" in str(err.value)


def test_duplicates_are_errors():
    with pytest.raises(BandError, match=r"duplicated band\(s\) \['B08'\]"):
        parse_bands(["B8", "B08", "B02"])
    with pytest.raises(ValueError):  # BandError is a ValueError
        parse_bands("B2,B2")
