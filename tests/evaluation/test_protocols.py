"""Probe protocols on synthetic features: seeds, C selection, per-pixel upsampling."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from geomae.evaluation.config import LinearSettings
from geomae.evaluation.features import SplitFeatures
from geomae.evaluation.metrics import confusion_matrix
from geomae.evaluation.protocols import _confusion_of_maps, probe_classification, probe_segmentation
from geomae.linear_probe import fit_probe


def blobs(n_per_class, num_classes, *, dim=6, seed=0, spread=1.5):
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(0, 2, (num_classes, dim))
    y = np.repeat(np.arange(num_classes), n_per_class)
    return SplitFeatures(centres[y] + rng.normal(0, spread, (len(y), dim)), y)


def test_classification_probe_seed_draws_the_training_sample():
    train, test = blobs(20, 4), blobs(30, 4, seed=1)
    settings = LinearSettings(train_fraction=0.25, max_iter=300)
    results = [
        probe_classification(
            train, None, test, kind="multiclass", num_classes=4, settings=settings, seed=s, what="t"
        )
        for s in (0, 1, 0)
    ]
    assert [r.info["train_samples"] for r in results] == [20, 20, 20]
    assert results[0].metrics == results[2].metrics  # same seed, same result
    assert results[0].metrics != results[1].metrics  # another sample, another fit
    assert set(results[0].metrics) == {"OA", "F1_macro"}
    assert 0.5 < results[0].metrics["OA"] <= 1.0  # well above chance (0.25)


def test_c_is_chosen_on_val():
    train, val, test = blobs(20, 3), blobs(10, 3, seed=2), blobs(10, 3, seed=3)
    settings = LinearSettings(C=(1e-6, 1.0), train_fraction=1.0, max_iter=300)
    result = probe_classification(
        train, val, test, kind="multiclass", num_classes=3, settings=settings, seed=0, what="t"
    )
    assert set(result.info["val_scores"]) == {"1e-06", "1"}
    assert result.info["C"] == 1.0  # a vanishing C cannot beat a fitted model
    assert result.info["val_scores"]["1"] > result.info["val_scores"]["1e-06"]


def test_c_list_without_val_split_is_an_error():
    from geomae.errors import ConfigError

    settings = LinearSettings(C=(0.1, 1.0))
    with pytest.raises(ConfigError, match="no separate val split"):
        probe_classification(
            blobs(5, 2),
            None,
            blobs(5, 2),
            kind="multiclass",
            num_classes=2,
            settings=settings,
            seed=0,
            what="t",
        )


def segmentation_split(n, *, seed, ignore_index=255):
    """Feature maps (n, 3, 2, 2) whose channels one-hot the class of each quadrant."""
    rng = np.random.default_rng(seed)
    quadrant_classes = rng.integers(0, 3, (n, 2, 2))
    maps = np.eye(3)[quadrant_classes].transpose(0, 3, 1, 2) * 4.0  # (n, 3, 2, 2)
    maps += rng.normal(0, 0.3, maps.shape)
    masks = quadrant_classes.repeat(8, axis=1).repeat(8, axis=2)  # (n, 16, 16)
    masks[:, 0, :] = ignore_index  # an unlabelled row
    valid = np.ones_like(masks, dtype=bool)
    return SplitFeatures(maps.astype(np.float32), masks.astype(np.int16), valid)


def test_segmentation_probe_learns_quadrants_from_upsampled_maps():
    train, test = segmentation_split(12, seed=0), segmentation_split(6, seed=1)
    settings = LinearSettings(max_train_pixels=500, train_fraction=1.0, max_iter=300)
    result = probe_segmentation(
        train,
        None,
        test,
        num_classes=3,
        ignore_index=255,
        settings=settings,
        seed=0,
        valid_only=False,
        what="t",
    )
    assert result.info["train_pixels"] == 500
    assert set(result.metrics) == {"mIoU", "OA"}
    assert result.metrics["OA"] > 0.8 and result.metrics["mIoU"] > 0.6


def test_map_scores_equal_per_pixel_predictions_on_upsampled_features():
    test = segmentation_split(6, seed=1)
    up = F.interpolate(
        torch.from_numpy(test.features), size=(16, 16), mode="bilinear", align_corners=False
    ).numpy()  # (n, 3, 16, 16)
    pixels = up.transpose(0, 2, 3, 1).reshape(-1, 3)  # (n*256, 3)
    labels = test.labels.reshape(-1)
    keep = labels != 255
    model = fit_probe(
        pixels[keep][::3], labels[keep][::3], kind="segmentation", C=0.05, max_iter=300, what="t"
    )
    explicit = model.predict(pixels).reshape(test.labels.shape)
    expected = confusion_matrix(explicit, test.labels, num_classes=3, ignore_index=255)
    got = _confusion_of_maps(model, test, num_classes=3, ignore_index=255)
    np.testing.assert_array_equal(got, expected)
    assert got.sum() == keep.sum()  # every labelled pixel, no ignored one


def test_valid_only_samples_valid_pixels():
    train = segmentation_split(8, seed=0)
    train.valid[:, 8:, :] = False  # the bottom half is invalid image
    test = segmentation_split(4, seed=1)
    settings = LinearSettings(max_train_pixels=10**6, train_fraction=1.0, max_iter=300)
    labelled = train.labels != 255
    both = probe_segmentation(
        train,
        None,
        test,
        num_classes=3,
        ignore_index=255,
        settings=settings,
        seed=0,
        valid_only=False,
        what="t",
    )
    valid = probe_segmentation(
        train,
        None,
        test,
        num_classes=3,
        ignore_index=255,
        settings=settings,
        seed=0,
        valid_only=True,
        what="t",
    )
    assert both.info["train_pixels"] == labelled.sum()
    assert valid.info["train_pixels"] == (labelled & train.valid).sum()
