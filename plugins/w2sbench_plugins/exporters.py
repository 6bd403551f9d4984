"""Built-in exporters: a flat CSV of every cell's summary scores, and a leaderboard submission."""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench.leaderboard import export_submission
from w2sbench.plugin_api import Exporter, atomic_write_text, hookimpl

__all__ = ["CsvExporter", "LeaderboardExporter"]


class CsvExporter(Exporter):
    name = "csv"
    description = "one row per (run, property, cell, metric) with mean, std and 95% interval"

    def export(self, results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(["weak", "strong", "property", "cell", "metric", "mean", "std", "ci95_low", "ci95_high", "n", "kind"])
        for result in results:
            s = result["settings"]
            for prop_name, prop in result["properties"].items():
                for cell, entry in prop["cells"].items():
                    rows = [(m, entry["summary"].get(m), "score") for m in entry["summary"]]
                    rows += [(m, g["summary"], "gap_recovered") for m, g in entry.get("gap_recovered", {}).items()]
                    for metric, summ, kind in rows:
                        if not summ:
                            continue
                        ci = summ.get("ci95") or [None, None]
                        writer.writerow([s["weak"], s["strong"], prop_name, cell, metric, summ["mean"], summ["std"], ci[0], ci[1], summ["n"], kind])
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
