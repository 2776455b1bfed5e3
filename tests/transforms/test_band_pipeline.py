import logging

import numpy as np
import pytest
import torch

from geomae.bands import L2A_BANDS
from geomae.errors import BandError, ConfigError
from geomae.stats import BandStat, BandStats
from geomae.transforms import BandNormalize, BandPipeline, L2AOffset, SpatialAugment


def _stats(bands=L2A_BANDS, **attrs):
    return BandStats(
        {b: BandStat(mean=100.0 * (i + 1), std=10.0 * (i + 1)) for i, b in enumerate(bands)},
        attrs,
    )


def _image(seed=0, b=2, c=12, h=8, w=8):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 4000, (b, c, h, w), generator=g).to(torch.float32)


def test_band_normalize_matches_hand_computation():
    stats = _stats()
    norm = BandNormalize(bands=["B08", "B02"], stats=stats)
    x = torch.tensor([[[[700.0]], [[300.0]]]])  # (1, 2, 1, 1): B08, B02
    out = norm(x)
    # B08 is the 8th L2A band: mean 800, std 80; B02 is the 2nd: mean 200, std 20
    assert out.shape == (1, 2, 1, 1)
    assert out[0, 0, 0, 0].item() == pytest.approx((700 - 800) / 80)
    assert out[0, 1, 0, 0].item() == pytest.approx((300 - 200) / 20)
    assert list(norm.stats.bands) == ["B08", "B02"]


def test_band_normalize_missing_band_names_band_and_source():
    stats = _stats(bands=("B02", "B03"))
    with pytest.raises(BandError, match=r"stats file s\.yaml.*B04"):
        BandNormalize(bands=["B02", "B04"], stats=stats, source="stats file s.yaml")


def test_band_normalize_rejects_wrong_channel_count():
    norm = BandNormalize(bands=["B02", "B03"], stats=_stats())
    with pytest.raises(ValueError, match="expects 2 channels"):
        norm(torch.zeros(1, 3, 2, 2))


def test_l2a_offset_subtracts():
    x = torch.full((1, 2, 3, 3), 1500.0)
    assert torch.equal(L2AOffset(offset=1000)(x), torch.full((1, 2, 3, 3), 500.0))


def test_pipeline_selects_bands_and_normalizes():
    stats = _stats()
    pipe = BandPipeline(
        source_bands=L2A_BANDS, bands="B04,B02,B8A", stats=stats, offset=50.0, augment="none"
    )
    assert pipe.bands == ["B02", "B04", "B8A"]  # canonical order
    assert list(pipe.stats.bands) == ["B02", "B04", "B8A"]
    x = _image()
    out = pipe({"image": x})
    idx = [L2A_BANDS.index(b) for b in pipe.bands]
    mean = np.array([stats.bands[b].mean for b in pipe.bands])[None, :, None, None]
    std = np.array([stats.bands[b].std for b in pipe.bands])[None, :, None, None]
    expected = (x.numpy()[:, idx] - 50.0 - mean) / std
    assert out["image"].dtype == torch.float32
    np.testing.assert_allclose(out["image"].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert out["valid"].dtype == torch.bool and out["valid"].shape == (2, 1, 8, 8)
    assert out["valid"].all()


def test_pipeline_accepts_uint16_input():
    x = _image().to(torch.uint16)
    pipe = BandPipeline(source_bands=L2A_BANDS, bands="all", stats=_stats(), augment="none")
    out = pipe({"image": x})
    ref = pipe({"image": x.to(torch.float32)})
    assert torch.equal(out["image"], ref["image"])


def test_pipeline_unknown_band_is_band_error():
    with pytest.raises(BandError, match="B05"):
        BandPipeline(source_bands=["B02", "B03", "B04"], bands=["B02", "B05"], stats=_stats())
    with pytest.raises(BandError, match="unknown Sentinel-2 band 'B99'"):
        BandPipeline(source_bands=L2A_BANDS, bands=["B99"], stats=_stats())


def test_pipeline_wrong_channel_count_is_band_error():
    pipe = BandPipeline(source_bands=L2A_BANDS, bands="rgb", stats=_stats())
    with pytest.raises(BandError, match=r"expected image \(B, 12, H, W\)"):
        pipe({"image": torch.zeros(1, 4, 8, 8)})


def test_pipeline_nodata_nan_inf_become_invalid_zero():
    x = _image()
    x[0, 0, 1, 1] = 0.0  # nodata in a selected band
    x[0, 5, 2, 2] = float("nan")  # NaN in a selected band
    x[1, 3, 3, 3] = float("inf")  # Inf in a selected band
    x[1, 1, 4, 4] = 0.0  # nodata in a band that is *not* selected: stays valid
    given_valid = torch.ones(2, 1, 8, 8, dtype=torch.bool)
    given_valid[1, 0, 0, 0] = False
    pipe = BandPipeline(
        source_bands=L2A_BANDS,
        bands=["B01", "B04", "B06"],
        stats=_stats(),
        nodata=0.0,
        augment="full",
    )
    out = pipe({"image": x, "valid": given_valid}, augment=False)
    valid = out["valid"][:, 0]
    expected_invalid = {(0, 1, 1), (0, 2, 2), (1, 3, 3), (1, 0, 0)}
    got_invalid = {tuple(i) for i in (~valid).nonzero().tolist()}
    assert got_invalid == expected_invalid
    assert torch.isfinite(out["image"]).all()
    for b, i, j in expected_invalid:
        assert (out["image"][b, :, i, j] == 0).all()


def test_pipeline_drops_non_tensor_keys_and_keeps_labels():
    pipe = BandPipeline(source_bands=L2A_BANDS, bands="all", stats=_stats(), augment="none")
    out = pipe({"image": _image(), "bounds": object(), "crs": "EPSG:4326", "label": torch.ones(2)})
    assert set(out) == {"image", "valid", "label"}


def test_pipeline_warns_on_offset_mismatch(caplog):
    with caplog.at_level(logging.WARNING, logger="geomae.transforms.pipeline"):
        BandPipeline(source_bands=L2A_BANDS, bands="all", stats=_stats(offset=1000), offset=0)
    assert "offset 1000" in caplog.text


def test_pipeline_augments_only_when_asked():
    pipe = BandPipeline(source_bands=L2A_BANDS, bands="all", stats=_stats(), augment="flip")
    x = _image(b=16)
    pipe.eval()  # augment defaults to self.training
    assert torch.equal(pipe({"image": x})["image"], pipe({"image": x}, augment=False)["image"])
    torch.manual_seed(0)
    assert not torch.equal(pipe({"image": x}, augment=True)["image"], pipe({"image": x})["image"])
    pipe.train()
    assert not torch.equal(pipe({"image": x})["image"], pipe({"image": x}, augment=False)["image"])


@pytest.mark.parametrize("kind", ["flip", "flip_rot90", "full"])
def test_augment_keeps_image_valid_mask_aligned(kind):
    torch.manual_seed(1)
    b, h = 16, 16
    image = torch.rand(b, 3, h, h) * 10
    image[:, 0] = torch.arange(h * h, dtype=torch.float32).view(h, h)  # unique per pixel
    # label mask and validity derived from the image content
    mask = (image[:, 0] % 7).long()  # (B, H, W)
    valid = (image[:, :1] % 3) != 0  # (B, 1, H, W)
    aug = SpatialAugment(kind=kind, crop_scale=(0.3, 0.6))
    out_image, out_valid, out_mask = aug(image, valid, mask)
    assert out_image.shape == image.shape and out_valid.dtype == torch.bool
    assert out_mask.shape == mask.shape and out_mask.dtype == torch.int64
    if kind == "full":
        # the crop resamples the image bilinearly; the masks use nearest neighbour, so
        # every mask value is still a valid class and valid/mask stay mutually consistent
        assert set(out_mask.unique().tolist()) <= set(range(7))
        assert not torch.equal(out_mask, mask)
        return
    # flips and 90-degree rotations only move pixels: the masks re-derived from the
    # augmented image equal the augmented masks
    assert torch.equal(out_mask, (out_image[:, 0] % 7).long())
    assert torch.equal(out_valid, (out_image[:, :1] % 3) != 0)
    assert not torch.equal(out_image, image)
    # every sample is a permutation of its own pixels
    for i in range(b):
        assert torch.equal(
            out_image[i, 0].flatten().sort().values, image[i, 0].flatten().sort().values
        )


def test_augment_full_crop_masks_follow_image():
    torch.manual_seed(2)
    h = 32
    # image is a step function in x: left half 0, right half 100. Nearest-resampled masks
    # derived from it must agree with the resampled image away from the step.
    image = torch.zeros(8, 1, h, h)
    image[..., h // 2 :] = 100.0
    mask = (image[:, 0] > 50).long()
    valid = image > 50
    aug = SpatialAugment(kind="full", crop_scale=(0.3, 0.5))
    out_image, out_valid, out_mask = aug(image, valid, mask)
    assert torch.equal(out_valid[:, 0].long(), out_mask)
    clear = (out_image[:, 0] < 1) | (out_image[:, 0] > 99)
    assert clear.float().mean() > 0.8
    assert torch.equal(out_mask[clear], (out_image[:, 0][clear] > 50).long())


def test_augment_rot90_covers_all_rotations():
    torch.manual_seed(3)
    image = torch.arange(4.0).view(1, 1, 2, 2).repeat(400, 1, 1, 1)
    aug = SpatialAugment(kind="flip_rot90")
    out, _, _ = aug(image, torch.ones(400, 1, 2, 2, dtype=torch.bool))
    corners = out[:, 0, 0, 0].long().bincount(minlength=4)
    assert (corners > 60).all()  # each corner value lands top-left about 1/4 of the time


def test_augment_bad_options():
    with pytest.raises(ConfigError, match="augment='spin'"):
        SpatialAugment(kind="spin")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="crop_scale"):
        SpatialAugment(kind="full", crop_scale=(0.0, 1.0))


def test_pipeline_is_device_movable():
    pipe = BandPipeline(source_bands=L2A_BANDS, bands="rgb", stats=_stats())
    names = {n for n, _ in pipe.named_buffers()}
    assert {"index", "normalize.mean", "normalize.std"} <= names
    pipe.to(torch.float64)  # buffers follow module moves; index stays integer
    assert pipe.index.dtype == torch.int64
