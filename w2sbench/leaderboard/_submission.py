"""Turn finished runs (results.json + predictions sidecar) into a leaderboard submission."""

from __future__ import annotations

import datetime as _dt
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from w2sbench import __version__
from w2sbench.errors import W2SBenchError
from w2sbench.leaderboard._format import (
    SUBMISSION_FORMAT,
    SUBMISSION_SCHEMA_VERSION,
    check_name,
    describe_entry,
    encode_predictions,
    entry_key,
)
from w2sbench.results import PREDICTIONS_FILE, iter_predictions

__all__ = ["build_submission", "submission_name"]

# Cell fields that go into a submission; stage reports (losses, timings) stay in the run.
_CELL_FIELDS = ("role", "references", "seeds", "summary", "gap_recovered")


def submission_name(destination: Path) -> str:
    """The submission's name is its file's stem; refuse names that are unsafe as file names or in HTML."""
    name = Path(destination).name.removesuffix(".json")
    if not check_name(name):
        raise W2SBenchError(
            f'"{name}" is not a usable submission name.',
            "Name the file with letters, digits, '.', '-' or '_' only, e.g. leaderboards/submissions/my-lab-pythia.json.",
        )
    return name


def _check_sidecar(run_dir: Path, results: Mapping[str, Any]) -> None:
    sidecar = run_dir / PREDICTIONS_FILE
    if not sidecar.is_file():
        raise W2SBenchError(f"{run_dir} has no {PREDICTIONS_FILE}.", "Re-run `w2sbench run` with the same arguments to rewrite it.")
    recorded = (results.get("predictions") or {}).get("sha256")
    if recorded and hashlib.sha256(sidecar.read_bytes()).hexdigest() != recorded:
        raise W2SBenchError(
            f"{sidecar} does not match the hash recorded in {run_dir / 'results.json'}.",
            "Re-run `w2sbench run` with the same arguments; finished stages come from the cache.",
        )


def _predictions(run_dir: Path, prop: str, tests: Mapping[str, Any]) -> dict[str, Any]:
    ids: dict[str, list[str]] = {}
    probabilities: dict[str, dict[str, dict[str, Any]]] = {}
    for record in iter_predictions(run_dir):
        if record["property"] != prop:
            continue
        test = record["test_set"]
        if test not in ids:
            ids[test] = list(record["ids"])
        probs = record["probabilities"]
        if record["ids"] != ids[test]:  # keep one id list per test set; reorder rows to it
            where = {i: n for n, i in enumerate(record["ids"])}
            probs = [probs[where[i]] for i in ids[test]]
        probabilities.setdefault(str(record["seed"]), {}).setdefault(record["cell"], {})[test] = probs
    missing = set(tests) - set(ids)
    if missing:
        raise W2SBenchError(
            f"{run_dir / PREDICTIONS_FILE} has no predictions for {prop} test set(s) {', '.join(sorted(missing))}.",
            "Re-run `w2sbench run` with the same arguments to rewrite it.",
        )
    return encode_predictions(ids, probabilities)


def _entries(results: Mapping[str, Any], run_dir: Path) -> list[dict[str, Any]]:
    settings = results["settings"]
    env = results.get("environment") or {}
    entries = []
    for prop, result in results["properties"].items():
        entries.append(
            {
                "property": prop,
                "pair": settings["pair"],
                "models": {"weak": results["models"]["weak"], "strong": results["models"]["strong"]},
                "finetune": {"weak": settings["finetune_weak"], "strong": settings["finetune_strong"]},
                "train": settings.get("train", {}),
                "seeds": list(settings["seeds"]),
                "strategies": list(settings["strategies"]),
                "options": settings["options"][prop],
                "primary_trust_metric": result["primary_trust_metric"],
                "metrics": result["metrics"],
                "data": {
                    "main_test": result["data"]["main_test"],
                    "tests": result["data"]["tests"],
                    "sources": result["data"].get("sources", {}),
                },
                "cells": {
                    cell: {k: entry[k] for k in _CELL_FIELDS if k in entry} for cell, entry in result["cells"].items()
                },
                "run": {
                    "w2sbench_version": results["w2sbench_version"],
                    "created_utc": results["created_utc"],
                    "device": settings.get("device", ""),
                    "python": env.get("python", ""),
                    "packages": env.get("packages", {}),
                },
                "predictions": _predictions(run_dir, prop, result["data"]["tests"]),
            }
        )
    return entries


def build_submission(results: Sequence[Mapping[str, Any]], run_dirs: Sequence[Path], name: str) -> dict[str, Any]:
    """One submission holding an entry per (run, property), with everything needed to re-score it."""
    if not check_name(name):
        raise W2SBenchError(f'"{name}" is not a usable submission name.', "Use letters, digits, '.', '-' or '_' only.")
    entries: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    for result, run_dir in zip(results, run_dirs, strict=True):
        _check_sidecar(Path(run_dir), result)
        for entry in _entries(result, Path(run_dir)):
            key = entry_key(entry)
            if key in seen:
                raise W2SBenchError(
                    f"{run_dir} repeats the experiment {describe_entry(entry)} already exported from {seen[key]}.",
                    "Export each configuration once; for more seeds, run once with --seeds 0,1,2.",
                )
            seen[key] = str(run_dir)
            entries.append(entry)
    return {
        "schema_version": SUBMISSION_SCHEMA_VERSION,
        "format": SUBMISSION_FORMAT,
        "name": name,
        "w2sbench_version": __version__,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "entries": entries,
    }
