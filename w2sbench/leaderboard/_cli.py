"""The ``w2sbench leaderboard export|validate|build`` subcommands (wired into w2sbench/cli.py)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run_command"]


def add_parser(sub: Any) -> None:
    """Add the ``leaderboard`` group to the top-level subparsers."""
    lb = sub.add_parser("leaderboard", help="export, validate and build leaderboard submissions (leaderboards/README.md)")
    actions = lb.add_subparsers(dest="leaderboard_command", metavar="ACTION", required=True)
    exp = actions.add_parser("export", help="turn run directories into a submission file")
    exp.add_argument("runs", nargs="+", help="run directories (results.json + predictions.jsonl.gz)")
    exp.add_argument("--to", required=True, help="destination, e.g. leaderboards/submissions/<name>.json")
    val = actions.add_parser("validate", help="check submissions and recompute every score from their predictions")
    val.add_argument("files", nargs="+", help="submission files")
    val.add_argument("--data-dir", help="dataset mirror with the benchmark's test sets [$W2SBENCH_DATA_DIR; else upstream]")
    bld = actions.add_parser("build", help="regenerate the board files from every valid submission")
    bld.add_argument("--submissions", default="leaderboards/submissions", help="folder of submissions [leaderboards/submissions]")
    bld.add_argument("--out", default="leaderboards", help="where board-*.csv, board-*.md and index.html go [leaderboards]")
    bld.add_argument("--data-dir", help="dataset mirror with the benchmark's test sets [$W2SBENCH_DATA_DIR; else upstream]")


def _print_report(report: Any) -> None:
    # Plain print, not rich: submitted strings must not be read as console markup.
    if report.ok:
        checked = sum(e.scores_checked for e in report.entries)
        entries = f"{len(report.entries)} entr{'y' if len(report.entries) == 1 else 'ies'}"
        print(f"ok      {report.path}: {entries}, {checked} scores recomputed and matched")
    elif report.problems:
        print(f"INVALID {report.path}: {len(report.problems)} problem(s)")
        for problem in report.problems:
            print(f"  - {problem}")
    if report.unchecked:
        # the data this machine lacks, not the submission's fault: said apart from INVALID
        print(f"UNCHECKED {report.path}: {len(report.unchecked)} entr{'y' if len(report.unchecked) == 1 else 'ies'} "
              "could not be checked here")
        for reason in report.unchecked:
            print(f"  - {reason}")
        print(f"  fix: {UNCHECKED_FIX}")
    for note in report.notes:
        print(f"  note: {note}")


UNCHECKED_FIX = ("pass --data-dir DIR with the benchmark's dataset mirror (or set $W2SBENCH_DATA_DIR), or validate on a "
                 "machine that can download the datasets")


def _exit_code(reports: list[Any]) -> int:
    """1 when a submission is invalid, else 2 when one could not be checked here, else 0."""
    if any(r.problems or r.submission is None for r in reports):
        return 1
    return 2 if any(r.unchecked for r in reports) else 0


def run_command(args: argparse.Namespace, plugins_factory: Callable[[], Any]) -> int:
    """Run one leaderboard action; exit code 1 when any submission is invalid, 2 when one could not be
    checked (its test data did not load here) and none is invalid."""
    from w2sbench.data import default_data_dir
    from w2sbench.leaderboard._api import build_board, make_validator
    from w2sbench.leaderboard._validate import validate_files

    plugins = plugins_factory()
    if args.leaderboard_command == "export":
        from w2sbench.results import load_results

        run_dirs = [Path(r) for r in args.runs]
        results = [load_results(r) for r in run_dirs]
        path = plugins.exporters.get("leaderboard").export(results, Path(args.to), run_dirs)
        print(f"wrote {path}\ncheck it with: w2sbench leaderboard validate {path} --data-dir DIR "
              "(the dataset mirror the runs used; without it the test sets are downloaded)")
        return 0
    validator = make_validator(args.data_dir or default_data_dir(), plugins)
    if args.leaderboard_command == "validate":
        reports = validate_files([Path(f) for f in args.files], validator)
        for report in reports:
            _print_report(report)
        return _exit_code(reports)
    result = build_board(Path(args.submissions), Path(args.out), validator)
    for report in result.reports:
        _print_report(report)
    for path in result.written:
        print(f"wrote {path}")
    if result.rejected:
        unchecked = sum(1 for r in result.rejected if r.unchecked and not r.problems and r.submission is not None)
        print(f"{len(result.rejected)} submission(s) left off the board: {len(result.rejected) - unchecked} invalid, "
              f"{unchecked} could not be checked here")
    return _exit_code(result.reports)
