"""Tables the command line prints: the end of `w2sbench run` and `w2sbench list`.

Every table reads in an 80-column terminal and in a log file (rich lays out a pipe at 80 columns):
identifiers (names a user types) never wrap or truncate; descriptions wrap.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from w2sbench.findings_table import print_paragraph, render_findings
from w2sbench.report import render_tables, timing_lines
from w2sbench.training.config import FINETUNE_MODES, default_train_config
from w2sbench.values import TRAIN_RANGES, ranges_for

__all__ = ["end_screen", "list_metrics", "ListTable", "option_table", "list_options"]


def end_screen(console: Any, results: Mapping[str, Any], run_dir: Path) -> None:
    """The end of `w2sbench run`: the findings table and where the full tables are (one screen)."""
    if not render_findings(results, console):
        render_tables(results, console)  # a run without findings (bootstrap off): the per-cell tables
    for line in timing_lines(results.get("timing") or {}):
        print_paragraph(console, line, "dim")
    print_paragraph(console, f"results: {run_dir / 'results.json'}", "dim")
    print_paragraph(console, f"every score per cell with intervals: w2sbench report {run_dir}", "dim")


_IDENTIFIER_COLUMNS = {"metric", "better", "pair", "weak", "strong", "family", "name", "strategy", "trust property", "primary", "exporter", "plugin"}


class ListTable(Table):
    """A `w2sbench list` table. Identifier columns (names a user types: ``identifiers``, by default the
    headers in ``_IDENTIFIER_COLUMNS``) never wrap or truncate; other columns wrap, a ``description`` column
    taking the spare width. Cells are plain text, never rich markup (``hf:<org>/<name>[@revision]``)."""

    def __init__(self, *args: Any, identifiers: Iterable[str] = _IDENTIFIER_COLUMNS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.identifiers = frozenset(identifiers)

    def add_column(self, header: Any = "", *args: Any, **kwargs: Any) -> None:
        if header in self.identifiers:
            kwargs.setdefault("no_wrap", True)
        else:
            kwargs.setdefault("overflow", "fold")
            kwargs.setdefault("ratio", 1 if header == "description" else None)
        super().add_column(header, *args, **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(None if c is None else escape(str(c)) for c in cells), **kwargs)


def list_metrics(console: Any, plugins: Any) -> None:
    """One table per trust property (its metrics as rows), so no metric name is ever cut at 80 columns."""
    for name, m in plugins.trust_properties.items.items():
        owner = plugins.trust_properties.owners[name]
        table = ListTable(title=escape(f"{name}: {m.description} (plugin {owner})"), title_justify="left")
        for col in ("metric", "better", "description"):
            table.add_column(col)
        for x in m.metrics:
            primary = " (primary trust score)" if x.name == m.primary else ""
            table.add_row(x.name, "higher" if x.higher_is_better else "lower", x.description + primary)
        console.print(table)


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


def list_options(console: Any, metrics: Iterable[Any]) -> None:
    """`w2sbench list options`: one table per trust property and fine-tune mode, titled with the flag to
    write (``--option NAME.KEY=VALUE``), so a key stays whole at 80 columns; defaults wrap only between the
    items of a list, never inside a value."""
    groups: dict[str, list[tuple[str, str, str]]] = {}
    for setting, default, valid in option_table(metrics):
        prefix, key = setting.split(".", 1)
        groups.setdefault(prefix, []).append((key, default, valid))
    for prefix, rows in groups.items():
        flag, owner = prefix.split(" ", 1)
        what = "trust property" if flag == "--option" else "fine-tune mode"
        table = ListTable(title=f"{flag} {owner}.KEY=VALUE ({what} {owner})", title_justify="left", identifiers={"KEY"})
        table.add_column("KEY")
        table.add_column("default", min_width=max(len(word) for _, d, _ in rows for word in d.split()))
        table.add_column("valid values", ratio=1)
        for row in rows:
            table.add_row(*row)
        console.print(table)
