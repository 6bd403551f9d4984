"""Summary statistics over seeds, bootstrap intervals, and gap-recovered ratios."""

from __future__ import annotations

import gc
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = [
    "summarize",
    "gap_recovered",
    "bootstrap_interval",
    "bootstrap_samples",
    "percentile_interval",
    "interval_stderr",
    "bootstrap_stderr",
    "improvement",
    "MIN_GAP",
    "gap_resolved",
    "gap_unresolved_reason",
    "gap_recovered_summary",
    "holm",
    "wald_test",
]

# Below this absolute gap between ceiling and weak, a gap-recovered ratio is noise: report it undefined.
# One hundredth on a [0, 1] score: at the benchmark's test sizes (a few hundred to a few thousand
# examples) the standard error of a difference between two accuracies is itself about 0.01 or more, so a
# smaller gap cannot be resolved whatever its interval. The interval rule (``gap_interval``) comes on top.
MIN_GAP = 1e-2


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


def gap_resolved(
    weak: float | None, ceiling: float | None, higher_is_better: bool, gap_interval: Sequence[float] | None = None
) -> bool:
    """Whether ceiling - weak is a gap a ratio can be taken over.

    The ceiling must beat the weak model by at least ``MIN_GAP`` in the metric's better direction and,
    when ``gap_interval`` (a 95% interval of ceiling - weak, in the metric's units) is given, that
    interval must exclude 0.
    """
    if weak is None or ceiling is None:
        return False
    gap = ceiling - weak
    if (gap < MIN_GAP) if higher_is_better else (gap > -MIN_GAP):
        return False
    if gap_interval is not None:
        lo, hi = gap_interval
        return bool(lo > 0 or hi < 0)
    return True


def gap_unresolved_reason(gap: float, gap_interval: Sequence[float] | None, higher_is_better: bool) -> str | None:
    """Why ``gap_resolved`` refuses ceiling - weak = ``gap`` (with its 95% interval), in words a reader can
    check against the numbers; None when it is resolved. The one wording of results.json, reports and exports."""
    better = gap if higher_is_better else -gap  # positive: the ceiling is better
    if better <= 0:
        significant = gap_interval is not None and (gap_interval[0] > 0 or gap_interval[1] < 0)
        return f"the ceiling is {'worse than' if significant else 'not better than'} the weak model"
    if better < MIN_GAP:
        return f"the ceiling beats the weak model by less than the {MIN_GAP} minimum gap"
    if gap_interval is not None and gap_interval[0] <= 0 <= gap_interval[1]:
        return "the 95% interval of the gap includes 0"
    return None


def gap_recovered(
    strategy: float | None,
    weak: float | None,
    ceiling: float | None,
    higher_is_better: bool,
    gap_interval: Sequence[float] | None = None,
) -> float | None:
    """Gap recovered (Burns et al. 2023's performance gap recovered, PGR, on any score):
    ``(strategy - weak) / (ceiling - weak)``.

    None (undefined) unless the gap is resolved (``gap_resolved``): e.g. ``gap_recovered(0.76, 0.70,
    0.7015, True)`` is None, since a 0.0015 gap is below ``MIN_GAP``.
    """
    if strategy is None or not gap_resolved(weak, ceiling, higher_is_better, gap_interval):
        return None
    return float((strategy - weak) / (ceiling - weak))  # type: ignore[operator]


def _mean_defined(values: Sequence[float | None]) -> float | None:
    clean = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    return float(np.mean(clean)) if clean else None


def gap_recovered_summary(
    strategy: Sequence[float | None],
    weak: Sequence[float | None],
    ceiling: Sequence[float | None],
    higher_is_better: bool,
    gap_interval: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Gap recovered across seeds as the ratio of mean gaps, ``mean(strategy - weak) / mean(ceiling - weak)``.

    Inputs are per-seed scores (the same seeds in each sequence; seeds where any is None are left out).
    The ratio of means is bounded whenever the mean gap is resolved: one seed with a near-zero gap moves
    it a little, where a mean of per-seed ratios would be dominated by that seed's huge ratio.
    Returns ``{"mean", "std", "stderr", "ci95", "n"}`` (the results schema's summary; ``mean`` is the
    ratio, None when the mean gap is unresolved, std/stderr/ci95 None: intervals come from the bootstrap
    in w2sbench.findings) plus ``gap`` (mean ceiling - weak) and ``resolved``.
    """
    rows = [
        (s, w, c)
        for s, w, c in zip(strategy, weak, ceiling, strict=True)
        if s is not None and w is not None and c is not None
    ]
    out: dict[str, Any] = {"mean": None, "std": None, "stderr": None, "ci95": None, "n": len(rows), "gap": None, "resolved": False}
    if not rows:
        return out
    mean_w = _mean_defined([w for _, w, _ in rows])
    mean_c = _mean_defined([c for _, _, c in rows])
    mean_s = _mean_defined([s for s, _, _ in rows])
    out["gap"] = float(mean_c - mean_w)  # type: ignore[operator]
    out["resolved"] = gap_resolved(mean_w, mean_c, higher_is_better, gap_interval)
    out["mean"] = gap_recovered(mean_s, mean_w, mean_c, higher_is_better, gap_interval)
    return out


def wald_test(effect: float | None, stderr: float | None) -> dict[str, Any]:
    """Two-sided Wald test of effect = 0 with a (bootstrap) standard error: p-value and 95% normal interval.

    Uses scipy.stats.norm. None p-value and interval when the standard error is missing; with a zero
    standard error, p is 1 for a zero effect and 0 otherwise.
    """
    if effect is None or stderr is None or not math.isfinite(stderr):
        return {"p_value": None, "ci95": None}
    from scipy import stats as st

    if stderr == 0.0:
        return {"p_value": 1.0 if effect == 0 else 0.0, "ci95": [effect, effect]}
    half = float(st.norm.ppf(0.975)) * stderr
    return {"p_value": float(2.0 * st.norm.sf(abs(effect) / stderr)), "ci95": [effect - half, effect + half]}


def holm(p_values: Sequence[float | None], alpha: float = 0.05) -> list[float | None]:
    """Holm-corrected p-values (statsmodels.stats.multitest.multipletests, method "holm") of the defined
    p-values, in the input order; None stays None and does not count towards the correction."""
    index = [i for i, p in enumerate(p_values) if p is not None]
    out: list[float | None] = [None] * len(p_values)
    if not index:
        return out
    from statsmodels.stats.multitest import multipletests

    # statsmodels' Holm branch runs gc.collect() (statsmodels 0.15, stats/multitest.py): with a run's data in memory
    # a full collection took ~0.2 s per call. Frozen, the objects that exist already are skipped by it (unless the
    # program froze some itself: then its freeze is left alone).
    ours = gc.get_freeze_count() == 0
    if ours:
        gc.freeze()
    try:
        corrected = multipletests([float(p_values[i]) for i in index], alpha=alpha, method="holm")[1]  # type: ignore[arg-type]
    finally:
        if ours:
            gc.unfreeze()
    for i, p in zip(index, corrected, strict=True):
        out[i] = float(p)
    return out


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


def interval_stderr(ci95: Sequence[float] | None) -> float | None:
    """The standard error a 95% interval implies, (hi - lo) / (2 x 1.96); None without an interval.

    Used for bootstrapped ratios (gap recovered): their bootstrap standard deviation is dominated by the few
    resamples whose denominator nears 0 (1e13 on a ratio whose interval is [-1.1, 1.4]), while the percentile
    interval is not."""
    from scipy import stats as st  # scipy is slow to import; `w2sbench --help` does not need it

    if ci95 is None:
        return None
    return float((ci95[1] - ci95[0]) / (2 * st.norm.ppf(0.975)))


def bootstrap_stderr(
    samples: Sequence[np.ndarray], statistic: Callable[..., np.ndarray], *, paired: bool,
    resamples: int = 1000, seed: int = 0,
) -> list[float | None]:
    """Standard error of each value of ``statistic`` over bootstrap resamples of the examples.

    ``samples``: 1-D arrays, one value per example (e.g. per attacked sentence, per member e-mail);
    ``paired``: resample the rows of all samples jointly (the same examples, as several live attacks on
    one sentence set), else each sample on its own (members and non-members). ``statistic(*samples,
    axis=-1)`` returns ``(k,)`` values, vectorized over a leading resample axis. The standard deviation
    of the resampled values (scipy.stats.bootstrap's ``standard_error``; Efron & Tibshirani 1993) per
    value; None where it is not finite (e.g. a rate with no attacked example in some resample), or with
    fewer than two examples in a sample.
    """
    from scipy.stats import bootstrap  # slow to import (~0.9 s with scipy.stats); only live evaluations need it

    arrays = tuple(np.asarray(x, dtype=float) for x in samples)
    probe = np.atleast_1d(statistic(*arrays, axis=-1))
    if min(len(x) for x in arrays) < 2:
        return [None] * len(probe)
    with warnings.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        warnings.simplefilter("ignore")  # scipy warns on degenerate resamples; they come back None below
        result = bootstrap(arrays, statistic, paired=paired, vectorized=True, n_resamples=resamples,
                           method="percentile", random_state=np.random.default_rng(seed))
    return [float(v) if np.isfinite(v) else None for v in np.atleast_1d(result.standard_error)]


def improvement(a: float | None, b: float | None, higher_is_better: bool) -> float | None:
    """How much better a is than b (positive: a is better), whatever the metric's direction."""
    if a is None or b is None:
        return None
    return float(a - b) if higher_is_better else float(b - a)

