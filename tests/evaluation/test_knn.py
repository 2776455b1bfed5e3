"""The cosine kNN probe on generated embeddings."""

import numpy as np
import pytest

from geomae.errors import DataError
from geomae.evaluation.knn import knn_predict


def _blobs(n_per_class: int, num_classes: int, dim: int, seed: int):
    rng = np.random.default_rng(seed)
    centres = np.eye(num_classes, dim) * 10.0
    x = np.concatenate([c + rng.normal(size=(n_per_class, dim)) for c in centres])
    y = np.repeat(np.arange(num_classes), n_per_class)
    return x, y


def test_separable_embeddings_are_classified() -> None:
    x, y = _blobs(40, 4, 16, seed=0)
    q, qy = _blobs(25, 4, 16, seed=1)
    pred = knn_predict(x, y, q, num_classes=4, k=10)
    assert (pred == qy).mean() >= 0.99


def test_constant_embeddings_score_chance() -> None:
    y = np.repeat(np.arange(4), 30)
    x = np.ones((len(y), 8))
    qy = np.repeat(np.arange(4), 10)
    pred = knn_predict(x, y, np.ones((len(qy), 8)), num_classes=4, k=20)
    assert len(np.unique(pred)) == 1  # one class for every query: no information
    assert (pred == qy).mean() == pytest.approx(0.25)


def test_k_larger_than_training_set_and_chunking() -> None:
    x, y = _blobs(3, 2, 4, seed=2)
    q, qy = _blobs(5, 2, 4, seed=3)
    pred = knn_predict(x, y, q, num_classes=2, k=100, chunk=3)
    assert pred.shape == (10,) and (pred == qy).mean() >= 0.9


def test_bad_labels_and_empty_training_set() -> None:
    with pytest.raises(DataError, match="expected 0..2"):
        knn_predict(np.ones((2, 3)), np.array([0, 3]), np.ones((1, 3)), num_classes=3)
    with pytest.raises(DataError, match="no training embedding"):
        knn_predict(np.ones((0, 3)), np.zeros(0), np.ones((1, 3)), num_classes=3)
