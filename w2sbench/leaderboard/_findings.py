"""The board's findings: each strategy's paired effect against vanilla, with its interval and a verdict.

``paired_effects`` is the single place where the board turns per-seed scores into effects; it uses a
paired t-test over seeds (scipy) with Holm's step-down correction across the strategies compared
within one entry (Holm 1979, "A simple sequentially rejective multiple test procedure"). When the
project's run-level findings (paired hierarchical bootstrap) are available, point this function at
them; the rendering below only reads ``PairedEffect`` fields.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scipy import stats

from w2sbench.stats import holm

__all__ = ["ALPHA", "PairedEffect", "paired_effects", "render_findings"]

ALPHA = 0.05  # family-wise error rate per entry and metric


@dataclass(frozen=True)
class PairedEffect:
    """One strategy against the baseline on one metric, paired by seed.

    ``improvement`` is the mean over seeds of the per-seed difference, oriented so that positive means
    the strategy is better (more trustworthy or more accurate) whatever the metric's direction;
    ``ci95`` its 95% t-interval; ``p_value`` the two-sided paired t-test, ``p_holm`` after Holm's
    correction; ``verdict`` one of "better", "worse", "no significant difference" or "undefined (...)".
    """

    strategy: str
    baseline: str
    metric: str
    improvement: float | None
    ci95: tuple[float, float] | None
    p_value: float | None
    p_holm: float | None
    n: int
    verdict: str


def _paired(a: Mapping[str, Any], b: Mapping[str, Any], higher: bool) -> list[float]:
    """Per-seed differences a - b (oriented: positive = a better) over the seeds both define."""
    out = []
    for seed, x in a.items():
        y = b.get(seed)
        if isinstance(x, (int, float)) and isinstance(y, (int, float)) and math.isfinite(x) and math.isfinite(y):
            out.append(float(x - y) if higher else float(y - x))
    return out


def paired_effects(
    baseline: Mapping[str, Any], strategies: Mapping[str, Mapping[str, Any]], metric: str, higher_is_better: bool,
    baseline_name: str = "vanilla",
) -> list[PairedEffect]:
    """Each strategy against ``baseline`` on ``metric``, paired by seed, Holm-corrected across strategies.

    ``baseline`` and each ``strategies[name]`` map seed (as a string) -> score (None when undefined).
    Effects with fewer than two paired seeds have no interval and the verdict "undefined (...)".
    """
    raw = []
    for name, scores in strategies.items():
        diffs = _paired(scores, baseline, higher_is_better)
        n = len(diffs)
        mean = sum(diffs) / n if n else None
        ci: tuple[float, float] | None = None
        p: float | None = None
        if mean is not None and n >= 2:
            sem = float(stats.sem(diffs))
            if sem > 1e-12 * max(1.0, abs(mean)):  # below this, float noise on identical differences
                lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=sem)
                ci, p = (float(lo), float(hi)), float(stats.ttest_1samp(diffs, 0.0).pvalue)
            else:
                ci = (float(mean), float(mean))  # identical differences on every seed: no spread to test
        raw.append((name, mean, ci, p, n))
    adjusted = holm([r[3] for r in raw])  # statsmodels, as the run's findings
    effects = []
    for (name, mean, ci, p, n), p_adj in zip(raw, adjusted, strict=True):
        if mean is None:
            verdict = "undefined (no seed defines both scores)"
        elif n < 2:
            verdict = "undefined (1 seed: no interval)"
        elif p_adj is None:
            verdict = "undefined (no spread over seeds to test)"
        elif p_adj < ALPHA:
            verdict = "better" if mean > 0 else "worse"
        else:
            verdict = "no significant difference"
        effects.append(PairedEffect(name, baseline_name, metric, mean, ci, p, p_adj, n, verdict))
    return effects


def _fmt(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def render_findings(
    groups: Sequence[tuple[str, Mapping[str, Mapping[str, Any]], Sequence[tuple[str, bool]]]], unverified: Sequence[str] = ()
) -> str:
    """A findings table per entry: ``groups`` holds (entry label, cell -> seed -> metric -> score,
    [(metric, higher_is_better), ...]); every non-vanilla cell among the strategies is compared with vanilla.
    Metrics in ``unverified`` (not recomputed by the validator) are marked †."""
    e = html.escape
    out = []
    for label, cells, metrics in groups:
        if "vanilla" not in cells:
            out.append(f'<p class="note">{e(label)}: no vanilla strategy, so nothing to compare against.</p>')
            continue
        head = ["metric", "strategy", "strategy mean", "vanilla mean", "improvement [95% CI]", "p (Holm)", "seeds", "verdict"]
        rows = []
        for metric, higher in metrics:
            series = {c: {s: (v or {}).get(metric) for s, v in seeds.items()} for c, seeds in cells.items()}
            others = {c: v for c, v in series.items() if c != "vanilla"}
            for eff in paired_effects(series["vanilla"], others, metric, higher):
                means = [_mean(series[eff.strategy]), _mean(series["vanilla"])]
                ci = f" [{eff.ci95[0]:+.3f}, {eff.ci95[1]:+.3f}]" if eff.ci95 else ""
                p = "–" if eff.p_holm is None else f"{eff.p_holm:.3g}"
                cls = {"better": "good", "worse": "bad"}.get(eff.verdict, "")
                rows.append(
                    f"<tr><td>{e(metric).replace('_', '_<wbr>')} {'↑' if higher else '↓'}{' †' if metric in unverified else ''}</td><td>{e(eff.strategy)}</td>"
                    f'<td class="num">{_fmt(means[0], False)}</td><td class="num">{_fmt(means[1], False)}</td>'
                    f'<td class="num">{_fmt(eff.improvement)}{ci}</td><td class="num">{p}</td><td class="num">{eff.n}</td>'
                    f'<td class="verdict {cls}">{e(eff.verdict)}</td></tr>'
                )
        out.append(f'<p class="entry">{e(label)}</p><div class="scroll"><table class="findings"><thead><tr>'
                   + "".join(f'<th scope="col">{e(h)}</th>' for h in head) + "</tr></thead><tbody>" + "".join(rows)
                   + "</tbody></table></div>")
    return "".join(out)


def _mean(series: Mapping[str, Any]) -> float | None:
    values = [float(v) for v in series.values() if isinstance(v, (int, float)) and math.isfinite(v)]
    return sum(values) / len(values) if values else None
