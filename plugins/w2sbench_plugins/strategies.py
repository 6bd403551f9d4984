"""Weak-to-strong strategies: the paper's three (Pawelczyk et al. 2025, Sec. 4) and transfer methods from the
weak-to-strong literature, each also composed with the paper's regularization choices (docs/strategies.md).

A transfer method ``M`` is registered three times: ``M`` (no trust regularizer), ``M+weak-tft`` (regularized
weak models) and ``M+weak-wts-tft`` (regularized weak models and strong training), as the paper's
vanilla / weak-tft / weak-wts-tft. The new methods run only when named with --strategies.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from w2sbench.plugin_api import AuxConfLoss, LogConfLoss, ProductLoss, Strategy, Teacher, hookimpl, with_regularization

__all__ = [
    "VANILLA",
    "WEAK_TFT",
    "WEAK_WTS_TFT",
    "ConfidenceFilter",
    "ensemble",
    "with_regularization",
    "transfer_methods",
]

VANILLA = Strategy(
    name="vanilla",
    description="weak-to-strong without any trust regularizer",
    regularize_weak=False,
    regularize_strong=False,
)
WEAK_TFT = Strategy(
    name="weak-tft",
    description="Weak TFT: regularize the weak model only; the strong model learns its labels plainly",
    regularize_weak=True,
    regularize_strong=False,
)
WEAK_WTS_TFT = Strategy(
    name="weak-wts-tft",
    description="Weak+WTS TFT: regularize the weak model and the strong model's weak-to-strong training",
    regularize_weak=True,
    regularize_strong=True,
)


@dataclass(frozen=True)
class ConfidenceFilter(Strategy):
    """Train only on the rows of split B where the (averaged) teachers' confidence, max_c p(c), is in the top
    ``keep`` fraction (ties broken by row order); the others get weight 0 and are left out."""

    keep: float = 0.5

    def curate(self, teacher_probabilities: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        targets, _ = super().curate(teacher_probabilities)
        confidence = self.combine(teacher_probabilities).max(axis=1)
        kept = max(1, int(np.ceil(self.keep * len(confidence))))
        weights = np.zeros(len(confidence))
        weights[np.argsort(-confidence, kind="stable")[:kept]] = 1.0
        return targets, weights


def ensemble(k: int = 3, name: str = "ensemble") -> Strategy:
    """k weak supervisors with averaged soft labels: the run's weak model, then members trained with seed + i
    on alternating halves of split A (i = 1 .. k-1). With k = 1 it is vanilla (the same stages)."""
    teachers = (Teacher(),) + tuple(Teacher(seed_offset=i, part=((i - 1) % 2, 2)) for i in range(1, k))
    return Strategy(
        name=name,
        description=f"{k} weak supervisors (seeds, halves of split A), averaged soft labels",
        regularize_weak=False,
        regularize_strong=False,
        teachers=teachers,
        in_default_run=False,
    )


def transfer_methods() -> list[Strategy]:
    """The transfer methods without trust regularization."""
    return [
        Strategy("aux-conf", "Burns et al. 2023 auxiliary confidence loss, linear warm-up", False, False,
                 loss=AuxConfLoss(), in_default_run=False),
        Strategy("product", "Burns et al. 2023 product of weak and strong probabilities", False, False,
                 loss=ProductLoss(), in_default_run=False),
        Strategy("log-conf", "EleutherAI/w2s log-confidence loss (batch-balanced log-odds)", False, False,
                 loss=LogConfLoss(), in_default_run=False),
        ensemble(),
        ConfidenceFilter("confidence-filter", "train on the top half of rows by weak confidence", False, False,
                         in_default_run=False),
    ]


@hookimpl
def w2sbench_register_strategies() -> list[Strategy]:
    methods = transfer_methods()
    composed = [with_regularization(s, phases) for s in methods for phases in ("weak", "both")]
    return [VANILLA, WEAK_TFT, WEAK_WTS_TFT, *methods, *composed]
