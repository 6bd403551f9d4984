"""Render results documents: uncertainty for every score, the paper's comparison per property, verdicts.

Uncertainty: results written with the findings (this version) hold a 95% interval for every score from the
bootstrap over seeds x test examples; ``--bootstrap N`` recomputes those findings with N resamples
(w2sbench/report_findings.py) and ``--bootstrap 0`` leaves them out. Older results: with several seeds, the
t-based 95% interval over seeds stored in results.json; with one seed, a percentile bootstrap over test
examples, recomputed here from the predictions sidecar with the trust property's own ``evaluate``
(``bootstrap_intervals``) and cached in the run directory.
"""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.design import task_scores
from w2sbench.errors import W2SBenchError
from w2sbench.files import atomic_write_json
from w2sbench.findings import DEFAULT_RESAMPLES as FINDINGS_RESAMPLES
from w2sbench.findings_table import print_paragraph, render_findings
from w2sbench.finite import json_safe
from w2sbench.plots import write_plots
from w2sbench.report_findings import RunData, read_predictions, recompute_findings, stored_resamples, without_findings
from w2sbench.report_tables import old_comparisons, score_tables
from w2sbench.report_values import (
    comparisons,
    headline_comparisons,
    ratio_interval,
    ratio_reason,
    score_interval,
    verdict,
)
from w2sbench.results import (
    PREDICTIONS_FILE,
    check_sidecar,
    load_results,
)
from w2sbench.stats import (
    bootstrap_samples,
    gap_recovered,
    percentile_interval,
    summarize,
)

__all__ = [
    "DEFAULT_RESAMPLES",
    "INTERVALS_FILE",
    "render_tables",
    "render_report",
    "stage_time_lines",
    "bootstrap_intervals",
    "report_document",
]

DEFAULT_RESAMPLES = FINDINGS_RESAMPLES  # what `w2sbench run` stores; older one-seed results get as many
INTERVALS_FILE = "report-intervals.json"
_INTERVALS_VERSION = 1  # bump when the bootstrap computation changes, so cached intervals are recomputed


# --------------------------------------------------------------------------- bootstrap over test examples


def _bootstrap_property(
    metric: Any, data: Any, options: Mapping[str, Any], prop: Mapping[str, Any],
    probs: Mapping[str, Mapping[str, np.ndarray]], resamples: int, seed: int,
) -> dict[str, Any]:
    cells = [c for c in prop["cells"] if c in probs]
    directions = {m["name"]: m["higher_is_better"] for m in prop["metrics"]}

    def score(index: Mapping[str, np.ndarray]) -> dict[str, dict[str, float | None]]:
        sub = replace(data, tests={n: t.subset(index[n]) for n, t in data.tests.items()})
        out: dict[str, dict[str, float | None]] = {}
        for cell in cells:
            p = {n: probs[cell][n][index[n]] for n in data.tests}
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # undefined group rates in a resample: counted as undefined
                    scores: dict[str, float | None] = dict(task_scores(sub.tests[sub.main_test].labels, p[sub.main_test]))
                    scores.update(metric.evaluate(sub, p, options))
            except (ValueError, ZeroDivisionError, FloatingPointError):
                scores = {}  # a degenerate resample (e.g. one group absent): counted as undefined
            out[cell] = scores
        return out

    samples = bootstrap_samples(score, {n: len(t) for n, t in data.tests.items()}, seed, resamples)
    result: dict[str, Any] = {"method": "bootstrap", "seed": seed, "resamples": resamples, "cells": {}, "gap_recovered": {}, "differences": {}}
    for cell in cells:
        result["cells"][cell] = {m: percentile_interval([s[cell].get(m) for s in samples], resamples) for m in directions}
        refs = prop["cells"][cell].get("references")
        if refs and refs.get("weak") in cells and refs.get("ceiling") in cells:
            result["gap_recovered"][cell] = {
                m: percentile_interval(
                    [gap_recovered(s[cell].get(m), s[refs["weak"]].get(m), s[refs["ceiling"]].get(m), hib) for s in samples],
                    resamples,
                )
                for m, hib in directions.items()
            }
    primary = prop["primary_trust_metric"]
    for a, b in headline_comparisons(prop):
        if a in cells and b in cells:
            diffs = [
                None if s[a].get(primary) is None or s[b].get(primary) is None else s[a][primary] - s[b][primary]
                for s in samples
            ]
            result["differences"][f"{a} - {b}"] = percentile_interval(diffs, resamples)
    return result


def bootstrap_intervals(
    run_dir: Path, results: Mapping[str, Any], plugins: Any, resamples: int = DEFAULT_RESAMPLES, data_dir: str | None = None,
    cache_dir: Path | None = None,
) -> dict[str, dict[str, Any]]:
    """Per property of a one-seed run, bootstrap intervals over test examples (cached in the run directory).

    Test labels and attributes come from the trust property's ``load_data`` (the run's options and data
    directory); the test sets must match the fingerprints recorded in results.json.
    """

    run_dir = Path(run_dir)
    settings = results["settings"]
    if resamples <= 0 or len(settings["seeds"]) != 1:
        return {}
    seed = int(settings["seeds"][0])
    key = {
        "version": _INTERVALS_VERSION,
        "predictions": results.get("predictions", {}).get("sha256"),
        "resamples": resamples,
        "properties": {n: {"options": settings["options"].get(n), "data": p["data"]["tests"]} for n, p in results["properties"].items()},
    }
    cache_file = run_dir / INTERVALS_FILE
    if cache_file.is_file():
        try:
            cached = json.loads(cache_file.read_text())
            if cached.get("key") == json.loads(json.dumps(key)):
                return cached["properties"]
        except (json.JSONDecodeError, AttributeError, KeyError):
            pass
    if not (run_dir / results.get("predictions", {}).get("file", "predictions.jsonl.gz")).is_file():
        return {n: {"unavailable": "the predictions file is missing"} for n in results["properties"]}
    probs, ids = read_predictions(run_dir)
    run_data = RunData(results, data_dir, Path(cache_dir) if cache_dir is not None else run_dir / "cache")
    out: dict[str, dict[str, Any]] = {}
    for name, prop in results["properties"].items():
        if name not in plugins.trust_properties:
            out[name] = {"unavailable": f'trust property "{name}" is not installed'}
            continue
        metric = plugins.trust_properties.get(name)
        try:
            data = run_data.load(name, metric)
        except W2SBenchError as exc:
            out[name] = {"unavailable": f"its data could not be loaded ({exc.problem})"}
            continue
        if not RunData.same_tests(prop, data, ids, name):
            out[name] = {"unavailable": "its test data differ from the run's (fingerprints do not match)"}
            continue
        out[name] = _bootstrap_property(metric, data, run_data.options(name, metric), prop, probs.get(name, {}).get(seed, {}),
                                        resamples, seed)
    try:
        atomic_write_json(cache_file, {"key": key, "properties": out})
    except (OSError, W2SBenchError):
        pass  # a read-only run directory: recompute next time
    return out


# --------------------------------------------------------------------------- documents and tables


def report_document(results: Mapping[str, Any], intervals: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The report's numbers as JSON: every score and ratio with its interval, comparisons and verdicts."""
    doc: dict[str, Any] = {}
    for name, prop in results["properties"].items():
        boot = (intervals or {}).get(name) or {}
        cells = {}
        for cell, entry in prop["cells"].items():
            cells[cell] = {"scores": {m["name"]: score_interval(prop, cell, m["name"], boot) for m in prop["metrics"]}}
            if "gap_recovered" in entry:
                cells[cell]["gap_recovered"] = {
                    m: {**value, "reason": ratio_reason(prop, cell, m)} if value["mean"] is None else value
                    for m in entry["gap_recovered"] for value in [ratio_interval(prop, cell, m, boot)]
                }
        doc[name] = {
            "cells": cells,
            "comparisons": comparisons(prop, boot),
            "verdict": verdict(prop, boot),
            "findings": prop.get("findings"),
            "bootstrap_note": boot.get("unavailable"),
        }
    return {"properties": doc}


def render_tables(results: Mapping[str, Any], console: Any, intervals: Mapping[str, Any] | None = None) -> None:
    """Per property: every score of every cell (scores as rows, cells as columns, split to fit the console) and,
    for results without findings, the older comparison table and verdict; then the findings tables of every
    property together, as at the end of `w2sbench run` (one legend: Holm's correction is over the run's
    comparisons, all properties together)."""
    settings = results["settings"]
    print_paragraph(
        console,
        f"w2sbench {settings['weak']} -> {settings['strong']} (fine-tune {settings['finetune_weak']}:"
        f"{settings['finetune_strong']}, seeds {settings['seeds']}, device {settings['device']})",
    )

    for name, prop in results["properties"].items():
        boot = (intervals or {}).get(name) or {}
        score_tables(name, prop, boot, console)
        if not prop.get("findings"):
            old_comparisons(name, prop, boot, console)
    with_findings = {n: _with_gap_strategies(p) for n, p in results["properties"].items() if p.get("findings")}
    if with_findings:
        render_findings({**results, "properties": with_findings}, console)
    _render_capability(results, console)
    for line in timing_lines(results.get("timing") or {}) + stage_time_lines(results.get("timing") or {}):
        print_paragraph(console, line, "dim")


def _with_gap_strategies(prop: Mapping[str, Any]) -> Mapping[str, Any]:
    """The property with ``findings.accuracy_gap.strategies`` (the strategies whose references are weak and
    ceiling) filled in for results written before it was recorded."""
    gap = prop["findings"].get("accuracy_gap")
    if not gap or "strategies" in gap:
        return prop
    users = [c for c, e in prop["cells"].items() if (e.get("references") or {}) == {"weak": "weak", "ceiling": "ceiling"}]
    return {**prop, "findings": {**prop["findings"], "accuracy_gap": {**gap, "strategies": users}}}


def _main_metric(scores: Mapping[str, Any]) -> str | None:
    for preferred in ("acc,none", "acc_norm,none", "exact_match,none"):
        if isinstance(scores.get(preferred), (int, float)):
            return preferred
    return next((k for k, v in scores.items() if isinstance(v, (int, float)) and "stderr" not in k), None)


def _render_capability(results: Mapping[str, Any], console: Any) -> None:
    """Capability retention (lm-eval) of the final strong models, when ``w2sbench capability`` added it."""
    cap = results.get("capability")
    if not cap:
        return
    from rich.table import Table


    tasks = list(cap["tasks"])
    base = cap.get("base", {})
    table = Table(
        title=f"capability retention (lm-eval, limit {cap.get('limit')}, {cap.get('num_fewshot') or 0}-shot)",
        title_justify="left",
        caption="score of the trained strong model (mean over seeds); in brackets: change from the pretrained model",
    )
    table.add_column("model", no_wrap=True)
    for task in tasks:
        table.add_column(f"{task} ({_main_metric(base.get(task, {})) or '?'})", justify="right", overflow="fold")
    table.add_row("pretrained", *[f"{base[t][_main_metric(base[t])]:.3f}" if _main_metric(base.get(t, {})) else "" for t in tasks])
    for prop, cells in cap.get("models", {}).items():
        for cell, per_seed in cells.items():
            row = [f"{prop}/{cell}"]
            for task in tasks:
                key = _main_metric(base.get(task, {}))
                mean = summarize([s.get(task, {}).get(key) for s in per_seed.values()])["mean"] if key else None
                ref = base.get(task, {}).get(key) if key else None
                row.append("" if mean is None else f"{mean:.3f}" + (f" ({mean - ref:+.3f})" if ref is not None else ""))
            table.add_row(*row)
    console.print(table)


def timing_lines(timing: Mapping[str, Any]) -> list[str]:
    """How long the run took: the last invocation's time, then, when earlier invocations wrote the same run
    directory (``timing.history``: a resume, a cached re-run), the time of those that computed stages."""
    last = (f"{timing.get('seconds', 0):.1f} s; stages computed {timing.get('stages_computed', 0)}, "
            f"served from cache {timing.get('stages_cached', 0)}")
    history = [h for h in timing.get("history") or [] if isinstance(h, Mapping)]
    if len(history) <= 1:
        if history and not history[0].get("stages_computed"):
            return [last + " (every stage came from the stage cache: computed by another run directory or configuration)"]
        return [last]
    computing = [h for h in history if h.get("stages_computed")]
    if computing == [history[-1]]:  # the earlier runs computed nothing: the last one's time is the computation's
        return [f"{last} (the only one of the {len(history)} runs of this directory that computed stages)"]
    lines = [f"last run: {last} (finished {history[-1].get('finished_utc')})"]
    if not computing:
        lines.append(f"none of the {len(history)} runs of this directory computed a stage: every stage came from the "
                     "stage cache (computed by another run directory or configuration)")
        return lines
    seconds = sum(float(h.get("seconds") or 0) for h in computing)
    stages = sum(int(h.get("stages_computed") or 0) for h in computing)
    runs = "1 run" if len(computing) == 1 else f"{len(computing)} runs"
    lines.append(f"computation: {seconds:.1f} s in {runs} that computed stages ({stages} stages; first finished "
                 f"{computing[0].get('finished_utc')}); {len(history)} runs in all wrote these results")
    return lines


def stage_time_lines(timing: Mapping[str, Any]) -> list[str]:
    """Where the computing time went: per trust property, the seconds of each stage kind (summed over worker
    processes) in the last invocation that computed stages; [] for results without ``timing.stages``."""
    history = [h for h in timing.get("history") or [] if isinstance(h, Mapping)] or [timing]
    stages = next((h.get("stages") for h in reversed(history) if h.get("stages_computed") and h.get("stages")), None)
    if not isinstance(stages, Mapping) or not stages:
        return []
    lines = ["stage time, summed over worker processes, of the last run that computed stages:"]
    for metric, kinds in stages.items():
        spent = ", ".join(f"{kind} {entry['seconds']:.0f} s ({entry['computed']})" for kind, entry in kinds.items())
        lines.append(f"{metric}: {spent or 'nothing computed'}")
    return lines


def render_report(
    run_paths: Sequence[Path],
    console: Any,
    plugins: Any,
    plots: Path | None = None,
    quiet: bool = False,
    as_json: bool = False,
    resamples: int | None = None,
    data_dir: str | None = None,
    cache_dir: Path | None = None,
) -> dict[str, Any]:
    """Load runs, compute intervals, print tables (or JSON), and write plots; returns what was computed.

    ``resamples``: None shows the findings results.json holds; N > 0 different from theirs recomputes them with
    N resamples (``report_findings.recompute_findings``; the stage cache: ``cache_dir``, default RUN/cache); 0
    leaves out the findings and every bootstrap interval. Results written without findings get, with one
    seed, ``bootstrap_intervals`` (N, default ``DEFAULT_RESAMPLES``; 0: none)."""
    if resamples is not None and resamples < 0:
        raise W2SBenchError(f"--bootstrap {resamples} is negative.",
                            "Pass a number of resamples (e.g. 1000), 0 for no bootstrap, or leave --bootstrap out for "
                            f"the findings results.json holds ({DEFAULT_RESAMPLES} resamples in runs of this version).")
    runs = []
    notes: list[str] = []
    for path in run_paths:
        path = Path(path)
        run_dir = path.parent if path.is_file() else path
        results = load_results(path)
        if (run_dir / results.get("predictions", {}).get("file", PREDICTIONS_FILE)).is_file():
            check_sidecar(run_dir)  # a changed sidecar is refused even when no interval needs it
        stored = stored_resamples(results)
        source = "results.json"
        if stored is not None and resamples == 0:
            results, source = without_findings(results), "off"
            notes.append(f"{run_dir}: --bootstrap 0: the findings and every bootstrap interval are left out (intervals: t "
                         "over seeds, where there are several)")
        elif stored is not None and resamples is not None and resamples != stored:
            notes.append(f"{run_dir}: recomputing the findings with {resamples} bootstrap resamples (results.json holds "
                         f"{stored}; it is not changed)")
            if not quiet and not as_json:
                _note(notes.pop())  # it can take minutes: say so before, not after
            results, source = recompute_findings(run_dir, results, plugins, resamples, data_dir, cache_dir), "recomputed"
        one_seed = len(results["settings"]["seeds"]) == 1
        if resamples == 0:
            intervals = {name: {"unavailable": "the bootstrap is off (--bootstrap 0)"} for name in results["properties"]} if one_seed else {}
            source = "off"
        elif stored is None:
            n = DEFAULT_RESAMPLES if resamples is None else resamples
            intervals = bootstrap_intervals(run_dir, results, plugins, n, data_dir, cache_dir)
            source = "report" if one_seed else "none"
        else:
            intervals = {}  # the findings' intervals (stored or recomputed) serve every score
        runs.append((run_dir, results, intervals, source))
    if not quiet and not as_json:
        for note in notes:
            _note(note)
    files: list[str] = []
    if plots is not None:
        files = [str(p) for p in write_plots([(r, i, d.name) for d, r, i, _ in runs], Path(plots))]
    if as_json:
        docs = [{**r, "report": {**report_document(r, i), "bootstrap": _bootstrap_source(r, i, s), "plots": files}}
                for _, r, i, s in runs]
        print(json.dumps(json_safe(docs[0] if len(docs) == 1 else docs), indent=2, allow_nan=False))
    elif not quiet:
        for run_dir, results, intervals, _ in runs:
            if len(runs) > 1:
                console.rule(str(run_dir))
            render_tables(results, console, intervals)
        for f in files:
            console.print(f"[dim]plot: {f}[/]")
    return {"runs": [str(d) for d, _, _, _ in runs], "plots": files}


def _note(text: str) -> None:
    """A note on stderr (stdout stays the report, or the JSON), wrapped at 80 columns between words."""
    print("\n".join(textwrap.wrap(text, width=80, break_long_words=False, break_on_hyphens=False)), file=sys.stderr, flush=True)


def _bootstrap_source(results: Mapping[str, Any], intervals: Mapping[str, Any], source: str) -> dict[str, Any]:
    """``report.bootstrap`` of --json: where the intervals come from (``results.json``: the stored findings;
    ``recomputed``: the findings with --bootstrap N; ``report``: older one-seed results, bootstrapped by `report`;
    ``none``: older results with several seeds, t-intervals over seeds; ``off``: --bootstrap 0) and with how
    many resamples (None for ``none`` and ``off``)."""
    resamples = stored_resamples(results)
    if source == "report":
        resamples = next((int(b["resamples"]) for b in intervals.values() if isinstance(b, Mapping) and "resamples" in b), None)
    return {"source": source, "resamples": None if source in ("off", "none") else resamples}
