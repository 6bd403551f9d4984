"""The findings `w2sbench report` shows for a run written with them: as results.json holds them, recomputed with
``--bootstrap N`` resamples, or left out with ``--bootstrap 0``.

Recomputing needs what `w2sbench run` had: the trust property's test data (reloaded through its ``load_data`` with
the run's options and checked against the fingerprints and example ids results.json and the predictions sidecar
record), the predictions sidecar and the recorded scores. The bootstrap goes through the findings cache
(w2sbench/findings_cache.py) in the run's stage cache, so a second report with the same N is quick. results.json
itself is never rewritten: the recomputed findings are the report's.
"""

from __future__ import annotations

import copy
import functools
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.errors import W2SBenchError
from w2sbench.interfaces import DataContext
from w2sbench.prepared_data import PreparedDataCache
from w2sbench.report_values import strategy_designs
from w2sbench.results import PREDICTIONS_FILE, add_findings, iter_predictions
from w2sbench.stage_cache import StageCache
from w2sbench.stats import gap_recovered_summary

__all__ = ["stored_resamples", "without_findings", "recompute_findings", "read_predictions", "RunData"]


def read_predictions(
    run_dir: Path,
) -> tuple[dict[str, dict[int, dict[str, dict[str, np.ndarray]]]], dict[tuple[str, str], list[str]]]:
    """A run's predictions sidecar as ``probs[property][seed][cell][test set]`` (rows x labels, float64) and
    the example ids of each (property, test set)."""
    probs: dict[str, dict[int, dict[str, dict[str, np.ndarray]]]] = {}
    ids: dict[tuple[str, str], list[str]] = {}
    for rec in iter_predictions(run_dir):
        probs.setdefault(rec["property"], {}).setdefault(int(rec["seed"]), {}).setdefault(rec["cell"], {})[rec["test_set"]] = (
            np.asarray(rec["probabilities"], dtype=np.float64))
        ids[(rec["property"], rec["test_set"])] = rec["ids"]
    return probs, ids


class RunData:
    """A finished run's trust-property data, loaded again as the run loaded them: its options, its data folder
    (or ``data_dir``), through the prepared-data cache of ``cache_root``."""

    def __init__(self, results: Mapping[str, Any], data_dir: str | None, cache_root: Path) -> None:
        self.settings = results["settings"]
        self.folder = data_dir if data_dir is not None else self.settings.get("data_dir")
        self.ctx = DataContext(data_dir=Path(self.folder) if self.folder else None, cache_dir=cache_root / "downloads")
        self.prepared = PreparedDataCache(cache_root)

    def options(self, name: str, metric: Any) -> Mapping[str, Any]:
        return self.settings["options"].get(name) or metric.options()

    def load(self, name: str, metric: Any) -> Any:
        """The property's data (W2SBenchError from its ``load_data`` passes through)."""
        options = self.options(name, metric)
        return self.prepared.load(metric, options, self.ctx, functools.partial(metric.load_data, self.ctx, options),
                                  lambda _data: None)

    @staticmethod
    def same_tests(prop: Mapping[str, Any], data: Any, ids: Mapping[tuple[str, str], list[str]], name: str) -> bool:
        """Whether the loaded test sets are the run's: the fingerprints results.json records and the ids of the
        predictions sidecar."""
        recorded = prop["data"]["tests"]
        return not any(n not in recorded or recorded[n].get("fingerprint") != t.fingerprint() or ids.get((name, n)) != t.ids
                       for n, t in data.tests.items())


def stored_resamples(results: Mapping[str, Any]) -> int | None:
    """The bootstrap resamples of the findings results.json holds; None for results written without them."""
    for prop in results["properties"].values():
        if prop.get("findings"):
            return int(prop["findings"]["resamples"])
    return None


def without_findings(results: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the results as `w2sbench run` would write them with the bootstrap off: no findings, no bootstrap
    standard errors or intervals, and each gap recovered from the recorded per-seed scores with the ``MIN_GAP``
    rule only (``stats.gap_recovered_summary``, no interval), as results.md describes for older results."""
    out = copy.deepcopy(dict(results))
    for prop in out["properties"].values():
        prop.pop("findings", None)
        directions = {m["name"]: m["higher_is_better"] for m in prop["metrics"]}
        cells = prop["cells"]
        for entry in cells.values():
            entry.pop("stderr", None)
            entry.pop("intervals", None)
            refs = entry.get("references") or {}
            seeds = sorted(entry["seeds"], key=int)
            for metric, ratio in (entry.get("gap_recovered") or {}).items():
                own, weak, ceiling = ([source["seeds"].get(s, {}).get(metric) for s in seeds]
                                      for source in (entry, cells[refs["weak"]], cells[refs["ceiling"]]))
                ratio["summary"] = gap_recovered_summary(own, weak, ceiling, directions.get(metric, True))
    return out


def _writable(folder: Path) -> bool:
    """Whether the report may keep what it computes in ``folder`` (a stage cache): it exists and is writable,
    or it can be created."""
    target = folder
    while not target.exists():
        if target.parent == target:
            return False
        target = target.parent
    return target.is_dir() and os.access(target, os.W_OK)


def recompute_findings(
    run_dir: Path, results: Mapping[str, Any], plugins: Any, resamples: int,
    data_dir: str | None = None, cache_dir: Path | None = None,
) -> dict[str, Any]:
    """A copy of ``results`` whose findings, bootstrap intervals, standard errors and gap recovered are computed
    afresh with ``resamples`` resamples (Holm-corrected over the run's properties together, like `w2sbench run`).

    ``cache_dir``: the stage cache for the prepared data and the bootstrap (default RUN/cache; read only when it
    is not writable). Raises W2SBenchError when a property cannot be recomputed: the predictions sidecar is
    missing, its trust property is not installed, its data do not load or differ from the run's."""
    from w2sbench.findings import correct_run

    run_dir = Path(run_dir)
    stored = stored_resamples(results)
    keep = f"Leave out --bootstrap to show the findings results.json holds ({stored} resamples)."
    sidecar = run_dir / results.get("predictions", {}).get("file", PREDICTIONS_FILE)
    if not sidecar.is_file():
        raise W2SBenchError(f"--bootstrap {resamples} recomputes the findings from the predictions, and {run_dir} has no "
                            f"{sidecar.name}.", f"Restore {sidecar.name} beside results.json. " + keep)
    settings = results["settings"]
    root = Path(cache_dir) if cache_dir is not None else run_dir / "cache"
    store = _writable(root)
    cache = StageCache(root)
    run_data = RunData(results, data_dir, root)
    probs, ids = read_predictions(run_dir)
    out = copy.deepcopy(dict(results))
    for name, prop in out["properties"].items():
        if name not in plugins.trust_properties:
            raise W2SBenchError(f'--bootstrap {resamples} recomputes the findings of {run_dir}, and its trust property "{name}" '
                                "is not installed.", "Install the plugin that provides it. " + keep)
        metric = plugins.trust_properties.get(name)
        options = run_data.options(name, metric)
        try:
            with warnings.catch_warnings():
                if not store:  # a read-only cache: that the data are not kept there is expected, not news
                    warnings.filterwarnings("ignore", message="The prepared data were not cached")
                data = run_data.load(name, metric)
        except W2SBenchError as exc:
            raise W2SBenchError(f'--bootstrap {resamples} recomputes the findings of {run_dir}, and the data of "{name}" did '
                                f"not load ({exc.problem}).", (exc.fix + " " if exc.fix else "") + keep) from exc
        if not RunData.same_tests(prop, data, ids, name):
            raise W2SBenchError(
                f'--bootstrap {resamples} recomputes the findings of {run_dir}, and the test data of "{name}" loaded now '
                f"differ from the run's (fingerprints or example ids do not match; data folder {run_data.folder}).",
                "Pass --data-dir with the dataset mirror the run used. " + keep)
        seeds = [int(s) for s in settings["seeds"]]
        cells = prop["cells"]
        scores = {s: {c: dict(entry["seeds"][str(s)]) for c, entry in cells.items()} for s in seeds}
        missing = [(s, c) for s in seeds for c in cells if c not in probs.get(name, {}).get(s, {})]
        if missing:
            raise W2SBenchError(f"{sidecar} lacks the predictions of {name} seed {missing[0][0]} cell {missing[0][1]}.",
                                "Regenerate the run's files: run `w2sbench run` again with its settings and the same --out. " + keep)
        # a live score's own standard error (LiveScores.stderr) is kept: only the property computes it. Live scores
        # are those without a bootstrap interval (``intervals`` holds the scores computable from the predictions).
        live = {c: {s: {m: v for m, v in se.items() if v is not None and m not in (entry.get("intervals") or {})}
                    for s, se in (entry.get("stderr") or {}).items()}
                for c, entry in cells.items()}
        add_findings(prop, metric, data, options, {s: probs[name][s] for s in seeds}, scores, strategy_designs(prop),
                     live, resamples, cache, store=store)
    correct_run(out["properties"])
    return out
