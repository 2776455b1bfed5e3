"""The logistic-regression probe, its affine form, and the benchmark metrics."""

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from geomae.errors import DataError
from geomae.evaluation.metrics import classification_scores, confusion_matrix, segmentation_scores
from geomae.linear_probe import affine_map, fit_probe, predict_scores


def blobs(n_per_class, num_classes, dim=5, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 3, (num_classes, dim))
    y = np.repeat(np.arange(num_classes), n_per_class)
    x = centres[y] + rng.normal(0, spread, (len(y), dim))
    return x, y


def test_probe_separates_separable_classes():
    x, y = blobs(20, 3)
    xt, yt = blobs(10, 3, seed=0)
    model = fit_probe(x, y, kind="multiclass", C=1.0, max_iter=500, what="t")
    scores = predict_scores(model, xt, num_classes=3)
    assert scores.shape == (30, 3)
    np.testing.assert_allclose(scores.sum(1), 1.0, atol=1e-5)
    assert classification_scores(scores, yt, kind="multiclass", num_classes=3) == {
        "OA": 1.0,
        "F1_macro": 1.0,
    }


def test_classes_absent_from_training_score_zero():
    x, y = blobs(10, 2)
    y = np.where(y == 1, 3, 0)  # classes 0 and 3 of K=4
    model = fit_probe(x, y, kind="multiclass", C=1.0, max_iter=500, what="t")
    scores = predict_scores(model, x, num_classes=4)
    assert np.all(scores[:, [1, 2]] == 0)
    assert np.array_equal(scores.argmax(1), y)


@pytest.mark.parametrize("num_classes", [2, 3])
def test_affine_map_predicts_like_the_pipeline(num_classes):
    x, y = blobs(15, num_classes, spread=2.0, seed=3)  # overlapping: predictions not trivial
    y = y * 2  # class indices 0, 2, (4)
    model = fit_probe(x, y, kind="segmentation", C=0.5, max_iter=500, what="t")
    weight, bias, classes = affine_map(model)
    assert weight.shape == (num_classes, x.shape[1])
    ours = classes[(x @ weight.T + bias).argmax(1)]
    assert np.array_equal(ours, model.predict(x))


def test_single_class_sample_is_a_data_error():
    x = np.random.default_rng(0).normal(size=(6, 3))
    with pytest.raises(DataError, match="cell X: the training sample holds only class"):
        fit_probe(x, np.zeros(6, int), kind="multiclass", C=1.0, max_iter=50, what="cell X")


def test_multilabel_probe_is_one_vs_rest():
    x, y = blobs(20, 3)
    multi = np.eye(3, dtype=np.uint8)[y]
    multi[:, 2] = (y != 0).astype(np.uint8)  # label 2 = "not class 0"
    model = fit_probe(x, multi, kind="multilabel", C=1.0, max_iter=500, what="t")
    scores = predict_scores(model, x, num_classes=3)
    assert scores.shape == (60, 3)
    got = classification_scores(scores, multi, kind="multilabel", num_classes=3)
    assert got == pytest.approx({"mAP_micro": 1.0, "mAP_macro": 1.0})


def test_multiclass_scores_match_sklearn():
    rng = np.random.default_rng(1)
    target = rng.integers(0, 4, 50)
    scores = rng.random((50, 4))
    got = classification_scores(scores, target, kind="multiclass", num_classes=4)
    pred = scores.argmax(1)
    assert got["OA"] == pytest.approx(accuracy_score(target, pred))
    assert got["F1_macro"] == pytest.approx(
        f1_score(target, pred, average="macro", labels=range(4), zero_division=0)
    )


def test_confusion_and_segmentation_scores_by_hand():
    target = np.array([[0, 0, 1], [1, 255, 2]])
    pred = np.array([[0, 1, 1], [1, 0, 0]])
    confusion = confusion_matrix(pred, target, num_classes=3, ignore_index=255)
    assert confusion.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    scores = segmentation_scores(confusion)
    # IoU: class 0 1/(2+2-1)=1/3, class 1 2/(2+3-2)=2/3, class 2 0/(1+0-0)=0
    assert scores["mIoU"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3, abs=1e-6)
    assert scores["OA"] == pytest.approx(3 / 5)


def test_absent_class_is_left_out_of_miou():
    confusion = np.array([[3, 0, 0], [0, 0, 0], [0, 0, 1]])
    assert segmentation_scores(confusion) == {"mIoU": 1.0, "OA": 1.0}
    empty = segmentation_scores(np.zeros((2, 2), int))
    assert np.isnan(empty["mIoU"]) and np.isnan(empty["OA"])
