"""The findings table: one screen that answers the paper's question per trust property.

Rendered at the end of ``w2sbench run`` and by ``w2sbench report``; it fits 80 columns (descriptions and
numbers wrap, identifiers never do) and reads the same in a log file.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from w2sbench.findings import MAX_STDERR, underpowered_scores

__all__ = ["render_findings", "format_effect", "format_p", "accuracy_gap_line"]

_VERDICT_STYLE = {"better": "green", "worse": "red"}


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
    """One line on the property's accuracy gap (ceiling - weak) and whether it is resolved."""
    gap = findings.get("accuracy_gap")
    if not gap or gap.get("gap") is None:
        return f"{name}: accuracy gap ceiling - weak undefined"
    ci = gap.get("ci95")
    text = f"{name}: accuracy gap ceiling - weak {gap['gap']:+.3f}" + (f" [{ci[0]:+.3f}, {ci[1]:+.3f}]" if ci else "")
    if gap.get("resolved"):
        return text + ": resolved, gap recovered is defined"
    return text + ": not resolved, gap recovered undefined (the strong model does not measurably beat the weak one)"


def _id_width(prop: Mapping[str, Any]) -> int:
    return max((len(c) for c in prop["cells"]), default=8)


def _table(name: str, prop: Mapping[str, Any]) -> Any:
    from rich import box
    from rich.table import Table

    primary = prop["primary_trust_metric"]
    higher = next((m["higher_is_better"] for m in prop["metrics"] if m["name"] == primary), True)
    table = Table(
        title=f"{name}: trust = {primary} ({'higher' if higher else 'lower'} is better)",
        title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False, collapse_padding=True,
    )
    # Identifiers wrap only between words ("weak-wts-tft vs" / "ceiling-reg"), never inside a name.
    table.add_column("comparison", min_width=_id_width(prop) + 3, overflow="fold")
    table.add_column("score", no_wrap=True)
    table.add_column("effect [95% CI]", justify="right", no_wrap=True)
    table.add_column("Holm p", justify="right", no_wrap=True)
    table.add_column("verdict", min_width=10)
    for row in prop["findings"]["comparisons"]:
        verdict = row.get("verdict") or "undefined"
        style = _VERDICT_STYLE.get(verdict)
        mark = " *" if row.get("underpowered") else ""  # footnote: the underpowered lines under the table
        table.add_row(
            f"{row['strategy']} vs {row['baseline']}",
            "trust" if row["kind"] == "trust" else "accuracy",
            format_effect(row),
            format_p(row.get("p_holm")),
            (f"[{style}]{verdict}[/]" if style else verdict) + mark,
        )
    return table


def render_findings(results: Mapping[str, Any], console: Any) -> int:
    """Print the findings of every property that has them; returns how many properties were shown."""
    from rich.markup import escape

    shown = [(n, p) for n, p in results["properties"].items() if p.get("findings")]
    if not shown:
        return 0
    n_tests = sum(r.get("p_value") is not None for _, p in shown for r in p["findings"]["comparisons"])
    seeds = results.get("settings", {}).get("seeds", [])
    for name, prop in shown:
        console.print(_table(name, prop))
        console.print(escape(accuracy_gap_line(name, prop["findings"])), overflow="fold")
        for metric, se in underpowered_scores(prop).items():
            console.print(
                escape(f"* {name}: {metric} is underpowered (standard error up to {se:.3f} > {MAX_STDERR}); "
                       "a 'no significant difference' on it is not evidence of none: raise the property's "
                       "test/evaluation size (or the seeds, for live scores)."),
                overflow="fold",
            )
    resamples = shown[0][1]["findings"].get("resamples")
    console.print(
        escape(
            f"effect: first minus second, oriented so positive means the first is better. 95% intervals and p-values: "
            f"bootstrap over {len(seeds)} seed(s) x test examples ({resamples} resamples; live scores: paired t-test "
            f"over seeds); p Holm-corrected over the run's {n_tests} comparisons; verdict at 0.05."
        ),
        style="dim",
    )
    return len(shown)
