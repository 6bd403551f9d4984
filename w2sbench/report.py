"""Render a results document as rich tables (one per trust property) or plain JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["render_tables", "format_summary", "verdict"]


def format_summary(summary: Mapping[str, Any] | None, percent: bool = False) -> str:
    """``mean ± std`` (or ``mean [lo, hi]`` interval) for a summary; ``undefined`` when there is no value."""
    if not summary or summary.get("mean") is None:
        return "undefined"
    scale = 100.0 if percent else 1.0
    text = f"{summary['mean'] * scale:.1f}" if percent else f"{summary['mean']:.3f}"
    if summary.get("std") is not None:
        text += f" ± {summary['std'] * scale:.1f}" if percent else f" ± {summary['std']:.3f}"
    return text


def verdict(prop: Mapping[str, Any]) -> str:
    """One line answering the paper's question for this property."""
    primary = prop["primary_trust_metric"]
    info = next((m for m in prop["metrics"] if m["name"] == primary), None)
    cells = prop["cells"]
    if info is None or "vanilla" not in cells or "weak-wts-tft" not in cells:
        return ""
    def mean(cell: str) -> float | None:
        return cells[cell]["summary"].get(primary, {}).get("mean")
    v, w = mean("vanilla"), mean("weak-wts-tft")
    if v is None or w is None:
        return ""
    better = (w > v) if info["higher_is_better"] else (w < v)
    return (
        f"{primary}: weak-wts-tft {w:.3f} vs vanilla {v:.3f} -> trust "
        + ("transfers better with both models regularized" if better else "does not improve over vanilla")
    )


def render_tables(results: Mapping[str, Any], console: Any) -> None:
    from rich.table import Table

    settings = results["settings"]
    console.print(
        f"[bold]w2sbench[/] {settings['weak']} -> {settings['strong']}  "
        f"(fine-tune {settings['finetune_weak']}:{settings['finetune_strong']}, seeds {settings['seeds']}, "
        f"device {settings['device']})"
    )
    for name, prop in results["properties"].items():
        metrics = prop["metrics"]
        primary = prop["primary_trust_metric"]
        table = Table(title=f"{name}: {prop.get('description', '')}", title_justify="left")
        table.add_column("cell", no_wrap=True)
        for m in metrics:
            arrow = "↑" if m["higher_is_better"] else "↓"
            style = "bold" if m["name"] == primary else None
            # Multi-line headers keep wide metric names readable in an 80-column terminal.
            table.add_column(m["name"].replace("_", " ") + f" {arrow}", justify="right", style=style, overflow="fold")
        table.add_column("PGR (accuracy)", justify="right", overflow="fold")
        table.add_column(f"trust gap recovered ({primary.replace('_', ' ')})", justify="right", overflow="fold")
        vanilla = prop["cells"].get("vanilla", {}).get("summary", {})
        for cell, entry in prop["cells"].items():
            row = [cell if entry["role"] == "strategy" else f"[dim]{cell}[/]"]
            for m in metrics:
                s = entry["summary"].get(m["name"])
                text = format_summary(s, percent=m["kind"] == "task" or m["name"].endswith("accuracy"))
                if entry["role"] == "strategy" and cell != "vanilla" and s and s.get("mean") is not None:
                    ref = vanilla.get(m["name"], {}).get("mean")
                    if ref is not None and abs(s["mean"] - ref) > 1e-9:
                        good = (s["mean"] > ref) == m["higher_is_better"]
                        text = f"[{'green' if good else 'red'}]{text}[/]"
                row.append(text)
            gaps = entry.get("gap_recovered", {})
            row.append(format_summary(gaps.get("accuracy", {}).get("summary")) if gaps else "")
            row.append(format_summary(gaps.get(primary, {}).get("summary")) if gaps else "")
            table.add_row(*row)
        console.print(table)
        line = verdict(prop)
        if line:
            console.print(f"  {line}")
    timing = results.get("timing", {})
    console.print(
        f"[dim]{timing.get('seconds', 0):.1f} s; stages computed {timing.get('stages_computed', 0)}, "
        f"served from cache {timing.get('stages_cached', 0)}[/]"
    )
