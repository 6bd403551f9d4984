"""Built-in exporter: a leaderboard submission (``w2sbench export --format leaderboard``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench import hookimpl
from w2sbench.interfaces import Exporter
from w2sbench.leaderboard import export_submission

__all__ = ["LeaderboardExporter"]


class LeaderboardExporter(Exporter):
    name = "leaderboard"
    description = "a leaderboard submission: config, scores with seed spread, and the predictions to recompute them"

    def export(self, results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
        return export_submission(results, Path(destination), [Path(d) for d in run_dirs])


@hookimpl
def w2sbench_register_exporters() -> list[Exporter]:
    return [LeaderboardExporter()]
