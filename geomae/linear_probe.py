"""The regularized logistic-regression probe shared by the feature protocols.

Features are standardized (mean 0, std 1 on the training sample) and fed to
scikit-learn's ``LogisticRegression`` (lbfgs, L2 penalty ``1/C``): one multinomial
model for multiclass data, one binary model per label for multilabel data
(one-vs-rest). The solver is deterministic; what a seed changes is the training sample
(see :mod:`geomae.evaluation.protocols`). It sits below both the evaluation and the
trainers (LP-FT, the online probe), which import it.

For segmentation the fitted model is also exposed as an affine map ``W f + b`` on the
raw features (:func:`affine_map`), so class scores of whole feature maps can be computed
on the device and upsampled: bilinear upsampling commutes with an affine map, so
upsampling the scores is the same as classifying upsampled features.

:func:`linear_weights` writes any fitted probe (multiclass or multilabel) as a full
``(K, F)`` linear layer on the raw features; LP-FT (:mod:`geomae.trainers.lpft`) copies
it into the fine-tuning head, so fine-tuning starts from the probe's predictions.
"""

from __future__ import annotations

import logging
import warnings
from typing import Literal

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from geomae.errors import DataError

#: What a probe predicts: one class per item, several labels per item, a class per pixel.
TaskKind = Literal["multiclass", "multilabel", "segmentation"]

log = logging.getLogger(__name__)

__all__ = ["ABSENT_LOGIT_MARGIN", "affine_map", "fit_probe", "linear_weights", "predict_scores"]

#: Classes (labels) the probe never saw score this far below the lowest fitted bias
#: (probability ~1e-13 relative); labels always on in training get the opposite.
ABSENT_LOGIT_MARGIN = 30.0


def fit_probe(
    x: np.ndarray,
    y: np.ndarray,
    *,
    kind: TaskKind,
    C: float,
    max_iter: int,
    what: str,
) -> Pipeline:
    """Fit the probe.

    Args:
        x: ``(n, F)`` features.
        y: ``(n,)`` class indices (multiclass, segmentation pixels) or ``(n, K)``
            multi-hot (multilabel).
        kind: the task kind.
        C: inverse regularization strength.
        max_iter: lbfgs iterations (a warning is logged when it does not converge).
        what: the cell, for messages.

    Returns:
        The fitted ``StandardScaler -> LogisticRegression`` pipeline.

    Raises:
        DataError: a multiclass training sample with fewer than two classes.
    """
    x = np.asarray(x, dtype=np.float64)
    if kind != "multilabel":
        classes = np.unique(y)
        if len(classes) < 2:
            raise DataError(
                f"{what}: the training sample holds only class(es) {classes.tolist()}; a "
                "probe needs two or more (raise max_samples / linear.train_fraction)"
            )
    logistic = LogisticRegression(C=C, max_iter=max_iter)
    estimator = OneVsRestClassifier(logistic) if kind == "multilabel" else logistic
    model = make_pipeline(StandardScaler(), estimator)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, np.asarray(y))
    if any(issubclass(w.category, ConvergenceWarning) for w in caught):
        log.warning(
            "%s: logistic regression did not converge in %d iterations (raise linear.max_iter)",
            what,
            max_iter,
        )
    return model


def predict_scores(model: Pipeline, x: np.ndarray, *, num_classes: int) -> np.ndarray:
    """``(n, K)`` class (or label) probabilities; classes absent from training score 0."""
    proba = model.predict_proba(np.asarray(x, dtype=np.float64))  # (n, K')
    classes = _classes(model)
    out = np.zeros((len(proba), num_classes), dtype=np.float32)
    out[:, classes] = proba
    return out


def _classes(model: Pipeline) -> np.ndarray:
    estimator = model[-1]
    if isinstance(estimator, OneVsRestClassifier):
        return np.arange(len(estimator.estimators_))
    return np.asarray(estimator.classes_, dtype=np.int64)


def affine_map(model: Pipeline) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The fitted multiclass probe as scores ``W f + b`` on raw (unscaled) features.

    Returns:
        ``(W (K', F), b (K',), classes (K',))``: the argmax of ``W f + b`` over the
        ``K'`` classes seen in training is the probe's prediction ``classes[argmax]``.
    """
    scaler, logistic = model[0], model[-1]
    if isinstance(logistic, OneVsRestClassifier):
        raise TypeError("affine_map applies to multiclass probes only")
    coef = np.asarray(logistic.coef_, dtype=np.float64)  # (K', F) or (1, F)
    intercept = np.asarray(logistic.intercept_, dtype=np.float64)  # (K',) or (1,)
    if coef.shape[0] == 1:  # binary: decision z = coef f + b, class 1 when z > 0
        coef = np.concatenate([np.zeros_like(coef), coef])  # (2, F)
        intercept = np.concatenate([np.zeros(1), intercept])  # (2,)
    scale = np.asarray(scaler.scale_, dtype=np.float64)  # (F,)
    mean = np.asarray(scaler.mean_, dtype=np.float64)  # (F,)
    weight = coef / scale  # (K', F)
    bias = intercept - weight @ mean  # (K',)
    return weight, bias, _classes(model)


def linear_weights(model: Pipeline, *, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The fitted probe as one linear layer ``W f + b`` over all ``K`` classes.

    Multiclass: ``softmax(W f + b)`` is the probe's ``predict_proba`` (up to the classes
    absent from its training sample, which get weight 0 and a bias
    :data:`ABSENT_LOGIT_MARGIN` below the lowest fitted bias). Multilabel (one-vs-rest):
    ``sigmoid(W f + b)`` is each label's probability; a label constant in training gets
    weight 0 and a bias of ``+-``:data:`ABSENT_LOGIT_MARGIN`.

    Args:
        model: a :func:`fit_probe` pipeline.
        num_classes: K, the width of the layer.

    Returns:
        ``(W (K, F), b (K,))`` on the raw (unscaled) features, float64.
    """
    estimator = model[-1]
    if not isinstance(estimator, OneVsRestClassifier):
        fitted_w, fitted_b, classes = affine_map(model)  # (K', F), (K',), (K',)
        weight = np.zeros((num_classes, fitted_w.shape[1]), dtype=np.float64)  # (K, F)
        bias = np.full(num_classes, float(fitted_b.min()) - ABSENT_LOGIT_MARGIN)  # (K,)
        weight[classes], bias[classes] = fitted_w, fitted_b
        return weight, bias
    scaler = model[0]
    scale = np.asarray(scaler.scale_, dtype=np.float64)  # (F,)
    mean = np.asarray(scaler.mean_, dtype=np.float64)  # (F,)
    scaled_w = np.zeros((num_classes, len(scale)), dtype=np.float64)  # (K, F) on scaled f
    scaled_b = np.zeros(num_classes, dtype=np.float64)  # (K,)
    for k, sub in enumerate(estimator.estimators_):
        if hasattr(sub, "coef_"):
            scaled_w[k] = np.asarray(sub.coef_, dtype=np.float64)[0]
            scaled_b[k] = float(np.asarray(sub.intercept_, dtype=np.float64)[0])
        else:  # a label always off (or always on) in the training sample
            on = float(np.asarray(sub.predict_proba(np.zeros((1, len(scale)))))[0, -1])
            scaled_b[k] = ABSENT_LOGIT_MARGIN if on > 0.5 else -ABSENT_LOGIT_MARGIN
    weight = scaled_w / scale  # (K, F) on raw features
    return weight, scaled_b - weight @ mean
