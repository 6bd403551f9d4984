"""The board's findings: each strategy's paired effect against plain transfer, with its interval and a verdict.

The comparison list and the verdict rule are the run's (``w2sbench.findings``), the test is not: a run's
findings bootstrap over seeds x test examples, while the board uses the per-seed scores only and runs
``seed_paired_test`` (a paired t-test over seeds, scipy) on the pairs of ``comparison_pairs`` whose
baseline is the plain transfer strategy (the paper's vanilla), with Holm's step-down correction across the
strategies compared within one entry and metric (Holm 1979, "A simple sequentially rejective multiple test
procedure"), and ``verdict_of`` at the same level. With three seeds this is more conservative than the
run's findings: a run's "better" can be the board's "no significant difference" (``FINDINGS_BASIS``).
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from w2sbench.design import StrategyDesign, design_from_cell, design_of
from w2sbench.findings import ALPHA, comparison_pairs, plain_baseline, seed_paired_test, verdict_of
from w2sbench.interfaces import Strategy
from w2sbench.stats import holm

__all__ = ["ALPHA", "FINDINGS_TITLE", "FINDINGS_BASIS", "PairedEffect", "paired_effects", "entry_designs", "board_pairs", "render_findings"]

FINDINGS_TITLE = "Findings: each strategy against plain transfer, over seeds only"
FINDINGS_BASIS = (
    "The board's intervals and verdicts come from the per-seed scores only: a 95% t-interval and a paired "
    "t-test over seeds, Holm-corrected across the strategies of an entry, verdict at 5%. A run's findings also "
    "resample test examples (a bootstrap over seeds × test examples), so the board is more conservative: a run's "
    "\"better\" can be the board's \"no significant difference\"."
)


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
    baseline_name: str = "baseline",
) -> list[PairedEffect]:
    """Each strategy against ``baseline`` on ``metric``, paired by seed (``findings.seed_paired_test``),
    Holm-corrected across strategies, with the run's verdict rule (``findings.verdict_of``).

    ``baseline`` and each ``strategies[name]`` map seed (as a string) -> score (None when undefined).
    Effects with fewer than two paired seeds have no interval and the verdict "undefined (...)".
    """
    tests = [(name, seed_paired_test(_paired(scores, baseline, higher_is_better))) for name, scores in strategies.items()]
    adjusted = holm([t["p_value"] for _, t in tests])  # statsmodels, as the run's findings
    effects = []
    for (name, t), p_adj in zip(tests, adjusted, strict=True):
        if t["n"] == 0:
            verdict = "undefined (no seed defines both scores)"
        elif t["n"] < 2:
            verdict = "undefined (1 seed: no interval)"
        else:
            verdict = verdict_of({"p_holm": p_adj, "effect": t["effect"]}, ALPHA)
        ci = (float(t["ci95"][0]), float(t["ci95"][1])) if t["ci95"] is not None else None
        effects.append(PairedEffect(name, baseline_name, metric, t["effect"], ci, t["p_value"], p_adj, t["n"], verdict))
    return effects


def entry_designs(references: Mapping[str, Mapping[str, str]], registered: Mapping[str, Strategy]) -> list[StrategyDesign]:
    """The designs of an entry's strategies (``references``: strategy -> its gap-recovered reference cells,
    in the entry's order): a registered strategy's own design when its regularized phases match the
    submission's reference cells, else the design read from those cells (``findings.design_from_cell``)."""
    out = []
    for name, refs in references.items():
        from_refs = design_from_cell(name, {"references": refs})
        own = design_of(registered[name]) if name in registered else None
        same = own is not None and (own.regularize_weak, own.regularize_strong) == (from_refs.regularize_weak, from_refs.regularize_strong)
        out.append(own if same and own is not None else from_refs)
    return out


def board_pairs(designs: Sequence[StrategyDesign]) -> tuple[str | None, list[str]]:
    """The entry's plain transfer strategy and the strategies the board compares with it: the pairs of the
    run's comparison list (``findings.comparison_pairs``) whose baseline is plain transfer."""
    base = plain_baseline(designs)
    names = [d.name for d in designs]
    return base, [a for a, b in comparison_pairs(designs, names) if b == base and base is not None]


def _fmt(value: float | None, signed: bool = True) -> str:
    if value is None:
        return "–"
    return f"{value:+.3f}" if signed else f"{value:.3f}"


def render_findings(
    groups: Sequence[tuple[str, Mapping[str, Mapping[str, Any]], Sequence[tuple[str, bool]], Sequence[StrategyDesign]]],
    unverified: Sequence[str] = (),
) -> str:
    """A findings table per entry: ``groups`` holds (entry label, cell -> seed -> metric -> score,
    [(metric, higher_is_better), ...], the strategies' designs); each strategy is compared with the entry's
    plain transfer strategy (``board_pairs``). Metrics in ``unverified`` (not recomputed by the validator)
    are marked †."""
    e = html.escape
    out = []
    for label, cells, metrics, designs in groups:
        base, compared = board_pairs(designs)
        if base is None or base not in cells:
            out.append(f'<p class="note">{e(label)}: no plain transfer strategy (no trust regularizer, the weak '
                       "model's soft labels, cross-entropy), so nothing to compare against.</p>")
            continue
        head = ["metric", "strategy", "strategy mean", f"{base} mean", "improvement [95% CI]", "p (Holm)", "seeds", "verdict"]
        rows = []
        for metric, higher in metrics:
            series = {c: {s: (v or {}).get(metric) for s, v in seeds.items()} for c, seeds in cells.items()}
            others = {c: series[c] for c in compared if c in series}
            for eff in paired_effects(series[base], others, metric, higher, base):
                means = [_mean(series[eff.strategy]), _mean(series[base])]
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
