"""The paper's three weak-to-strong strategies (Pawelczyk et al. 2025, Sec. 4)."""

from __future__ import annotations

from w2sbench import hookimpl
from w2sbench.interfaces import Strategy

__all__ = ["VANILLA", "WEAK_TFT", "WEAK_WTS_TFT"]

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


@hookimpl
def w2sbench_register_strategies() -> list[Strategy]:
    return [VANILLA, WEAK_TFT, WEAK_WTS_TFT]
