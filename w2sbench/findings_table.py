"""The findings table: one screen that answers the paper's question per trust property.

Rendered at the end of ``w2sbench run`` and by ``w2sbench report``; it fits 80 columns (each comparison is a
heading line with its scores' rows under it; descriptions wrap, identifiers never do) and reads the same in a
log file.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping
from typing import Any

from rich.markup import escape

from w2sbench.findings import MAX_STDERR, underpowered_scores
from w2sbench.report_values import answer
from w2sbench.stats import gap_unresolved_reason

__all__ = ["render_findings", "format_effect", "format_p", "accuracy_gap_line", "print_paragraph"]

_VERDICT_STYLE = {"better": "green", "worse": "red"}


def print_paragraph(console: Any, text: str, style: str = "") -> None:
    """``text`` wrapped at the console's width between words (never inside a name, a number or a path, never at
    a hyphen), with no trailing blanks: log files get the same lines as the terminal."""
    lines = textwrap.wrap(text, width=console.width, break_long_words=False, break_on_hyphens=False) or [""]
    for line in lines:
        console.print(f"[{style}]{escape(line)}[/]" if style else escape(line), soft_wrap=True, highlight=False)


def format_effect(row: Mapping[str, Any]) -> str:
    """``+0.012 [-0.004, +0.028]``; ``undefined`` without an effect."""
    if row.get("effect") is None:
        return "undefined"
    ci = row.get("ci95")
    return f"{row['effect']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")


def format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def accuracy_gap_line(name: str, findings: Mapping[str, Any]) -> str:
    """One line on the property's accuracy gap (ceiling - weak) and whether it is resolved. It names the
    reference pair and the strategies whose gap recovered it decides (``accuracy_gap.strategies``; absent in
    older results): a strategy with other references (weak-reg, ceiling-reg) has its own gap."""
    gap = findings.get("accuracy_gap")
    users = (gap or {}).get("strategies")
    scope = "accuracy gap recovered against weak and ceiling" + (
        f" (the references of {', '.join(users)})" if users else " (the references of no strategy)" if users == [] else "")
    if not gap or gap.get("gap") is None:
        return f"{name}: accuracy gap ceiling - weak undefined, so {scope} is undefined"
    ci = gap.get("ci95")
    text = f"{name}: accuracy gap ceiling - weak {gap['gap']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
    reason = gap_unresolved_reason(gap["gap"], ci, True) or (None if gap.get("resolved") else "not resolved")
    if reason:
        return text + f": {reason}, so {scope} is undefined"
    return text + f": resolved, so {scope} is defined"


# One comparison is a heading line and a row per score under it: a row is 74 columns at most (the longest
# verdict with its footnote mark), so nothing wraps at 80 whatever the strategies are called, and a log file
# reads the same as the terminal (plain lines, no trailing blanks).
_SCORE, _EFFECT, _P = 12, 25, 8
_WIDTH = _SCORE + _EFFECT + _P + 2 + len("no significant difference *")


def _row(score: str, effect: str, p: str, verdict: str) -> str:
    return f"{score:<{_SCORE}}{effect:>{_EFFECT}}{p:>{_P}}  {verdict}"


def _table_lines(name: str, prop: Mapping[str, Any]) -> list[str]:
    """The property's findings as rich-markup lines: title, header, rule, then per comparison its heading and
    its trust and accuracy rows."""
    primary = prop["primary_trust_metric"]
    higher = next((m["higher_is_better"] for m in prop["metrics"] if m["name"] == primary), True)
    header = _row("comparison", "effect [95% CI]", "Holm p", "verdict")
    title = escape(f"{name}: trust = {primary} ({'higher' if higher else 'lower'} is better)")
    lines = ["", title, header, "─" * _WIDTH]
    heading = None
    for row in prop["findings"]["comparisons"]:
        pair = f"{row['strategy']} vs {row['baseline']}"
        if pair != heading:
            lines.append(f"[bold]{escape(pair)}[/]")
            heading = pair
        verdict = row.get("verdict") or "undefined"
        style = _VERDICT_STYLE.get(verdict)
        mark = " *" if row.get("underpowered") else ""  # footnote: the underpowered lines under the table
        cells = _row("  trust" if row["kind"] == "trust" else "  accuracy", format_effect(row), format_p(row.get("p_holm")), "")
        lines.append(cells + (f"[{style}]{verdict}[/]" if style else verdict) + mark)
    return lines


def render_findings(results: Mapping[str, Any], console: Any) -> int:
    """Print the findings of every property that has them; returns how many properties were shown."""
    shown = [(n, p) for n, p in results["properties"].items() if p.get("findings")]
    if not shown:
        return 0
    n_tests = sum(r.get("p_value") is not None for _, p in shown for r in p["findings"]["comparisons"])
    seeds = results.get("settings", {}).get("seeds", [])
    for name, prop in shown:
        for line in _table_lines(name, prop):
            console.print(line, overflow="fold", highlight=False)
        conclusion = answer(prop)
        if conclusion:
            print_paragraph(console, f"{name}: {conclusion}", "bold")
        print_paragraph(console, accuracy_gap_line(name, prop["findings"]))
        for metric, se in underpowered_scores(prop).items():
            print_paragraph(
                console,
                f"* {name}: {metric} is underpowered (standard error up to {se:.3f} > {MAX_STDERR}); "
                "a 'no significant difference' on it is not evidence of none: raise the property's "
                "test/evaluation size (or the seeds, for live scores).",
            )
    resamples = shown[0][1]["findings"].get("resamples")
    print_paragraph(
        console,
        f"effect: first minus second, oriented so positive means the first is better. 95% intervals and p-values: "
        f"bootstrap over {len(seeds)} seed(s) x test examples ({resamples} resamples; live scores: paired t-test "
        f"over seeds); intervals per comparison, p Holm-corrected over the run's {n_tests} comparisons; verdict "
        f"at 0.05.",
        "dim",
    )
    return len(shown)
