"""Built-in exporters: a flat CSV of every cell's summary scores, and a leaderboard submission."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench.leaderboard import export_submission
from w2sbench.plugin_api import Exporter, atomic_write_text, hookimpl
from w2sbench.report_values import ratio_interval, score_interval

__all__ = ["CsvExporter", "LeaderboardExporter"]


def _interval_name(ci: Mapping[str, Any], summary: Mapping[str, Any]) -> str:
    """Which interval a row carries; empty without one, with the reason when results.json gives it."""
    if ci["lo"] is not None:
        return str(ci["method"])
    return f"none: {summary['reason']}" if summary.get("reason") else ""


class CsvExporter(Exporter):
    """One row per (run, property, cell, metric, kind) with the mean and the same 95% interval results.json
    and ``w2sbench report`` give (read from results.json, never recomputed); the ``interval`` column names it:
    the crossed bootstrap over seeds x test examples where results.json has one (``cells.*.intervals``,
    gap recovered ``summary.ci95``), else the t-interval over seeds (``summary.ci95``, live scores), else
    empty (one seed of a live score)."""

    name = "csv"
    description = "one row per (run, property, cell, metric) with mean, std and the run's 95% interval"
    columns = ("weak", "strong", "property", "cell", "metric", "mean", "std", "ci95_low", "ci95_high", "interval", "n", "kind")

    def export(self, results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(self.columns)
        for result in results:
            s = result["settings"]
            for prop_name, prop in result["properties"].items():
                for cell, entry in prop["cells"].items():
                    rows = [(m, summ, score_interval(prop, cell, m), "score") for m, summ in entry["summary"].items()]
                    rows += [(m, g["summary"], ratio_interval(prop, cell, m), "gap_recovered") for m, g in entry.get("gap_recovered", {}).items()]
                    for metric, summ, ci, kind in rows:
                        if not summ:
                            continue
                        writer.writerow([s["weak"], s["strong"], prop_name, cell, metric, ci["mean"], summ.get("std"), ci["lo"], ci["hi"], _interval_name(ci, summ), summ["n"], kind])
        atomic_write_text(Path(destination), out.getvalue())
        return Path(destination)


class LeaderboardExporter(Exporter):
    name = "leaderboard"
    description = "a leaderboard submission: config, scores with seed spread, and the predictions to recompute them"

    def export(self, results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
        return export_submission(results, Path(destination), [Path(d) for d in run_dirs])


@hookimpl
def w2sbench_register_exporters() -> list[Exporter]:
    return [CsvExporter(), LeaderboardExporter()]
