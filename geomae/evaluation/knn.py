"""Cosine k-nearest-neighbour classifier on frozen embeddings.

The second probe beside the logistic regression of :mod:`geomae.linear_probe`: it has
no training and no regularization to tune, so it shows how the embedding space itself
is organized. Embeddings are first centred on the training mean (a component shared by
every tile, such as the position embedding's mean, otherwise dominates the cosine), then
L2-normalized; the ``k`` most similar vote for their class with weight
``exp(similarity / temperature)`` (the weighted kNN of instance-discrimination and DINO
evaluations).
"""

from __future__ import annotations

import numpy as np
import torch

from geomae.errors import DataError

__all__ = ["knn_predict"]


def knn_predict(
    train_x: np.ndarray,
    train_y: np.ndarray,
    query_x: np.ndarray,
    *,
    num_classes: int,
    k: int = 20,
    temperature: float = 0.07,
    chunk: int = 1024,
) -> np.ndarray:
    """Predict classes of ``query_x`` by a weighted vote of their cosine neighbours.

    Args:
        train_x: ``(n, F)`` training embeddings.
        train_y: ``(n,)`` class indices in ``[0, num_classes)``.
        query_x: ``(m, F)`` embeddings to classify.
        num_classes: K.
        k: neighbours per query (at most ``n``).
        temperature: softness of the similarity weights.
        chunk: queries scored at once (bounds the ``(chunk, n)`` similarity matrix).

    Returns:
        ``(m,)`` int64 predicted classes.

    Raises:
        DataError: no training sample, or labels outside ``[0, num_classes)``.
    """
    if len(train_x) == 0:
        raise DataError("kNN probe: no training embedding")
    labels = torch.as_tensor(np.asarray(train_y, dtype=np.int64))  # (n,)
    if int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise DataError(
            f"kNN probe: labels span {int(labels.min())}..{int(labels.max())}, "
            f"expected 0..{num_classes - 1}"
        )
    train = torch.as_tensor(np.asarray(train_x), dtype=torch.float32)  # (n, F)
    centre = train.mean(dim=0, keepdim=True)  # (1, F)
    train = torch.nn.functional.normalize(train - centre, dim=1)
    query = torch.as_tensor(np.asarray(query_x), dtype=torch.float32) - centre  # (m, F)
    query = torch.nn.functional.normalize(query, dim=1)
    k = max(1, min(int(k), len(train)))
    preds = []
    for start in range(0, len(query), chunk):
        sim = query[start : start + chunk] @ train.T  # (q, n)
        top_sim, top_idx = sim.topk(k, dim=1)  # (q, k) each; ties keep the lower index
        weight = (top_sim / temperature).exp()  # (q, k)
        votes = torch.zeros(len(sim), num_classes)  # (q, K)
        votes.scatter_add_(1, labels[top_idx], weight)
        preds.append(votes.argmax(dim=1))  # (q,)
    if not preds:
        return np.zeros(0, dtype=np.int64)
    return torch.cat(preds).numpy().astype(np.int64)
