"""Findings: does trust transfer weak-to-strong, per property, with statistics that hold up.

For each trust property of a run this module computes paired comparisons between cells (``comparison_pairs``:
every strategy against plain transfer and the paper's other strategies present, each strategy that
regularizes the strong model against ``ceiling-reg``) on the property's primary trust score and on task accuracy, plus the accuracy gap (ceiling - weak), the
gap recovered of every strategy and a standard error for every score.

Statistics (docs/results.md):

* Scores computable from the predictions (accuracy, fairness gaps, OOD and AdvGLUE accuracies) use a
  crossed bootstrap over seeds and test examples: every seed scores the same test rows, so each resample
  draws the seeds with replacement and, independently, the test examples with replacement, and the same
  draw serves every cell (a paired comparison). Owen (2007), "The pigeonhole bootstrap", Ann. Appl.
  Stat. 1(2). Effects get the bootstrap standard error, a 95% normal interval and a two-sided Wald
  p-value (scipy.stats.norm): percentile p-values cannot go below 1/(resamples + 1), too coarse for a
  Holm correction over dozens of comparisons.
* Live scores (computed by the trust property on the model itself, e.g. membership inference, live attacks)
  have no per-example record: a paired t-test over seeds (``seed_paired_test``, scipy) and its t interval.
  The leaderboard, which holds per-seed scores only, uses the same test, comparison list and verdict rule.
* Holm's correction over all comparisons of the run (statsmodels' multipletests), then a verdict per
  comparison from the corrected p-value: ``better`` / ``worse`` (at 0.05) or ``no significant difference``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from w2sbench.design import REG_CEILING, StrategyDesign, task_scores
from w2sbench.stats import (
    gap_recovered_summary,
    gap_unresolved_reason,
    holm,
    interval_stderr,
    percentile_interval,
    summarize,
    wald_test,
)

__all__ = [
    "ALPHA",
    "DEFAULT_RESAMPLES",
    "comparison_pairs",
    "headline_pairs",
    "plain_baseline",
    "seed_paired_test",
    "resample_scores",
    "property_findings",
    "correct_run",
    "verdict_of",
    "stderr_by_seed",
    "gap_recovered_interval",
    "MAX_STDERR",
    "underpowered_scores",
    "score_stderr",
    "mark_underpowered",
]

# Issue 14's power rule: a primary score whose standard error over test examples exceeds this cannot show
# a difference of a few points; it is reported as underpowered, with the evaluation size to raise.
MAX_STDERR = 0.02

ALPHA = 0.05
DEFAULT_RESAMPLES = 200
def _ladder(designs: Sequence[StrategyDesign]) -> list[str]:
    """The plain strategies, the first of the run's order for each set of regularized phases, from the least
    to the most regularized: the paper's vanilla, weak-tft, weak-wts-tft."""
    first: dict[tuple[bool, bool], StrategyDesign] = {}
    for d in designs:
        if d.plain:
            first.setdefault((d.regularize_weak, d.regularize_strong), d)
    order = sorted(first.values(), key=lambda d: (d.regularize_weak + d.regularize_strong, not d.regularize_weak))
    return [d.name for d in order]


def plain_baseline(designs: Sequence[StrategyDesign]) -> str | None:
    """The plain transfer strategy with no regularized phase (the paper's vanilla), or None."""
    ladder = _ladder(designs)
    first = next((d for d in designs if ladder and d.name == ladder[0]), None)
    if first is None or first.regularize_weak or first.regularize_strong:
        return None
    return first.name


def headline_pairs(designs: Sequence[StrategyDesign]) -> list[tuple[str, str]]:
    """The paper's question: the most regularized plain strategy against each less regularized one
    (weak-wts-tft against vanilla and weak-tft)."""
    ladder = _ladder(designs)
    return [(ladder[-1], ref) for ref in ladder[:-1]]


def comparison_pairs(designs: Sequence[StrategyDesign], cells: Sequence[str]) -> list[tuple[str, str]]:
    """(strategy, baseline) pairs: each strategy against the plain strategies present (``_ladder``; a plain
    strategy only against the less regularized ones), and each strategy that regularizes the strong model
    against ``ceiling-reg``; a strategy in no pair at all is compared with its ceiling."""
    ladder = _ladder(designs)
    pairs: list[tuple[str, str]] = []
    for d in designs:
        for ref in ladder:
            if ref == d.name or (d.name in ladder and ladder.index(ref) > ladder.index(d.name)):
                continue
            pairs.append((d.name, ref))
        if d.regularize_strong and REG_CEILING in cells:
            pairs.append((d.name, REG_CEILING))
    for d in designs:
        ceiling = REG_CEILING if d.regularize_strong else "ceiling"
        if not any(d.name in pair for pair in pairs) and ceiling in cells:
            pairs.append((d.name, ceiling))
    return pairs


def _subset(data: Any, index: Mapping[str, np.ndarray] | None) -> Any:
    return data if index is None else replace(data, tests={n: t.subset(index[n]) for n, t in data.tests.items()})


def _scores_on(metric: Any, sub: Any, options: Mapping[str, Any], probs: Mapping[str, np.ndarray], index: Mapping[str, np.ndarray] | None) -> dict[str, float | None]:
    """Task and trust scores of one cell on the (resampled) test sets ``sub``; {} when undefined."""
    p = dict(probs) if index is None else {n: probs[n][index[n]] for n in sub.tests}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a resample without a group warns each time; the full-data score warned once
            scores: dict[str, float | None] = dict(task_scores(sub.tests[sub.main_test].labels, p[sub.main_test]))
            scores.update(metric.evaluate(sub, p, options))
    except (ValueError, ZeroDivisionError, FloatingPointError, KeyError, IndexError, TypeError):
        return {}  # a degenerate resample (e.g. one class only): undefined; never lose a finished run to it
    return scores


def resample_scores(
    metric: Any,
    data: Any,
    options: Mapping[str, Any],
    probabilities: Mapping[int, Mapping[str, Mapping[str, np.ndarray]]],
    observed: Mapping[int, Mapping[str, Mapping[str, float | None]]],
    names: Sequence[str],
    cells: Sequence[str],
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> dict[str, Any]:
    """Scores on bootstrap resamples of the test examples, per seed and cell.

    ``probabilities[seed][cell][test set]``: (n_examples, n_classes) arrays; ``observed[seed][cell]``: the
    run's scores. Returns ``samples`` (resamples, seeds, cells, metrics) with NaN where undefined, ``observed``
    (seeds, cells, metrics), ``example_level`` (metrics,) bool: False for live scores (not computable from
    the predictions; their samples repeat the observed value), ``weights`` (resamples, seeds): how often
    each seed is drawn in each resample, and ``seeds``.
    """
    seeds = sorted(observed)
    obs = np.array([[[_num(observed[s][c].get(m)) for m in names] for c in cells] for s in seeds], dtype=float).reshape(len(seeds), len(cells), len(names))
    full = {s: {c: _scores_on(metric, data, options, probabilities[s][c], None) for c in cells if c in probabilities.get(s, {})} for s in seeds}
    example_level = np.array([any(m in full[s].get(c, {}) for s in seeds for c in cells) for m in names], dtype=bool)
    rng = np.random.default_rng(seed)
    sizes = {n: len(t) for n, t in data.tests.items()}
    samples = np.repeat(obs[None], resamples, axis=0)
    weights = np.ones((resamples, len(seeds)))
    for b in range(resamples):
        if len(seeds) > 1:
            weights[b] = rng.multinomial(len(seeds), np.full(len(seeds), 1 / len(seeds)))
        index = {n: rng.integers(0, k, k) for n, k in sizes.items()}
        sub = _subset(data, index)
        for i, s in enumerate(seeds):
            for j, c in enumerate(cells):
                if c not in probabilities.get(s, {}):
                    continue
                scores = _scores_on(metric, sub, options, probabilities[s][c], index)
                for k, m in enumerate(names):
                    if example_level[k]:
                        samples[b, i, j, k] = _num(scores.get(m))
    return {"samples": samples, "observed": obs, "example_level": example_level, "weights": weights, "seeds": seeds}


def _num(value: Any) -> float:
    return float("nan") if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _weighted(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per resample, the weighted mean over seeds (axis 1) of the defined values; NaN when none is defined."""
    defined = ~np.isnan(values)
    w = weights * defined
    total = w.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.nansum(np.where(defined, values, 0.0) * w, axis=1) / np.where(total > 0, total, 1), np.nan)


def _mean(values: np.ndarray) -> float | None:
    return float(np.nanmean(values)) if np.any(~np.isnan(values)) else None


def _defined(values: np.ndarray) -> list[float | None]:
    return [None if math.isnan(v) else float(v) for v in values]


def _difference(boot: Mapping[str, Any], a: int, b: int, k: int, higher: bool) -> dict[str, Any]:
    """Effect of cell a over cell b on metric k (positive: a is better), its interval and p-value."""
    sign = 1.0 if higher else -1.0
    per_seed = sign * (boot["observed"][:, a, k] - boot["observed"][:, b, k])
    effect = _mean(per_seed)
    if boot["example_level"][k]:
        draws = _weighted(sign * (boot["samples"][:, :, a, k] - boot["samples"][:, :, b, k]), boot["weights"])
        draws = draws[~np.isnan(draws)]
        stderr = float(np.std(draws, ddof=1)) if len(draws) >= max(2, len(boot["weights"]) // 2) else None
        test = wald_test(effect, stderr)
        n_seeds = len(boot["seeds"])
        method = f"bootstrap over {n_seeds} seed{'s' if n_seeds > 1 else ''} x test examples"
        return {"effect": effect, "stderr": stderr, "ci95": test["ci95"], "p_value": test["p_value"], "method": method}
    return _paired_t(per_seed, effect)


def seed_paired_test(differences: Sequence[float]) -> dict[str, Any]:
    """Paired t-test over seeds of per-seed differences (strategy - baseline, oriented so that positive is
    better): ``effect`` (mean), ``stderr``, ``ci95`` (t interval), two-sided ``p_value`` (scipy.stats.ttest_1samp)
    and ``n``. With fewer than 2 seeds: no stderr, interval or p-value. Identical differences on every seed
    (a spread below 1e-12 of the effect: float noise) give the t statistic's limit: p = 0 for a nonzero
    effect, 1 for a zero one, and the interval [effect, effect]."""
    diffs = np.asarray([float(d) for d in differences], dtype=float)
    n = len(diffs)
    out: dict[str, Any] = {"effect": float(diffs.mean()) if n else None, "stderr": None, "ci95": None, "p_value": None, "n": n}
    if n < 2:
        return out
    summary = summarize(list(diffs))
    effect = out["effect"]
    if summary["stderr"] <= 1e-12 * max(1.0, abs(effect)):
        out.update(stderr=0.0, ci95=[effect, effect], p_value=1.0 if effect == 0 else 0.0)
    else:
        from scipy import stats as st  # slow to import (~0.3 s); a re-run with cached findings may not need it

        out.update(stderr=summary["stderr"], ci95=summary["ci95"], p_value=float(st.ttest_1samp(diffs, 0.0).pvalue))
    return out


def _paired_t(per_seed: np.ndarray, effect: float | None) -> dict[str, Any]:
    test = seed_paired_test(per_seed[~np.isnan(per_seed)])
    out: dict[str, Any] = {"effect": effect, "stderr": test["stderr"], "ci95": test["ci95"], "p_value": test["p_value"],
                           "method": f"paired t-test over {test['n']} seeds (live score)"}
    if test["n"] < 2:
        out["method"] = "none: live score with 1 seed (run more seeds)"
    return out


def _gap(boot: Mapping[str, Any], weak: int, ceiling: int, k: int) -> dict[str, Any]:
    """ceiling - weak on metric k in the metric's units, with its 95% interval."""
    diff = _difference(boot, ceiling, weak, k, True)
    return {"gap": diff["effect"], "ci95": diff["ci95"], "method": diff["method"]}


def gap_recovered_interval(boot: Mapping[str, Any], s: int, w: int, c: int, k: int, higher: bool) -> dict[str, Any]:
    obs = boot["observed"]
    gap = _gap(boot, w, c, k)
    summary = gap_recovered_summary(_defined(obs[:, s, k]), _defined(obs[:, w, k]), _defined(obs[:, c, k]), higher, gap["ci95"])
    summary.update({"gap_ci95": gap["ci95"], "method": "ratio of mean gaps"})
    if gap["ci95"] is None:
        summary["reason"] = "no interval for the gap (" + gap["method"] + ")"
    elif not summary["resolved"]:
        reason = gap_unresolved_reason(summary["gap"], gap["ci95"], higher) if summary["gap"] is not None else None
        summary["reason"] = reason or "no seed scores the strategy, its weak model and its ceiling all"
    if summary["mean"] is not None and boot["example_level"][k]:
        x = boot["samples"]
        num = _weighted(x[:, :, s, k] - x[:, :, w, k], boot["weights"])
        den = _weighted(x[:, :, c, k] - x[:, :, w, k], boot["weights"])
        with np.errstate(invalid="ignore", divide="ignore"):
            ratios = np.where(den != 0, num / np.where(den != 0, den, 1), np.nan)
        summary["ci95"] = percentile_interval(_defined(ratios))
        summary["stderr"] = interval_stderr(summary["ci95"])  # not the resamples' SD: heavy-tailed for a ratio
    return summary


def property_findings(
    prop: Mapping[str, Any],
    boot: Mapping[str, Any],
    names: Sequence[str],
    cells: Sequence[str],
    designs: Sequence[StrategyDesign],
) -> dict[str, Any]:
    """The findings of one property from ``resample_scores`` output: comparisons (uncorrected; see
    ``correct_run``), the accuracy gap, per-cell 95% intervals and per-seed standard errors."""
    directions = {m["name"]: m["higher_is_better"] for m in prop["metrics"]}
    col = {m: i for i, m in enumerate(names)}
    row = {c: j for j, c in enumerate(cells)}
    primary = prop["primary_trust_metric"]
    comparisons = []
    for a, b in comparison_pairs([d for d in designs if d.name in row], cells):
        for metric, kind in ((primary, "trust"), ("accuracy", "task")):
            if metric not in col:
                continue
            diff = _difference(boot, row[a], row[b], col[metric], directions[metric])
            comparisons.append({"strategy": a, "baseline": b, "metric": metric, "kind": kind,
                                "higher_is_better": directions[metric], **diff, "p_holm": None, "verdict": None})
    out: dict[str, Any] = {"comparisons": comparisons, "accuracy_gap": None, "intervals": {}, "resamples": int(len(boot["weights"]))}
    if {"weak", "ceiling"} <= set(row) and "accuracy" in col:
        gap = _gap(boot, row["weak"], row["ceiling"], col["accuracy"])
        ci = gap["ci95"]
        # the strategies whose gap recovered is taken against these two (the others have their own references)
        users = [c for c in cells if (prop["cells"][c].get("references") or {}) == {"weak": "weak", "ceiling": "ceiling"}]
        out["accuracy_gap"] = {**gap, "weak": "weak", "ceiling": "ceiling", "resolved": bool(ci and (ci[0] > 0 or ci[1] < 0)),
                               "strategies": users}
    for c in cells:
        est = {m: _weighted(boot["samples"][:, :, row[c], col[m]], boot["weights"]) for m in names if boot["example_level"][col[m]]}
        out["intervals"][c] = {m: percentile_interval(_defined(v)) for m, v in est.items()}
    return out


def stderr_by_seed(boot: Mapping[str, Any], names: Sequence[str], cells: Sequence[str]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``{cell: {seed: {metric: standard error over test-example resamples}}}``; None for live scores (results.py
    fills in the property's own, ``LiveScores.stderr``)."""
    x = boot["samples"]
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for j, c in enumerate(cells):
        out[c] = {}
        for i, s in enumerate(boot["seeds"]):
            per: dict[str, float | None] = {}
            for k, m in enumerate(names):
                v = x[:, i, j, k]
                v = v[~np.isnan(v)]
                per[m] = float(np.std(v, ddof=1)) if boot["example_level"][k] and len(v) >= max(2, len(x) // 2) else None
            out[c][str(s)] = per
    return out


def verdict_of(row: Mapping[str, Any], alpha: float = ALPHA) -> str:
    """better / worse (the strategy is, at the Holm-corrected level alpha) / no significant difference /
    undefined (no p-value)."""
    p = row.get("p_holm")
    if p is None or row.get("effect") is None:
        return "undefined"
    if p < alpha:
        return "better" if row["effect"] > 0 else "worse"
    return "no significant difference"


def correct_run(properties: Mapping[str, Any], alpha: float = ALPHA) -> int:
    """Holm-correct the p-values of every comparison of the run (all properties together), in place,
    and set each verdict; returns the number of comparisons with a p-value."""
    rows = [row for prop in properties.values() for row in (prop.get("findings") or {}).get("comparisons", [])]
    corrected = holm([row["p_value"] for row in rows], alpha)
    for row, p in zip(rows, corrected, strict=True):
        row["p_holm"] = p
        row["verdict"] = verdict_of(row, alpha)
    return sum(p is not None for p in corrected)


def score_stderr(prop: Mapping[str, Any], cell: str, metric: str) -> float | None:
    """The largest standard error of one cell's score, the quantity the power rule (``MAX_STDERR``) judges.

    A score computable from the predictions: the largest per-seed standard error over test-example
    resamples (``cells[cell].stderr``; for a live score, the property's own per-example bootstrap,
    ``LiveScores.stderr``). A live score without per-seed entries: the standard error of its mean over seeds
    (``cells[cell].summary[metric].stderr``, std / sqrt(seeds)). None when neither exists (a live score
    with one seed, or a cell without the score)."""
    entry = prop.get("cells", {}).get(cell) or {}
    per_seed = [
        float(se[metric]) for se in (entry.get("stderr") or {}).values()
        if isinstance(se, Mapping) and isinstance(se.get(metric), (int, float))
    ]
    if per_seed:
        return max(per_seed)
    over_seeds = ((entry.get("summary") or {}).get(metric) or {}).get("stderr")
    return float(over_seeds) if isinstance(over_seeds, (int, float)) else None


def underpowered_scores(prop: Mapping[str, Any], limit: float = MAX_STDERR) -> dict[str, float]:
    """Of the property's primary trust metric and accuracy, those whose standard error (``score_stderr``)
    in any cell exceeds ``limit``: {metric: largest standard error}."""
    out: dict[str, float] = {}
    for metric in (prop.get("primary_trust_metric"), "accuracy"):
        if not metric:
            continue
        values = [se for cell in prop.get("cells", {}) if (se := score_stderr(prop, cell, metric)) is not None]
        if values and max(values) > limit:
            out[metric] = max(values)
    return out


def mark_underpowered(prop: dict[str, Any], limit: float = MAX_STDERR) -> int:
    """Give every comparison of ``prop["findings"]`` its ``score_stderr`` (the larger ``score_stderr`` of the
    two cells compared) and ``underpowered`` (True when it exceeds ``limit``; None when unknown), in place;
    returns the number marked underpowered. The verdict is kept: a difference that is significant after
    the Holm correction stands, but "no significant difference" on an underpowered score is not evidence
    of no difference (issue 14's power rule; the findings table marks these rows with ``*``)."""
    marked = 0
    for row in (prop.get("findings") or {}).get("comparisons", []):
        errors = [se for cell in (row["strategy"], row["baseline"]) if (se := score_stderr(prop, cell, row["metric"])) is not None]
        row["score_stderr"] = max(errors) if errors else None
        row["underpowered"] = None if row["score_stderr"] is None else bool(row["score_stderr"] > limit)
        marked += bool(row["underpowered"])
    return marked
