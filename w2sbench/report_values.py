"""What a report shows for one score: its interval, the ratios, the paper's comparison and verdict.

Shared by the terminal tables (report.py, report_tables.py) and the plots (plots.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from w2sbench.design import StrategyDesign, design_from_cell
from w2sbench.findings import headline_pairs, seed_paired_test
from w2sbench.stats import gap_unresolved_reason, improvement

__all__ = [
    "strategy_designs",
    "headline_comparisons",
    "format_summary",
    "format_interval",
    "run_seeds",
    "score_interval",
    "answer",
    "within_bounds",
    "ratio_interval",
    "ratio_reason",
    "comparisons",
    "verdict",
    "caption",
]


def strategy_designs(prop: Mapping[str, Any]) -> list[StrategyDesign]:
    """The design of every strategy cell of one property of a results document, in the run's order."""
    return [design_from_cell(c, e) for c, e in prop["cells"].items() if e.get("role") == "strategy"]


def headline_comparisons(prop: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The paper's question for one property of a results document (``findings.headline_pairs``): does the
    most regularized plain strategy (weak-wts-tft) beat the less regularized ones (vanilla, weak-tft)?"""
    return headline_pairs(strategy_designs(prop))


# --------------------------------------------------------------------------- formatting


def format_summary(summary: Mapping[str, Any] | None) -> str:
    """``mean ± std`` for a summary, fractions with 3 decimals; ``undefined`` when there is no value."""
    if not summary or summary.get("mean") is None:
        return "undefined"
    text = f"{summary['mean']:.3f}"
    if summary.get("std") is not None:
        text += f" ± {summary['std']:.3f}"
    return text


def format_interval(value: Mapping[str, Any] | None) -> str:
    """``mean [lo, hi]`` for a ``score_interval`` result, fractions with 3 decimals like the findings table
    and the plots (an accuracy of 83.5% is 0.835); ``undefined`` when there is no value."""
    if not value or value.get("mean") is None:
        return "undefined"
    text = f"{value['mean']:.3f}"
    if value.get("lo") is not None and value.get("hi") is not None:
        text += f" [{value['lo']:.3f}, {value['hi']:.3f}]"
    return text


# --------------------------------------------------------------------------- intervals


def run_seeds(prop: Mapping[str, Any]) -> list[str]:
    return sorted({s for entry in prop["cells"].values() for s in entry["seeds"]}, key=int)


def _interval_from(summary: Mapping[str, Any] | None, boot: Any, source_boot: str) -> dict[str, Any]:
    mean = summary.get("mean") if summary else None
    if summary and summary.get("ci95") is not None and (summary.get("n") or 0) >= 2:
        lo, hi = summary["ci95"]
        return {"mean": mean, "lo": lo, "hi": hi, "method": f"t-interval over {summary['n']} seeds"}
    if mean is not None and boot:
        return {"mean": mean, "lo": boot[0], "hi": boot[1], "method": source_boot}
    return {"mean": mean, "lo": None, "hi": None, "method": None}


def score_interval(prop: Mapping[str, Any], cell: str, metric: str, boot: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Mean and 95% interval of one cell's score: over seeds, else the bootstrap over test examples; cut at
    the score's ``bounds`` (``MetricInfo.bounds``: a t-interval over three seeds of a rate near 1 reaches
    past 1; the cut interval covers the true value as often, since that cannot lie outside)."""
    summary = prop["cells"][cell]["summary"].get(metric)
    stored = (prop["cells"][cell].get("intervals") or {}).get(metric)
    if stored is not None and summary and summary.get("mean") is not None:
        n = summary.get("n") or 1
        method = "bootstrap over test examples" if n == 1 else f"bootstrap over {n} seeds x test examples"
        value = {"mean": summary["mean"], "lo": stored[0], "hi": stored[1], "method": method}
    else:
        b = ((boot or {}).get("cells") or {}).get(cell, {}).get(metric)
        value = _interval_from(summary, b, "bootstrap over test examples")
    return within_bounds(value, next((m.get("bounds") for m in prop.get("metrics", ()) if m["name"] == metric), None))


def within_bounds(value: dict[str, Any], bounds: Sequence[float | None] | None) -> dict[str, Any]:
    """``value`` with its interval cut at ``bounds`` (low, high; None: open), its method saying so."""
    if not bounds or value.get("lo") is None or value.get("hi") is None:
        return value
    low, high = bounds
    lo = value["lo"] if low is None else max(value["lo"], low)
    hi = value["hi"] if high is None else min(value["hi"], high)
    if (lo, hi) == (value["lo"], value["hi"]):
        return value
    return {**value, "lo": lo, "hi": hi, "method": f"{value['method']}, cut at the score's range"}


def ratio_interval(prop: Mapping[str, Any], strategy: str, metric: str, boot: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Mean and 95% interval of a strategy's gap-recovered ratio; mean None (undefined) when the ceiling
    does not beat the weak model."""
    summary = prop["cells"][strategy].get("gap_recovered", {}).get(metric, {}).get("summary")
    if summary and summary.get("method") == "ratio of mean gaps":  # written with the findings: resolved gaps only
        ci = summary.get("ci95") or [None, None]
        return {"mean": summary.get("mean"), "lo": ci[0], "hi": ci[1], "method": "ratio of mean gaps; bootstrap interval"}
    b = ((boot or {}).get("gap_recovered") or {}).get(strategy, {}).get(metric)
    return _interval_from(summary, b, "bootstrap over test examples")


def ratio_reason(prop: Mapping[str, Any], strategy: str, metric: str) -> str | None:
    """Why a strategy's gap recovered on ``metric`` is undefined, naming its own reference pair (``ceiling-reg -
    weak-reg`` for weak-wts-tft) and the measured gap; None when it is defined. The rule is
    ``stats.gap_resolved``: the ceiling beats the weak model by ``MIN_GAP`` or more in the metric's better
    direction, with a 95% interval of the gap that excludes 0 (results written with the findings)."""
    entry = prop["cells"][strategy]
    gr = (entry.get("gap_recovered") or {}).get(metric) or {}
    summary = gr.get("summary") or {}
    if summary.get("mean") is not None:
        return None
    refs = entry.get("references") or {}
    weak, ceiling = refs.get("weak", "weak"), refs.get("ceiling", "ceiling")
    gap, ci = summary.get("gap"), summary.get("gap_ci95")
    if not summary.get("n") or gap is None:
        return f"{metric}: no seed scores {strategy}, {weak} and {ceiling} all"
    measured = f"{metric} gap {ceiling} - {weak} {gap:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
    higher = next((m["higher_is_better"] for m in prop["metrics"] if m["name"] == metric), True)
    reason = gap_unresolved_reason(gap, ci, higher) or summary.get("reason")
    return f"{measured}: {reason}" if reason else f"{measured}: not resolved"


def comparisons(prop: Mapping[str, Any], boot: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The headline comparisons (``headline_comparisons``) on the primary trust score: improvement
    (positive is better), its 95% interval, and the seed-paired t-test (``findings.seed_paired_test``), or
    with one seed the paired bootstrap over test examples."""
    primary = prop["primary_trust_metric"]
    info = next((m for m in prop["metrics"] if m["name"] == primary), None)
    if info is None:
        return []
    higher = info["higher_is_better"]
    if prop.get("findings"):
        return _from_findings(prop, primary, higher)
    seeds = run_seeds(prop)
    rows = []
    for a, b in headline_comparisons(prop):
        va = [prop["cells"][a]["seeds"].get(s, {}).get(primary) for s in seeds]
        vb = [prop["cells"][b]["seeds"].get(s, {}).get(primary) for s in seeds]
        gains = [g for g in (improvement(x, y, higher) for x, y in zip(va, vb, strict=True)) if g is not None]
        test = seed_paired_test(gains)
        row: dict[str, Any] = {
            **_pair(prop, a, b, primary, higher),
            "improvement": test["effect"],
            "interval": test["ci95"],
            "p_value": test["p_value"],
            "n_seeds": test["n"],
            "method": f"paired t-test over {test['n']} seeds" if test["n"] >= 2 else None,
        }
        if test["n"] < 2:
            diff = ((boot or {}).get("differences") or {}).get(f"{a} - {b}")
            if diff is not None:
                # Stored as a - b in the metric's own units; orient it so positive means a is better.
                row["interval"] = list(diff) if higher else [-diff[1], -diff[0]]
                row["method"] = "paired bootstrap over test examples (1 seed)"
        row["outcome"] = _outcome(row)
        rows.append(row)
    return rows


def _pair(prop: Mapping[str, Any], a: str, b: str, primary: str, higher: bool) -> dict[str, Any]:
    """What every comparison row says of the pair itself: the names, the score, its direction and both means."""
    return {
        "strategy": a,
        "baseline": b,
        "metric": primary,
        "higher_is_better": higher,
        "strategy_mean": prop["cells"][a]["summary"].get(primary, {}).get("mean"),
        "baseline_mean": prop["cells"][b]["summary"].get(primary, {}).get("mean"),
    }


def _from_findings(prop: Mapping[str, Any], primary: str, higher: bool) -> list[dict[str, Any]]:
    """The headline comparisons as the findings hold them (``findings.comparisons``, trust rows): the effect,
    its interval and the Holm-corrected p-value the findings table shows, and its verdict as the outcome."""
    found = {(r["strategy"], r["baseline"]): r for r in prop["findings"]["comparisons"] if r["kind"] == "trust"}
    rows = []
    for a, b in headline_comparisons(prop):
        r = found.get((a, b))
        if r is None:
            continue
        rows.append({
            **_pair(prop, a, b, primary, higher),
            "improvement": r["effect"],
            "interval": r["ci95"],
            "p_value": r["p_holm"],
            "n_seeds": len(run_seeds(prop)),
            "method": f"{r['method']}; p Holm-corrected",
            "outcome": r.get("verdict") or "undefined",
        })
    return rows


def _outcome(row: Mapping[str, Any]) -> str:
    iv = row["interval"]
    if row["improvement"] is None:
        return "undefined"
    if row["p_value"] is not None:
        return ("better" if row["improvement"] > 0 else "worse") if row["p_value"] < 0.05 else "no significant difference"
    if iv is not None:
        return "better" if iv[0] > 0 else "worse" if iv[1] < 0 else "no significant difference"
    outcome = "better" if row["improvement"] > 0 else "worse" if row["improvement"] < 0 else "equal"
    return outcome + " (no uncertainty estimate)"


def verdict(prop: Mapping[str, Any], boot: Mapping[str, Any] | None = None) -> str:
    """One line answering the paper's question for this property."""
    rows = comparisons(prop, boot)
    if not rows:
        return ""
    primary = prop["primary_trust_metric"]
    parts = []
    for row in rows:
        if row["improvement"] is None:
            parts.append(f"vs {row['baseline']}: undefined")
            continue
        iv = row["interval"]
        stat = f" [{iv[0]:+.3f}, {iv[1]:+.3f}]" if iv else ""
        if row["p_value"] is not None:
            stat += (", Holm p=" if prop.get("findings") else ", p=") + f"{row['p_value']:.3g}"
        parts.append(f"vs {row['baseline']}: {row['outcome']} ({row['improvement']:+.3f}{stat})")
    top = rows[0]["strategy"]
    design = design_from_cell(top, prop["cells"][top])
    if len([r for r in rows if r["outcome"] == "better"]) < len(rows):
        head = "not clearly better than every alternative"
    elif design.regularize_weak and design.regularize_strong:
        head = "trust transfers better with both models regularized"
    else:
        head = f"trust transfers better with {top}"
    return f"{primary}, {top} " + "; ".join(parts) + f" -> {head}"


def answer(prop: Mapping[str, Any], boot: Mapping[str, Any] | None = None) -> str | None:
    """The paper's question for this property answered in one sentence from the same comparisons as
    ``verdict`` (the findings' Holm-corrected verdicts when results.json has them); None without comparisons."""
    rows = [r for r in comparisons(prop, boot) if r["improvement"] is not None]
    if not rows:
        return None
    primary, top = prop["primary_trust_metric"], rows[0]["strategy"]
    beaten = [r["baseline"] for r in rows if r["outcome"] == "better"]
    others = [r["baseline"] for r in rows if r["outcome"] != "better"]
    if others:
        return f"no clear gain: {top} is not significantly better than {' or '.join(others)} on {primary}"
    design = design_from_cell(top, prop["cells"][top])
    how = "with both models regularized" if design.regularize_weak and design.regularize_strong else f"with {top}"
    return f"trust transfers better {how}: {top} beats {' and '.join(beaten)} on {primary}"


def caption(prop: Mapping[str, Any], boot: Mapping[str, Any] | None) -> str:
    n = len(run_seeds(prop))
    if prop.get("findings"):
        resamples = prop["findings"].get("resamples")
        return (f"[lo, hi]: 95% bootstrap interval over {n} seed(s) x test examples ({resamples} resamples; live "
                "scores: t over seeds), cut at the score's possible range (a rate's [0, 1]). Gap recovered: ratio of mean gaps, undefined unless the strategy's own "
                "ceiling - weak gap is resolved (why not: the notes below).")
    if n >= 2:
        return f"[lo, hi]: 95% t-interval over {n} seeds"
    if boot and "resamples" in boot:
        return f"[lo, hi]: 95% bootstrap interval over test examples (1 seed, {boot['resamples']} resamples)"
    if boot and boot.get("unavailable"):
        return f"1 seed; no interval: {boot['unavailable']}"
    return "1 seed; run `w2sbench report RUN` for bootstrap intervals over test examples"
