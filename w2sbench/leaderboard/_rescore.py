"""Recompute an entry's scores from its predictions and compare them with what it reports: every per-seed
score the trust property's ``evaluate`` gives, the per-cell summaries, and each strategy's gap recovered.

Scores are recomputed with the benchmark's own test labels; live scores (attacks, extraction) cannot be
recomputed from predictions and are reported as not verifiable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from w2sbench.design import BASELINE_CELLS, task_scores
from w2sbench.interfaces import PropertyData, Strategy, TrustProperty, reference_cells
from w2sbench.results import TASK_METRICS
from w2sbench.stats import gap_recovered, gap_recovered_summary, summarize

__all__ = ["SCORE_TOLERANCE", "RATIO_REL_TOLERANCE", "EntryResult", "check_scores", "score_directions", "short"]

# Probabilities are stored as exact float64, so a recomputed score differs only by summation order.
SCORE_TOLERANCE = 1e-6
# A gap-recovered ratio divides by (ceiling - weak), which may be as small as 1e-3: allow relative slack.
RATIO_REL_TOLERANCE = 1e-6
_MISSING = object()

# seed -> cell -> metric -> the value validation trusts (recomputed, or reported where not verifiable)
ScoreTable = dict[str, dict[str, dict[str, Any]]]


@dataclass
class EntryResult:
    """What validation learned about one entry: its key, and which metrics could be recomputed."""

    key: str
    label: str
    verified: list[str] = field(default_factory=list)
    not_verifiable: list[str] = field(default_factory=list)
    scores_checked: int = 0
    # cells whose predicted labels on the main test set are one class for every example, on every seed
    constant_cells: list[str] = field(default_factory=list)
    # why the entry could not be checked at all (its test data did not load here): not the submission's fault
    unchecked: str = ""


def short(text: Any, limit: int = 80) -> str:
    """Echo submitted strings shortened and on one line, so a hostile value cannot flood the terminal."""
    s = str(text).replace("\n", " ").replace("\r", " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def score_directions(metric: TrustProperty, data: PropertyData) -> dict[str, bool]:
    """Every score of the property (task metrics first): name -> higher is better."""
    infos = [m for m in TASK_METRICS if not (m.name == "auroc" and data.num_labels != 2)] + list(metric.metrics)
    return {m.name: m.higher_is_better for m in infos}


def check_scores(
    entry: Mapping[str, Any],
    metric: TrustProperty,
    options: Mapping[str, Any],
    data: PropertyData,
    probabilities: Mapping[str, Any],
    order: Mapping[str, np.ndarray],
    result: EntryResult,
    strategy: Callable[[str], Strategy],
) -> list[str]:
    """Problems with the entry's scores, summaries and gap recovered; fills ``result`` with what was verified.

    ``order``: per test set, the row of each benchmark test example in the submitted predictions;
    ``strategy``: the registered strategy of a name (the plugin registry's ``get``)."""
    table, verified, unverifiable, problems = _recompute(entry, metric, options, data, probabilities, order, result)
    if problems:
        return problems
    problems = _check_summaries(entry, table, score_directions(metric, data), verified | unverifiable, strategy)
    result.verified = sorted(verified)
    result.not_verifiable = sorted(unverifiable)
    return problems


def _recompute(
    entry: Mapping[str, Any], metric: TrustProperty, options: Mapping[str, Any], data: PropertyData,
    probabilities: Mapping[str, Any], order: Mapping[str, np.ndarray], result: EntryResult,
) -> tuple[ScoreTable, set[str], set[str], list[str]]:
    """Every cell's per-seed scores recomputed from its predictions and compared with the reported ones."""
    problems: list[str] = []
    has_live = type(metric).evaluate_model is not TrustProperty.evaluate_model
    trust_names = {m.name for m in metric.metrics}
    table: ScoreTable = {}
    verified: set[str] = set()
    unverifiable: set[str] = set()
    constant: dict[str, bool] = {}
    for cell, body in entry["cells"].items():
        for seed, reported in body["seeds"].items():
            probs, bad = _prediction_arrays(probabilities, seed, cell, data, order)
            problems.extend(bad)
            if bad:
                continue
            predicted = probs[data.main_test].argmax(axis=1)
            constant[cell] = constant.get(cell, True) and predicted.size > 0 and bool((predicted == predicted[0]).all())
            recomputed: dict[str, Any] = dict(task_scores(data.tests[data.main_test].labels, probs[data.main_test]))
            try:
                recomputed.update(metric.evaluate(data, probs, options))
            except Exception as exc:  # noqa: BLE001 - the plugin could not score these probabilities
                problems.append(f'cell "{short(cell)}" seed {seed}: {metric.name}.evaluate failed ({type(exc).__name__}: {exc})')
                continue
            trusted: dict[str, Any] = {}
            for name, value in recomputed.items():
                value = None if isinstance(value, float) and math.isnan(value) else value
                got = reported.get(name, _MISSING)
                result.scores_checked += 1
                if got is _MISSING:
                    problems.append(f'cell "{short(cell)}" seed {seed}: score "{name}" is missing')
                elif not _close(got, value):
                    problems.append(
                        f'cell "{short(cell)}" seed {seed}: {name} is reported as {_fmt(got)} but the predictions give {_fmt(value)}'
                    )
                trusted[name] = value
                verified.add(name)
            for name, value in reported.items():
                if name in recomputed:
                    continue
                if has_live and name in trust_names:
                    unverifiable.add(name)
                    trusted[name] = value
                else:
                    problems.append(f'cell "{short(cell)}" seed {seed}: unknown metric "{short(name)}"')
            table.setdefault(seed, {})[cell] = trusted
    result.constant_cells = [cell for cell, single in constant.items() if single]
    return table, verified, unverifiable, problems


def _check_summaries(
    entry: Mapping[str, Any], table: ScoreTable, directions: Mapping[str, bool], checked: set[str],
    strategy: Callable[[str], Strategy],
) -> list[str]:
    """Each cell's summaries, and each strategy's references and gap recovered, against the trusted scores."""
    problems: list[str] = []
    seeds = sorted(table, key=int)
    for cell, body in entry["cells"].items():
        for name in set(body["summary"]) | {n for s in seeds for n in table[s][cell]}:
            for issue in _summary_problems(body["summary"].get(name), [table[s][cell].get(name) for s in seeds]):
                problems.append(f'cell "{short(cell)}": summary of {short(name)} {issue}')
        if cell in BASELINE_CELLS or cell not in entry["strategies"]:  # baselines and teachers: no gap recovered
            continue
        refs = reference_cells(strategy(cell))
        if body.get("references") != {"weak": refs[0], "ceiling": refs[1]}:
            problems.append(f'cell "{cell}": references should be weak={refs[0]}, ceiling={refs[1]}')
        gaps = body.get("gap_recovered") or {}
        for name in set(gaps) - set(directions):
            problems.append(f'cell "{cell}": gap recovered of unknown metric "{short(name)}"')
        for name, higher in directions.items():
            if name not in checked:
                continue
            values = {s: gap_recovered(table[s][cell].get(name), table[s][refs[0]].get(name), table[s][refs[1]].get(name), higher) for s in seeds}
            if name not in gaps:
                problems.append(f'cell "{cell}": gap recovered of {name} is missing')
                continue
            for s in seeds:
                if not _close(gaps[name]["seeds"].get(s), values[s], RATIO_REL_TOLERANCE):
                    problems.append(
                        f'cell "{cell}" seed {s}: gap recovered of {name} is reported as {_fmt(gaps[name]["seeds"].get(s))} '
                        f"but the scores give {_fmt(values[s])}"
                    )
            per = [[table[s][c].get(name) for s in seeds] for c in (cell, *refs)]
            for issue in _gap_summary_problems(gaps[name]["summary"], [values[s] for s in seeds], per, higher):
                problems.append(f'cell "{cell}": summary of gap recovered of {name} {issue}')
    return problems


def _prediction_arrays(
    probabilities: Mapping[str, Any], seed: str, cell: str, data: PropertyData, order: Mapping[str, np.ndarray]
) -> tuple[dict[str, np.ndarray], list[str]]:
    """One cell's and seed's submitted probabilities per test set, in the benchmark's row order, if well formed."""
    per_test = (probabilities.get(seed) or {}).get(cell) if isinstance(probabilities.get(seed), dict) else None
    if not isinstance(per_test, dict):
        return {}, [f'cell "{short(cell)}" seed {seed}: predictions are missing']
    out, problems = {}, []
    for name, test in data.tests.items():
        try:
            arr = np.asarray(per_test.get(name), dtype=np.float64)
        except (TypeError, ValueError):
            arr = np.zeros(0)
        if arr.shape != (len(test), data.num_labels) or not np.isfinite(arr).all() or (arr < -1e-6).any() or (arr > 1 + 1e-6).any():
            problems.append(
                f'cell "{short(cell)}" seed {seed}: predictions for test set "{name}" are not a '
                f"{len(test)} x {data.num_labels} array of probabilities"
            )
            continue
        out[name] = arr[order[name]]
    return out, problems


def _fmt(value: Any) -> str:
    return "null" if value is None else f"{value:.6g}" if isinstance(value, (int, float)) else repr(value)


def _close(reported: Any, expected: Any, rel: float = 0.0) -> bool:
    if reported is None or expected is None:
        return reported is None and expected is None
    if not isinstance(reported, (int, float)) or isinstance(reported, bool):
        return False
    return math.isclose(float(reported), float(expected), abs_tol=SCORE_TOLERANCE, rel_tol=rel)


def _summary_problems(reported: Any, values: Sequence[float | None], rel: float = 0.0) -> list[str]:
    """Differences between a reported summary and the one recomputed from per-seed values."""
    expected = summarize(list(values))
    if not isinstance(reported, Mapping):
        return ["is missing"]
    out = []
    for key in ("mean", "std", "stderr", "n"):
        if not _close(reported.get(key), expected[key], rel):
            out.append(f"{key} is {_fmt(reported.get(key))} but the per-seed scores give {_fmt(expected[key])}")
    lo_hi_r, lo_hi_e = reported.get("ci95"), expected["ci95"]
    if (lo_hi_r is None) != (lo_hi_e is None) or (lo_hi_e is not None and not (
        isinstance(lo_hi_r, list) and len(lo_hi_r) == len(lo_hi_e) and all(_close(a, b, rel) for a, b in zip(lo_hi_r, lo_hi_e, strict=True))
    )):
        out.append(f"ci95 is {lo_hi_r} but the per-seed scores give {lo_hi_e}")
    return out


def _gap_summary_problems(reported: Any, values: Sequence[float | None], per: Sequence[Sequence[float | None]], higher: bool) -> list[str]:
    """A gap-recovered summary is the ratio of mean gaps (stats.gap_recovered_summary); its interval and the
    resolution of the gap come from the run's bootstrap, so a reported undefined (None) ratio is accepted.
    Submissions from before that rule carry a summary of the per-seed ratios, checked as before."""
    if not isinstance(reported, Mapping) or reported.get("method") != "ratio of mean gaps":
        return _summary_problems(reported, values, RATIO_REL_TOLERANCE)
    expected = gap_recovered_summary(per[0], per[1], per[2], higher)
    out = []
    if reported.get("mean") is not None and not _close(reported.get("mean"), expected["mean"], RATIO_REL_TOLERANCE):
        out.append(f"is {_fmt(reported.get('mean'))} but the per-seed scores give a ratio of mean gaps of {_fmt(expected['mean'])}")
    if reported.get("n") != expected["n"]:
        out.append(f"n is {_fmt(reported.get('n'))} but {expected['n']} seeds have all three scores")
    return out
