"""What a report shows for one score: its interval, the ratios, the paper's comparison and verdict.

Shared by the terminal tables (report.py, report_tables.py) and the plots (plots.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from w2sbench.stats import improvement, paired_test, summarize

__all__ = [
    "COMPARISONS",
    "format_summary",
    "format_interval",
    "is_percent",
    "run_seeds",
    "score_interval",
    "ratio_interval",
    "comparisons",
    "verdict",
    "caption",
]

# The paper's question: does regularizing both models beat plain transfer and regularizing the weak model only?
COMPARISONS = (("weak-wts-tft", "vanilla"), ("weak-wts-tft", "weak-tft"))


# --------------------------------------------------------------------------- formatting


def format_summary(summary: Mapping[str, Any] | None, percent: bool = False) -> str:
    """``mean ± std`` (or ``mean [lo, hi]`` interval) for a summary; ``undefined`` when there is no value."""
    if not summary or summary.get("mean") is None:
        return "undefined"
    scale = 100.0 if percent else 1.0
    text = f"{summary['mean'] * scale:.1f}" if percent else f"{summary['mean']:.3f}"
    if summary.get("std") is not None:
        text += f" ± {summary['std'] * scale:.1f}" if percent else f" ± {summary['std']:.3f}"
    return text


def format_interval(value: Mapping[str, Any] | None, percent: bool = False) -> str:
    """``mean [lo, hi]`` for a ``score_interval`` result; ``undefined`` when there is no value."""
    if not value or value.get("mean") is None:
        return "undefined"
    scale, fmt = (100.0, "{:.1f}") if percent else (1.0, "{:.3f}")
    text = fmt.format(value["mean"] * scale)
    if value.get("lo") is not None and value.get("hi") is not None:
        text += f" [{fmt.format(value['lo'] * scale)}, {fmt.format(value['hi'] * scale)}]"
    return text


def is_percent(metric: Mapping[str, Any]) -> bool:
    return metric["kind"] == "task" or metric["name"].endswith("accuracy")


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
    """Mean and 95% interval of one cell's score: over seeds, else the bootstrap over test examples."""
    summary = prop["cells"][cell]["summary"].get(metric)
    stored = (prop["cells"][cell].get("intervals") or {}).get(metric)
    if stored is not None and summary and summary.get("mean") is not None:
        n = summary.get("n") or 1
        method = "bootstrap over test examples" if n == 1 else f"bootstrap over {n} seeds x test examples"
        return {"mean": summary["mean"], "lo": stored[0], "hi": stored[1], "method": method}
    b = ((boot or {}).get("cells") or {}).get(cell, {}).get(metric)
    return _interval_from(summary, b, "bootstrap over test examples")


def ratio_interval(prop: Mapping[str, Any], strategy: str, metric: str, boot: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Mean and 95% interval of a strategy's gap-recovered ratio; mean None (undefined) when the ceiling
    does not beat the weak model."""
    summary = prop["cells"][strategy].get("gap_recovered", {}).get(metric, {}).get("summary")
    if summary and summary.get("method") == "ratio of mean gaps":  # written with the findings: resolved gaps only
        ci = summary.get("ci95") or [None, None]
        return {"mean": summary.get("mean"), "lo": ci[0], "hi": ci[1], "method": "ratio of mean gaps; bootstrap interval"}
    b = ((boot or {}).get("gap_recovered") or {}).get(strategy, {}).get(metric)
    return _interval_from(summary, b, "bootstrap over test examples")


def comparisons(prop: Mapping[str, Any], boot: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """weak-wts-tft against vanilla and weak-tft on the primary trust score: improvement (positive is
    better), its 95% interval, and a paired t-test over seeds (or a paired bootstrap with one seed)."""
    primary = prop["primary_trust_metric"]
    info = next((m for m in prop["metrics"] if m["name"] == primary), None)
    if info is None:
        return []
    higher = info["higher_is_better"]
    seeds = run_seeds(prop)
    rows = []
    for a, b in COMPARISONS:
        if a not in prop["cells"] or b not in prop["cells"]:
            continue
        va = [prop["cells"][a]["seeds"].get(s, {}).get(primary) for s in seeds]
        vb = [prop["cells"][b]["seeds"].get(s, {}).get(primary) for s in seeds]
        test = paired_test(va, vb)
        gains = [improvement(x, y, higher) for x, y in zip(va, vb, strict=True)]
        row: dict[str, Any] = {
            "strategy": a,
            "baseline": b,
            "metric": primary,
            "higher_is_better": higher,
            "strategy_mean": prop["cells"][a]["summary"].get(primary, {}).get("mean"),
            "baseline_mean": prop["cells"][b]["summary"].get(primary, {}).get("mean"),
            "improvement": improvement(test["diff"], 0.0, higher) if test["diff"] is not None else None,
            "interval": None,
            "p_value": test["p_value"],
            "n_seeds": test["n"],
            "method": None,
        }
        if test["n"] >= 2:
            row["interval"] = summarize(gains)["ci95"]
            row["method"] = f"paired t-test over {test['n']} seeds"
        else:
            diff = ((boot or {}).get("differences") or {}).get(f"{a} - {b}")
            if diff is not None:
                # Stored as a - b in the metric's own units; orient it so positive means a is better.
                row["interval"] = list(diff) if higher else [-diff[1], -diff[0]]
                row["method"] = "paired bootstrap over test examples (1 seed)"
        iv = row["interval"]
        if row["improvement"] is None:
            row["outcome"] = "undefined"
        elif row["p_value"] is not None:
            row["outcome"] = ("better" if row["improvement"] > 0 else "worse") if row["p_value"] < 0.05 else "no significant difference"
        elif iv is not None:
            row["outcome"] = "better" if iv[0] > 0 else "worse" if iv[1] < 0 else "no significant difference"
        else:
            row["outcome"] = "better" if row["improvement"] > 0 else "worse" if row["improvement"] < 0 else "equal"
            row["outcome"] += " (no uncertainty estimate)"
        rows.append(row)
    return rows


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
            stat += f", p={row['p_value']:.3g}"
        parts.append(f"vs {row['baseline']}: {row['outcome']} ({row['improvement']:+.3f}{stat})")
    wins = [r for r in rows if r["outcome"] == "better"]
    head = (
        "trust transfers better with both models regularized"
        if len(wins) == len(rows)
        else "not clearly better than every alternative"
    )
    return f"{primary}, weak-wts-tft " + "; ".join(parts) + f" -> {head}"


def caption(prop: Mapping[str, Any], boot: Mapping[str, Any] | None) -> str:
    n = len(run_seeds(prop))
    if prop.get("findings"):
        return (f"[lo, hi]: 95% bootstrap interval over {n} seed(s) x test examples (live scores: t over seeds); "
                "gap recovered: ratio of mean gaps, undefined unless ceiling - weak is resolved")
    if n >= 2:
        return f"[lo, hi]: 95% t-interval over {n} seeds"
    if boot and "resamples" in boot:
        return f"[lo, hi]: 95% bootstrap interval over test examples (1 seed, {boot['resamples']} resamples)"
    if boot and boot.get("unavailable"):
        return f"1 seed; no interval: {boot['unavailable']}"
    return "1 seed; run `w2sbench report RUN` for bootstrap intervals over test examples"
