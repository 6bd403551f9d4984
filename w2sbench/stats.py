"""Summary statistics over seeds, bootstrap intervals, and gap-recovered ratios."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "summarize",
    "gap_recovered",
    "bootstrap_interval",
    "bootstrap_samples",
    "percentile_interval",
    "paired_test",
    "improvement",
    "MIN_GAP",
]

# Below this absolute gap between ceiling and weak, a gap-recovered ratio is noise: report it undefined.
MIN_GAP = 1e-3


def summarize(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean, standard deviation, standard error and a t-based 95% interval of the defined values."""
    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(clean)
    if n == 0:
        return {"mean": None, "std": None, "stderr": None, "ci95": None, "n": 0}
    arr = np.asarray(clean)
    mean = float(arr.mean())
    if n == 1:
        return {"mean": mean, "std": None, "stderr": None, "ci95": None, "n": 1}
    from scipy import stats as st

    std = float(arr.std(ddof=1))
    stderr = std / math.sqrt(n)
    half = float(st.t.ppf(0.975, n - 1)) * stderr
    return {"mean": mean, "std": std, "stderr": stderr, "ci95": [mean - half, mean + half], "n": n}


def gap_recovered(strategy: float | None, weak: float | None, ceiling: float | None, higher_is_better: bool) -> float | None:
    """(strategy - weak) / (ceiling - weak); None when the ceiling does not beat the weak model."""
    if strategy is None or weak is None or ceiling is None:
        return None
    gap = ceiling - weak
    if (gap <= MIN_GAP) if higher_is_better else (gap >= -MIN_GAP):
        return None
    return float((strategy - weak) / gap)


def bootstrap_interval(
    statistic: Callable[[np.ndarray], float], n: int, seed: int = 0, resamples: int = 1000
) -> list[float] | None:
    """A percentile 95% interval of ``statistic(index)`` over bootstrap resamples of n examples."""
    if n < 2:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        v = statistic(rng.integers(0, n, n))
        if v is not None and not math.isnan(v):
            values.append(v)
    if len(values) < resamples // 2:
        return None
    return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]


def bootstrap_samples(
    score: Callable[[Mapping[str, np.ndarray]], Any], sizes: Mapping[str, int], seed: int = 0, resamples: int = 200
) -> list[Any]:
    """``score(index_per_test_set)`` on ``resamples`` bootstrap resamples; each test set is resampled on its own.

    The same indices go to every call's cells, so differences and ratios between cells are paired.
    """
    rng = np.random.default_rng(seed)
    return [score({name: rng.integers(0, n, n) for name, n in sizes.items()}) for _ in range(resamples)]


def percentile_interval(values: Sequence[float | None], resamples: int | None = None) -> list[float] | None:
    """The 2.5/97.5 percentiles of the defined values; None when under half of the resamples are defined."""
    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    total = resamples if resamples is not None else len(values)
    if len(clean) < 2 or len(clean) < total / 2:
        return None
    return [float(np.percentile(clean, 2.5)), float(np.percentile(clean, 97.5))]


def improvement(a: float | None, b: float | None, higher_is_better: bool) -> float | None:
    """How much better a is than b (positive: a is better), whatever the metric's direction."""
    if a is None or b is None:
        return None
    return float(a - b) if higher_is_better else float(b - a)


def paired_test(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Mean difference a - b over paired seeds with a paired t-test p-value (None with fewer than 2 pairs)."""
    pairs = [(x, y) for x, y in zip(a, b, strict=False) if x is not None and y is not None]
    if not pairs:
        return {"diff": None, "p_value": None, "n": 0}
    diff = np.asarray([x - y for x, y in pairs])
    if len(diff) < 2 or float(diff.std(ddof=1)) == 0.0:
        return {"diff": float(diff.mean()), "p_value": None, "n": len(diff)}
    from scipy import stats as st

    return {"diff": float(diff.mean()), "p_value": float(st.ttest_1samp(diff, 0.0).pvalue), "n": len(diff)}
