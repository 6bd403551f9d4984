"""The three leaderboard operations behind ``w2sbench leaderboard export|validate|build``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_text, global_cache_dir
from w2sbench.leaderboard._board import write_board
from w2sbench.leaderboard._submission import build_submission, submission_name
from w2sbench.leaderboard._validate import ValidationReport, Validator, validate_files
from w2sbench.plugin_manager import get_plugins

__all__ = ["export_submission", "make_validator", "build_board", "BuildResult", "SUBMISSIONS_DIR"]

SUBMISSIONS_DIR = Path("leaderboards") / "submissions"


def export_submission(results: Sequence[Mapping[str, Any]], destination: Path, run_dirs: Sequence[Path]) -> Path:
    """Write a submission named after ``destination``'s file name."""
    import json

    destination = Path(destination)
    if destination.suffix != ".json":
        raise W2SBenchError(f"{destination} does not end in .json.", "Pass --to leaderboards/submissions/<name>.json.")
    doc = build_submission(results, run_dirs, submission_name(destination))
    # Compact: the predictions dominate the size and nobody reads them by eye; one entry per line keeps diffs small.
    entries = ",\n".join(json.dumps(e, separators=(",", ":"), sort_keys=True) for e in doc["entries"])
    head = {k: v for k, v in doc.items() if k != "entries"}
    text = json.dumps(head, indent=1, sort_keys=True)[:-2] + ',\n "entries": [\n' + entries + "\n ]\n}\n"
    atomic_write_text(destination, text)
    destination.chmod(0o644)  # a file for a pull request, not a private temp file
    return destination


def make_validator(data_dir: str | Path | None, plugins: Any = None) -> Validator:
    """A validator over the registered plugins and the data mirror (``--data-dir`` or $W2SBENCH_DATA_DIR)."""
    if plugins is None:
        plugins = get_plugins()
    return Validator(plugins, data_dir, global_cache_dir() / "downloads")


@dataclass
class BuildResult:
    """The board files written and the report of every submission considered."""
    written: list[Path]
    reports: list[ValidationReport]

    @property
    def rejected(self) -> list[ValidationReport]:
        return [r for r in self.reports if not r.ok]


def build_board(submissions_dir: Path, out_dir: Path, validator: Validator) -> BuildResult:
    """Validate every submission in ``submissions_dir`` and render the board from the valid ones."""
    submissions_dir = Path(submissions_dir)
    if not submissions_dir.is_dir():
        raise W2SBenchError(f"{submissions_dir} is not a folder.", "Run from the repository root or pass --submissions.")
    paths = sorted(p for p in submissions_dir.iterdir() if p.suffix == ".json" and not p.is_symlink())
    reports = validate_files(paths, validator)
    metrics = validator.plugins.trust_properties.items
    return BuildResult(write_board(reports, metrics, Path(out_dir)), reports)
