"""The per-cell tables of `w2sbench report`: every score of every cell, scores as rows and cells as
columns, split into several tables when the cells do not fit the console (80 columns in a log file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from w2sbench.findings import plain_baseline
from w2sbench.report_values import (
    caption,
    comparisons,
    format_interval,
    is_percent,
    ratio_interval,
    score_interval,
    strategy_designs,
    verdict,
)

__all__ = ["score_tables", "old_comparisons"]


def _score_rows(prop: Mapping[str, Any], boot: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(row label, {cell: text}) for every score and the two gap-recovered ratios; text is two lines."""
    primary = prop["primary_trust_metric"]
    base = plain_baseline(strategy_designs(prop))  # plain transfer (vanilla): the colours compare with it
    reference = prop["cells"][base]["summary"] if base else {}
    rows = []
    for m in prop["metrics"]:
        label = m["name"] + (" ↑" if m["higher_is_better"] else " ↓") + ("\n(primary trust score)" if m["name"] == primary else "")
        texts = {}
        for cell, entry in prop["cells"].items():
            value = score_interval(prop, cell, m["name"], boot)
            text = format_interval(value, percent=is_percent(m)).replace(" [", "\n[", 1)
            ref = reference.get(m["name"], {}).get("mean")
            if entry["role"] == "strategy" and cell != base and value["mean"] is not None and ref is not None and abs(value["mean"] - ref) > 1e-9:
                good = (value["mean"] > ref) == m["higher_is_better"]
                text = f"[{'green' if good else 'red'}]{text}[/]"
            texts[cell] = text
        rows.append((label, texts))
    for metric in dict.fromkeys(("accuracy", primary)):
        texts = {
            cell: format_interval(ratio_interval(prop, cell, metric, boot)).replace(" [", "\n[", 1)
            for cell, entry in prop["cells"].items() if metric in entry.get("gap_recovered", {})
        }
        rows.append((f"gap recovered:\n{metric}", texts))
    return rows


def score_tables(name: str, prop: Mapping[str, Any], boot: Mapping[str, Any], console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    rows = _score_rows(prop, boot)
    cells = list(prop["cells"])
    label_width = max(len(line) for label, _ in rows for line in label.splitlines())
    cell_width = max([len(c) for c in cells] + [len(line) for _, t in rows for v in t.values() for line in _plain(v).splitlines()])
    per_table = max(1, (console.width - label_width - 1) // (cell_width + 3))  # 2 spaces of padding + 1 divider
    chunks = [cells[i : i + per_table] for i in range(0, len(cells), per_table)]
    for k, chunk in enumerate(chunks):
        part = f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        table = Table(title=escape(f"{name}: {prop.get('description', '')}{part}"), title_justify="left",
                      caption=escape(caption(prop, boot)) if k == len(chunks) - 1 else None, caption_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("score", no_wrap=True)
        for cell in chunk:
            header = cell if prop["cells"][cell]["role"] == "strategy" else f"[dim]{cell}[/]"
            table.add_column(header, justify="right", overflow="fold")
        for label, texts in rows:
            table.add_row(escape(label), *[texts.get(c, "") for c in chunk])
        console.print(table)


def _plain(text: str) -> str:
    from rich.text import Text

    return Text.from_markup(text).plain


def old_comparisons(name: str, prop: Mapping[str, Any], boot: Mapping[str, Any], console: Any) -> None:
    """Results written before the findings (no ``findings`` entry): the former comparison table."""
    from rich.markup import escape
    from rich.table import Table

    rows = comparisons(prop, boot)
    primary = prop["primary_trust_metric"]
    if rows:
        comp = Table(title=f"{name}: does {rows[0]['strategy']} beat the alternatives on {primary.replace('_', ' ')}?", title_justify="left")
        for col in ("comparison", "improvement [95% CI]", "p-value", "outcome"):
            comp.add_column(col, justify="right" if col in {"improvement [95% CI]", "p-value"} else "left", overflow="fold")
        for r in rows:
            iv = r["interval"]
            gain = "undefined" if r["improvement"] is None else f"{r['improvement']:+.3f}" + (f" [{iv[0]:+.3f}, {iv[1]:+.3f}]" if iv else "")
            p = "" if r["p_value"] is None else f"{r['p_value']:.3g}"
            comp.add_row(f"{r['strategy']} vs {r['baseline']}", gain, p, r["outcome"])
        console.print(comp)
    line = verdict(prop, boot)
    if line:
        console.print(f"  [bold]verdict[/] {escape(line)}")
