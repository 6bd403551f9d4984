"""design.binary_auroc is scikit-learn's roc_auc_score bit for bit (the findings' bootstrap calls it ~10^4 times)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from w2sbench.design import binary_auroc, task_scores


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("decimals", [None, 1, 2])
def test_binary_auroc_equals_sklearn_exactly(dtype: type, decimals: int | None) -> None:
    rng = np.random.default_rng(7)
    for _ in range(200):
        n = int(rng.integers(2, 300))
        labels = rng.integers(0, 2, n)
        labels[:2] = [0, 1]  # both classes present
        scores = rng.random(n)
        if decimals is not None:
            scores = np.round(scores, decimals)  # many ties: collapsed thresholds and collinear points
        scores = scores.astype(dtype)
        assert binary_auroc(labels, scores) == roc_auc_score(labels, scores)


def test_binary_auroc_takes_the_larger_label_as_positive() -> None:
    labels = np.array([3, 7, 7, 3])
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    assert binary_auroc(labels, scores) == roc_auc_score(labels, scores) == 0.5


def test_task_scores_auroc_undefined_with_one_class() -> None:
    probs = np.array([[0.9, 0.1], [0.2, 0.8]])
    assert task_scores(np.array([1, 1]), probs) == {"accuracy": 0.5, "auroc": None}
    assert task_scores(np.array([0, 1]), probs) == {"accuracy": 1.0, "auroc": 1.0}
