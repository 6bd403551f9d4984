"""Tables the command line prints: the end of `w2sbench run` and `w2sbench list`.

Every table reads in an 80-column terminal and in a log file (rich lays out a pipe at 80 columns):
identifiers (names a user types) never wrap or truncate; descriptions wrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from w2sbench.findings_table import render_findings
from w2sbench.report import render_tables
from w2sbench.training.config import FINETUNE_MODES, default_train_config
from w2sbench.values import TRAIN_RANGES, ranges_for

__all__ = ["end_screen", "list_metrics", "list_column", "option_table"]


def end_screen(console: Any, results: Mapping[str, Any], run_dir: Path) -> None:
    """The end of `w2sbench run`: the findings table and where the full tables are (one screen)."""
    from rich.markup import escape


    if not render_findings(results, console):
        render_tables(results, console)  # a run without findings (bootstrap off): the per-cell tables
    timing = results.get("timing", {})
    console.print(
        f"[dim]{timing.get('seconds', 0):.1f} s; stages computed {timing.get('stages_computed', 0)}, served from cache "
        f"{timing.get('stages_cached', 0)}[/]\n[dim]results: {escape(str(run_dir / 'results.json'))}; every score per "
        f"cell with intervals: w2sbench report {escape(str(run_dir))}[/]"
    )


def list_metrics(console: Any, plugins: Any) -> None:
    """One table per trust property (its metrics as rows), so no metric name is ever cut at 80 columns."""
    from rich.markup import escape
    from rich.table import Table

    for name, m in plugins.trust_properties.items.items():
        owner = plugins.trust_properties.owners[name]
        table = Table(title=escape(f"{name}: {m.description} (plugin {owner})"), title_justify="left")
        table.add_column = list_column(table)  # type: ignore[method-assign]
        for col in ("metric", "better", "description"):
            table.add_column(col)
        for x in m.metrics:
            primary = " (primary trust score)" if x.name == m.primary else ""
            table.add_row(escape(x.name), "higher" if x.higher_is_better else "lower", escape(x.description) + primary)
        console.print(table)


_IDENTIFIER_COLUMNS = {"metric", "better", "pair", "weak", "strong", "family", "name", "strategy", "trust property", "primary", "exporter", "plugin"}


def list_column(table: Any):  # noqa: ANN202
    """Columns for `w2sbench list`: identifiers (names a user types) never wrap or truncate; others wrap."""
    add = table.add_column

    def column(header: str, **kwargs: object) -> None:
        if header in _IDENTIFIER_COLUMNS:
            add(header, no_wrap=True, **kwargs)
        else:
            add(header, overflow="fold", ratio=1 if header == "description" else None, **kwargs)

    return column


def option_table(metrics: Iterable[Any]) -> list[tuple[str, str, str]]:
    """(``--option``/``--train`` name, default, valid values) for every trust property and fine-tune mode."""
    rows = []
    for metric in metrics:
        for key, rng in ranges_for(metric.default_options, metric.option_ranges).items():
            rows.append((f"--option {metric.name}.{key}", repr(metric.default_options[key]), rng.describe()))
    for mode in FINETUNE_MODES:
        config = default_train_config(mode).as_dict()
        for key, rng in TRAIN_RANGES.items():
            rows.append((f"--train {mode}.{key}", repr(config[key]), rng.describe()))
    return rows
