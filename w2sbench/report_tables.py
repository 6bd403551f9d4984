"""The per-cell tables of `w2sbench report`: every score of every cell, scores as rows and cells as
columns, split into several tables when the cells do not fit the console (80 columns in a log file)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from w2sbench.findings import plain_baseline
from w2sbench.findings_table import print_paragraph
from w2sbench.report_values import (
    caption,
    comparisons,
    format_interval,
    ratio_interval,
    ratio_reason,
    score_interval,
    strategy_designs,
    verdict,
)

__all__ = ["score_tables", "old_comparisons"]


def _score_rows(prop: Mapping[str, Any], boot: Mapping[str, Any]) -> list[tuple[str, dict[str, str], dict[str, str]]]:
    """(row label, {cell: text}, {cell: why undefined}) for every score and the two gap-recovered ratios; text is
    two lines. An undefined ratio has no text but its reason (``ratio_reason``: its own reference pair's gap)."""
    primary = prop["primary_trust_metric"]
    base = plain_baseline(strategy_designs(prop))  # plain transfer (vanilla): the colours compare with it
    reference = prop["cells"][base]["summary"] if base else {}
    rows: list[tuple[str, dict[str, str], dict[str, str]]] = []
    for m in prop["metrics"]:
        label = m["name"] + (" ↑" if m["higher_is_better"] else " ↓") + ("\n(primary trust score)" if m["name"] == primary else "")
        texts = {}
        for cell, entry in prop["cells"].items():
            value = score_interval(prop, cell, m["name"], boot)
            text = format_interval(value).replace(" [", "\n[", 1)
            ref = reference.get(m["name"], {}).get("mean")
            if entry["role"] == "strategy" and cell != base and value["mean"] is not None and ref is not None and abs(value["mean"] - ref) > 1e-9:
                good = (value["mean"] > ref) == m["higher_is_better"]
                text = f"[{'green' if good else 'red'}]{text}[/]"
            texts[cell] = text
        rows.append((label, texts, {}))
    for metric in dict.fromkeys(("accuracy", primary)):
        texts, reasons = {}, {}
        for cell, entry in prop["cells"].items():
            if metric not in entry.get("gap_recovered", {}):
                continue
            value = ratio_interval(prop, cell, metric, boot)
            reason = ratio_reason(prop, cell, metric) if value["mean"] is None else None
            if reason is None:
                texts[cell] = format_interval(value).replace(" [", "\n[", 1)
            else:
                reasons[cell] = reason
        rows.append((f"gap recovered:\n{metric}", texts, reasons))
    return rows


def _mark_undefined(rows: list[tuple[str, dict[str, str], dict[str, str]]], chunks: list[list[str]]) -> list[str]:
    """Write ``undefined (a)`` into each undefined ratio's cell, lettered in reading order (table by table, row by
    row); return the notes, ``(a) REASON``: ratios undefined for the same reason share one."""
    notes: list[str] = []
    for chunk in chunks:
        for _, texts, reasons in rows:
            for cell in chunk:
                if cell in reasons:
                    if reasons[cell] not in notes:
                        notes.append(reasons[cell])
                    texts[cell] = f"undefined ({_mark(notes.index(reasons[cell]))})"
    return [f"({_mark(i)}) {reason}" for i, reason in enumerate(notes)]


def _mark(index: int) -> str:
    """a, b, ..., z, then aa, ab, ...: the note marks."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    return letters[index] if index < len(letters) else _mark(index // len(letters) - 1) + letters[index % len(letters)]


def score_tables(name: str, prop: Mapping[str, Any], boot: Mapping[str, Any], console: Any) -> None:
    from rich import box
    from rich.markup import escape
    from rich.table import Table

    rows = _score_rows(prop, boot)
    cells = list(prop["cells"])
    label_width = max(len(line) for label, _, _ in rows for line in label.splitlines())
    texts = [line for _, t, _ in rows for v in t.values() for line in _plain(v).splitlines()]
    undefined = len("undefined (aa)") if any(r for _, _, r in rows) else 0
    cell_width = max([len(c) for c in cells] + [len(line) for line in texts] + [undefined])
    per_table = max(1, (console.width - label_width - 1) // (cell_width + 3))  # 2 spaces of padding + 1 divider
    chunks = [cells[i : i + per_table] for i in range(0, len(cells), per_table)]
    notes = _mark_undefined(rows, chunks)
    for k, chunk in enumerate(chunks):
        part = f" ({k + 1}/{len(chunks)})" if len(chunks) > 1 else ""
        # the title as a paragraph of the console's width: a table's title wraps at the table's (narrower) width
        print_paragraph(console, f"{name}: {prop.get('description', '')}{part}", "bold")
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
        table.add_column("score", no_wrap=True)
        for cell in chunk:
            header = cell if prop["cells"][cell]["role"] == "strategy" else f"[dim]{cell}[/]"
            table.add_column(header, justify="right", overflow="fold")
        for label, row, reasons in rows:
            if not any(c in row or c in reasons for c in chunk):
                continue  # a gap-recovered row of baseline cells only: they have no ratio
            table.add_row(escape(label), *[row.get(c, "") for c in chunk])
        _print_without_trailing_blanks(console, table)
    # the caption and the notes as paragraphs of the console's width (a caption is as narrow as its table)
    print_paragraph(console, caption(prop, boot), "dim")
    for note in notes:
        print_paragraph(console, note)


def _print_without_trailing_blanks(console: Any, table: Any) -> None:
    """The table line by line, each without the blanks rich pads it with: a log file gets no trailing blanks."""
    from rich.text import Text

    for line in console.render_lines(table, console.options, pad=False):
        text = Text.assemble(*[(segment.text, segment.style) for segment in line])
        text.rstrip()
        console.print(text, soft_wrap=True, highlight=False)


def _plain(text: str) -> str:
    from rich.text import Text

    return Text.from_markup(text).plain


def old_comparisons(name: str, prop: Mapping[str, Any], boot: Mapping[str, Any], console: Any) -> None:
    """Results written before the findings (no ``findings`` entry): the former comparison table."""
    from rich.table import Table

    rows = comparisons(prop, boot)
    primary = prop["primary_trust_metric"]
    if rows:
        print_paragraph(console, f"{name}: does {rows[0]['strategy']} beat the alternatives on {primary.replace('_', ' ')}?", "bold")
        comp = Table()
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
        print_paragraph(console, f"verdict: {line}")
