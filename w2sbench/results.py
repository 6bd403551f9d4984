"""The run result: a versioned JSON document (``results.json``) plus a predictions sidecar.

The JSON Schema ships as ``w2sbench/schemas/results-1.json``; docs/results.md documents each field.
Predictions live in ``predictions.jsonl.gz``: one JSON object per (property, seed, cell, test set)
with example ids and class probabilities, enough to recompute every score without the models.
"""

from __future__ import annotations

import datetime as _dt
import gzip
import hashlib
import importlib.metadata
import json
import platform
import zlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench import __version__
from w2sbench.design import BASELINE_CELLS, StrategyDesign, design_of
from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_bytes, atomic_write_json
from w2sbench.findings import (
    DEFAULT_RESAMPLES,
    correct_run,
    gap_recovered_interval,
    mark_underpowered,
    property_findings,
    stderr_by_seed,
)
from w2sbench.findings_cache import cached_resample_scores
from w2sbench.interfaces import SHARE, Examples, MetricInfo, Strategy, TrustProperty, reference_cells
from w2sbench.jsonio import loads_strict, read_json
from w2sbench.outcomes import PropertyOutcome
from w2sbench.stage_cache import StageCache
from w2sbench.stats import gap_recovered, gap_recovered_summary, summarize
from w2sbench.timing_history import INVOCATION_FIELDS, timing_history

__all__ = [
    "SCHEMA_VERSION",
    "TASK_METRICS",
    "RESULTS_FILE",
    "PREDICTIONS_FILE",
    "build_property_result",
    "add_findings",
    "build_results",
    "write_results",
    "load_results",
    "iter_predictions",
    "check_complete",
    "check_sidecar",
    "schema",
]

SCHEMA_VERSION = "1.0"
RESULTS_FILE = "results.json"
PREDICTIONS_FILE = "predictions.jsonl.gz"
TASK_METRICS = (
    MetricInfo("accuracy", True, "Accuracy on the main test set.", "task", SHARE),
    MetricInfo("auroc", True, "Area under the ROC curve on the main test set (binary tasks).", "task", SHARE),
)
_PACKAGES = ("torch", "transformers", "datasets", "peft", "opacus", "fairlearn", "textattack", "lm_eval", "pluggy", "numpy")


def schema() -> dict[str, Any]:
    return json.loads((Path(__file__).parent / "schemas" / "results-1.json").read_text())


def _reference_cells(strategy: Strategy) -> tuple[str, str]:
    """The weak model that supervised the strategy, and the ceiling trained like its strong model."""
    return reference_cells(strategy)


def _teacher_cells(strategies: list[Strategy]) -> list[str]:
    """Reference cells ``<strategy>:teachers`` of strategies not taught by the run's weak model alone."""
    return [c for c in dict.fromkeys(reference_cells(s)[0] for s in strategies) if c not in BASELINE_CELLS]


def build_property_result(
    metric: TrustProperty,
    strategies: list[Strategy],
    outcome: PropertyOutcome,
    options: Mapping[str, Any] | None = None,
    resamples: int | None = None,
    cache: StageCache | None = None,
) -> dict[str, Any]:
    """One property's entry of results.json: per-cell scores and summaries, gap recovered, and (with the
    outcome's predictions) the findings, per-cell intervals and standard errors of w2sbench.findings.

    ``options``: the trust property's resolved options (default: its defaults); ``resamples``: bootstrap
    resamples (default ``findings.DEFAULT_RESAMPLES``; 0 leaves the findings out); ``cache``: the run's stage
    cache, where the bootstrap is kept for a re-run (w2sbench/findings_cache.py; None: computed every time)."""
    data = outcome.data
    scores = outcome.scores
    infos = [m for m in TASK_METRICS if not (m.name == "auroc" and data.num_labels != 2)] + list(metric.metrics)
    seeds = sorted(scores)
    cells: dict[str, Any] = {}
    for cell in list(BASELINE_CELLS) + _teacher_cells(strategies) + [s.name for s in strategies]:
        per_seed = {str(s): scores[s][cell] for s in seeds}
        names = sorted({k for v in per_seed.values() for k in v})
        entry: dict[str, Any] = {
            "role": "baseline" if cell in BASELINE_CELLS else "teachers" if cell.endswith(":teachers") else "strategy",
            "seeds": per_seed,
            "summary": {n: summarize([per_seed[str(s)].get(n) for s in seeds]) for n in names},
            "train": {str(s): outcome.seeds[s].train[cell] for s in seeds},
        }
        cells[cell] = entry
    directions = {m.name: m.higher_is_better for m in infos}
    for strategy in strategies:
        weak_cell, ceiling_cell = _reference_cells(strategy)
        ratios: dict[str, Any] = {}
        for name, higher in directions.items():
            per = [(scores[s][strategy.name].get(name), scores[s][weak_cell].get(name), scores[s][ceiling_cell].get(name)) for s in seeds]
            values = {str(s): gap_recovered(*v, higher) for s, v in zip(seeds, per, strict=True)}
            strategy_scores, weak_scores, ceiling_scores = ([v[i] for v in per] for i in range(3))
            summary = gap_recovered_summary(strategy_scores, weak_scores, ceiling_scores, higher) if per else summarize([])
            ratios[name] = {"seeds": values, "summary": summary}
        cells[strategy.name]["gap_recovered"] = ratios
        cells[strategy.name]["references"] = {"weak": weak_cell, "ceiling": ceiling_cell}
        cells[strategy.name]["design"] = design_of(strategy).as_dict()
    prop = _property_entry(metric, infos, data, cells)
    if resamples != 0:
        _add_findings(prop, metric, strategies, outcome, options if options is not None else metric.options(), resamples, cache)
    return prop


def _add_findings(
    prop: dict[str, Any], metric: TrustProperty, strategies: list[Strategy], outcome: PropertyOutcome,
    options: Mapping[str, Any], resamples: int | None, cache: StageCache | None = None,
) -> None:
    """Bootstrap the property's scores and add findings, standard errors and resolved gap recovered."""
    live = {cell: {str(seed): dict(o.live_stderr.get(cell, {})) for seed, o in outcome.seeds.items()} for cell in prop["cells"]}
    add_findings(prop, metric, outcome.data, options, outcome.predictions, outcome.scores, [design_of(s) for s in strategies],
                 live, resamples or DEFAULT_RESAMPLES, cache)


def add_findings(
    prop: dict[str, Any], metric: TrustProperty, data: Any, options: Mapping[str, Any],
    predictions: Mapping[int, Mapping[str, Mapping[str, np.ndarray]]], scores: Mapping[int, Mapping[str, Mapping[str, float | None]]],
    designs: Sequence[StrategyDesign], live_stderr: Mapping[str, Mapping[str, Mapping[str, float | None]]],
    resamples: int, cache: StageCache | None = None, store: bool = True,
) -> None:
    """Add to one property's entry (``prop``, in place) its findings (uncorrected: ``findings.correct_run``
    corrects the run's together), every cell's standard errors and intervals, and the gap recovered
    with its interval, from ``resamples`` bootstrap resamples (kept in ``cache``; ``store=False``: read only).

    ``predictions[seed][cell][test set]``, ``scores[seed][cell]``: the run's; ``designs``: its strategies';
    ``live_stderr[cell][seed]``: a live score's own standard error (``LiveScores.stderr``), where given.
    `w2sbench run` calls it with its outcomes, `w2sbench report --bootstrap N` with results.json's and the
    predictions sidecar's."""
    cells = list(prop["cells"])
    names = [m["name"] for m in prop["metrics"]]
    boot = cached_resample_scores(cache, metric, data, options, predictions, scores, names, cells, resamples, seed=0, store=store)
    findings = property_findings(prop, boot, names, cells, designs)
    prop["findings"] = {k: v for k, v in findings.items() if k != "intervals"}
    for cell, se in stderr_by_seed(boot, names, cells).items():
        for seed, given in live_stderr.get(cell, {}).items():  # live scores: the property's own per-example error
            for name, value in given.items():
                if name in se.get(seed, {}) and se[seed][name] is None:
                    se[seed][name] = value
        prop["cells"][cell]["stderr"] = se
        prop["cells"][cell]["intervals"] = findings["intervals"][cell]
    mark_underpowered(prop)  # needs the per-seed standard errors just stored
    row = {c: j for j, c in enumerate(cells)}
    for d in designs:
        if d.name not in row:
            continue
        refs = prop["cells"][d.name]["references"]
        for k, m in enumerate(prop["metrics"]):
            summary = gap_recovered_interval(boot, row[d.name], row[refs["weak"]], row[refs["ceiling"]], k, m["higher_is_better"])
            prop["cells"][d.name]["gap_recovered"][m["name"]]["summary"] = summary


def _property_entry(metric: TrustProperty, infos: list[MetricInfo], data: Any, cells: dict[str, Any]) -> dict[str, Any]:
    return {
        "description": metric.description,
        "primary_trust_metric": metric.primary,
        "metrics": [
            {"name": m.name, "higher_is_better": m.higher_is_better, "kind": m.kind, "description": m.description,
             **({"bounds": list(m.bounds)} if m.bounds is not None else {})}
            for m in infos
        ],
        "data": {
            "sources": dict(data.sources),
            "train_rows": len(data.train),
            "main_test": data.main_test,
            "tests": {n: {"rows": len(t), "fingerprint": t.fingerprint()} for n, t in data.tests.items()},
            "hygiene": dict(data.auxiliary.get("hygiene", {})),
        },
        "cells": cells,
    }


def _environment(device: str) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name.replace("_", "-") if name == "lm_eval" else name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "platform": platform.platform(), "device": device, "packages": versions}


def build_results(
    settings: Mapping[str, Any],
    models: Mapping[str, Any],
    properties: Mapping[str, Any],
    timing: Mapping[str, Any],
    strategies: Mapping[str, Any] | None = None,
    earlier: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The results document; Holm-corrects the findings of all ``properties`` together (in place).
    ``strategies``: each strategy's definition (w2sbench/teachers.py, ``strategy_definition``). ``timing``: this
    invocation's (``INVOCATION_FIELDS``: seconds, stage counts, stage time per property and kind); ``earlier``: the invocations before it that wrote
    this run directory's results (``earlier_invocations``), kept with this one in ``timing.history``."""
    correct_run(properties)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    latest = {"finished_utc": created, "w2sbench_version": __version__,
              **{k: timing[k] for k in INVOCATION_FIELDS if k in timing}}
    return {
        "schema_version": SCHEMA_VERSION,
        "w2sbench_version": __version__,
        "created_utc": created,
        "settings": dict(settings),
        "environment": _environment(settings.get("device", "cpu")),
        "models": dict(models),
        "properties": dict(properties),
        "timing": {**dict(timing), "history": timing_history(list(earlier or []), latest)},
        "strategies": dict(strategies or {}),
        "predictions": {"file": PREDICTIONS_FILE, "sha256": None},
    }


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def write_results(run_dir: Path, results: dict[str, Any], outcomes: Mapping[str, PropertyOutcome]) -> Path:
    """Write the predictions sidecar, then results.json (which names the sidecar's hash), both atomically."""
    records = [
        (prop, int(seed), cell, test_name, outcome.data.tests[test_name], np.asarray(probs, dtype=np.float64))
        for prop, outcome in outcomes.items()
        for seed, cells in outcome.predictions.items()
        for cell, per_test in cells.items()
        for test_name, probs in per_test.items()
    ]
    source = _sidecar_source(records)
    blob = _recorded_sidecar(run_dir, source)
    if blob is None:
        text = ("\n".join(_sidecar_line(*record) for record in records) + "\n").encode()
        blob = _unchanged_sidecar(run_dir / PREDICTIONS_FILE, text)
        if blob is None:
            blob = gzip.compress(text, mtime=0)
            atomic_write_bytes(run_dir / PREDICTIONS_FILE, blob)
    results["predictions"] = {"file": PREDICTIONS_FILE, "sha256": hashlib.sha256(blob).hexdigest(), "source_sha256": source}
    path = run_dir / RESULTS_FILE
    atomic_write_json(path, _json_safe(results))
    return path


# Bump when _sidecar_line changes what it writes: a sidecar recorded under another format is encoded again.
_SIDECAR_FORMAT = 1


def _sidecar_line(prop: str, seed: int, cell: str, test_name: str, test: Examples, probs: np.ndarray) -> str:
    return json.dumps(
        {
            "property": prop,
            "seed": seed,
            "cell": cell,
            "test_set": test_name,
            "ids": test.ids,
            # Full float64 (JSON floats round-trip exactly): rounding creates ties that move
            # AUROC and argmax scores, and the leaderboard recomputes scores from these.
            "probabilities": probs.tolist(),
        },
        separators=(",", ":"),
        allow_nan=False,  # probabilities were checked finite when predicted
    )


def _sidecar_source(records: list[tuple[str, int, str, str, Examples, np.ndarray]]) -> str:
    """sha256 of what the sidecar encodes: each record's keys, its test set's fingerprint and its float64
    probabilities' bytes (hashing the arrays takes milliseconds; encoding them as JSON about a second)."""
    h = hashlib.sha256(f"sidecar format {_SIDECAR_FORMAT}".encode())
    for prop, seed, cell, test_name, test, probs in records:
        h.update(json.dumps([prop, seed, cell, test_name, test.fingerprint(), list(probs.shape)]).encode())
        h.update(probs.tobytes())
    return h.hexdigest()


def _recorded_sidecar(run_dir: Path, source: str) -> bytes | None:
    """The sidecar's bytes when the run directory's results.json records that it holds exactly these
    predictions (``source_sha256``) and its bytes are the ones recorded (``sha256``), else None: a re-run
    with the same predictions then skips encoding them as JSON (about a second for the default suite)."""
    try:
        recorded = loads_strict((run_dir / RESULTS_FILE).read_text()).get("predictions")
        blob = (run_dir / PREDICTIONS_FILE).read_bytes()
    except (OSError, ValueError, AttributeError):
        return None
    if not isinstance(recorded, dict) or recorded.get("source_sha256") != source:
        return None
    return blob if recorded.get("sha256") == hashlib.sha256(blob).hexdigest() else None


def _unchanged_sidecar(path: Path, text: bytes) -> bytes | None:
    """The sidecar's bytes when ``path`` already holds exactly ``text`` (a re-run: reading it back costs a
    twentieth of compressing it again), else None."""
    try:
        blob = path.read_bytes()
        return blob if gzip.decompress(blob) == text else None
    except (OSError, EOFError, zlib.error):  # gzip.BadGzipFile is an OSError
        return None


def load_results(path: Path) -> dict[str, Any]:
    """Read and schema-check a results.json (or the run directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / RESULTS_FILE
    if not path.is_file():
        raise W2SBenchError(f"No results file at {path}.", "Pass a run directory made by `w2sbench run` (it holds results.json).")

    results = read_json(path, _REGENERATE)
    if not isinstance(results, dict) or results.get("schema_version") != SCHEMA_VERSION:
        raise W2SBenchError(
            f"{path} has schema version {results.get('schema_version') if isinstance(results, dict) else None!r}; "
            f"this w2sbench reads {SCHEMA_VERSION}.",
            "Re-run with this version of w2sbench, or use the version that wrote it.",
        )
    import jsonschema

    errors = sorted(jsonschema.Draft202012Validator(schema()).iter_errors(results), key=lambda e: list(e.path))
    if errors:
        where = "/".join(str(p) for p in errors[0].path) or "(top level)"
        raise W2SBenchError(f"{path} does not match the results schema at {where}: {errors[0].message}", _REGENERATE)
    check_complete(results, path)
    return results


_REGENERATE = (
    "Regenerate it: run `w2sbench run` again with the run's settings (recorded in run.json beside it) and the same "
    "--out; finished stages come from the cache, so nothing retrains."
)


def check_complete(results: Mapping[str, Any], path: Path) -> None:
    """Every property holds every cell (the baselines and each recorded strategy) for every recorded seed,
    and each strategy's gap-recovered ratios name reference cells that are present; else a W2SBenchError."""
    settings = results["settings"]
    seeds = {str(s) for s in settings["seeds"]}
    wanted = [*BASELINE_CELLS, *settings["strategies"]]
    for prop, entry in results["properties"].items():
        cells = entry.get("cells") or {}
        missing = [c for c in wanted if c not in cells]
        if missing:
            raise W2SBenchError(f'{path} lacks cell(s) {", ".join(missing)} of property "{prop}"; ratios against them '
                                "cannot be trusted.", _REGENERATE)
        for cell in wanted:
            lost = sorted(seeds - set(cells[cell].get("seeds") or {}), key=int)
            if lost:
                raise W2SBenchError(f'{path} lacks seed(s) {", ".join(lost)} of cell "{cell}" of property "{prop}".', _REGENERATE)
        for cell in settings["strategies"]:
            refs = (cells[cell].get("references") or {}).values()
            if "gap_recovered" not in cells[cell] or any(r not in cells for r in refs):
                raise W2SBenchError(f'{path}: cell "{cell}" of property "{prop}" lacks its gap-recovered ratios or '
                                    "their reference cells.", _REGENERATE)


def check_sidecar(run_dir: Path) -> Path:
    """The predictions sidecar of ``run_dir``, after checking its sha256 against the one results.json records."""
    run_dir = Path(run_dir)
    sidecar = run_dir / PREDICTIONS_FILE
    recorded = None
    if (run_dir / RESULTS_FILE).is_file():
        recorded = ((read_json(run_dir / RESULTS_FILE, _REGENERATE) or {}).get("predictions") or {}).get("sha256")
    if not sidecar.is_file():
        raise W2SBenchError(f"{run_dir} has no {PREDICTIONS_FILE}.", _REGENERATE)
    if recorded:
        actual = hashlib.sha256(sidecar.read_bytes()).hexdigest()
        if actual != recorded:
            raise W2SBenchError(
                f"{sidecar} does not match the sha256 recorded in {RESULTS_FILE} (recorded {recorded[:12]}..., "
                f"file {actual[:12]}...): it was changed or replaced after the run.",
                "Restore the original file, or " + _REGENERATE[0].lower() + _REGENERATE[1:],
            )
    return sidecar


def iter_predictions(run_dir: Path) -> Iterator[dict[str, Any]]:
    """The prediction records of a run, one dict per (property, seed, cell, test set)."""
    with gzip.open(check_sidecar(run_dir), "rt") as f:
        for line in f:
            if line.strip():
                yield loads_strict(line)
