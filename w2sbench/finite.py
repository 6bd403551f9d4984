"""Non-finite numbers (NaN, +-Infinity) as errors with a message, never as silent results.

A NaN loss, a NaN probability or a NaN option is a fault of the settings (a learning rate or a
regularizer weight too large), not a result: training stops with the cell and the setting to
change, score functions refuse non-finite probabilities, and nothing non-finite is cached or
written (w2sbench/stage_cache.py uses ``first_non_finite`` for JSON and arrays).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from w2sbench.errors import W2SBenchError

__all__ = [
    "NonFiniteTraining",
    "first_non_finite",
    "json_safe",
    "require_finite_probabilities",
    "training_fix",
]


def training_fix(mode: str, lr: float, weight: str = "") -> str:
    """The advice for a training run that diverged: which settings to lower."""
    also = f" or the trust regularizer's weight ({weight})" if weight else ""
    return (
        f"Lower the learning rate (--train {mode}.lr, now {lr:g}){also}, then run the same command "
        "again: nothing of this stage was cached."
    )


class NonFiniteTraining(W2SBenchError):
    """Training met a NaN or infinite loss, gradient, parameter or target.

    Raised by ``w2sbench.training.trainer.train_classifier``; the pipeline adds the cell's name
    (e.g. "fairness s0 weak", whose first word is the trust property) with ``in_cell``.
    """

    def __init__(
        self, what: str, mode: str, lr: float, where: str = "", cell: str = "", regularized: bool = False
    ) -> None:
        self.what, self.mode, self.lr, self.where, self.cell, self.regularized = what, mode, lr, where, cell, regularized
        subject = f"Training {cell}" if cell else "Training"
        metric = cell.split()[0] if cell else "METRIC"
        super().__init__(
            f"{subject} ({mode} mode) met a non-finite {what}{f' {where}' if where else ''}.",
            training_fix(mode, lr, f"--option {metric}.weight" if regularized else ""),
        )

    def in_cell(self, cell: str) -> NonFiniteTraining:
        """The same error naming the cell (e.g. "fairness s0 weak")."""
        return NonFiniteTraining(self.what, self.mode, self.lr, self.where, cell, self.regularized)


def first_non_finite(value: Any, path: str = "") -> str | None:
    """The JSON path of the first NaN/Infinity inside ``value`` (dicts, lists, floats, numpy), or None."""
    if isinstance(value, (float, np.floating)):
        return None if math.isfinite(float(value)) else (path or "(top level)")
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "fc" and not np.isfinite(value).all():
            return path or "(top level)"
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            found = first_non_finite(item, f"{path}/{key}")
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = first_non_finite(item, f"{path}/{i}")
            if found is not None:
                return found
    return None


def require_finite_probabilities(probabilities: Any, where: str) -> np.ndarray:
    """``probabilities`` (n_rows, n_labels) as an array, or a W2SBenchError when any entry is NaN/Infinity.

    Every score function calls this first, so a diverged model is reported, not crashed on
    (scikit-learn's "Input contains NaN") or scored as ``nan``.
    """
    arr = np.asarray(probabilities, dtype=np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        rows = int(bad.reshape(len(arr), -1).any(axis=1).sum()) if arr.ndim else 1
        raise W2SBenchError(
            f"The predicted probabilities for {where} hold non-finite values ({rows} of {len(arr) if arr.ndim else 1} rows): "
            "the model diverged during training.",
            "Lower the learning rate (--train MODE.lr) or the trust regularizer's weight (--option METRIC.weight) "
            "and run again.",
        )
    return arr


def json_safe(value: Any) -> Any:
    """``value`` with every NaN/Infinity replaced by None ("undefined"), numpy scalars as Python numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value
