"""Check submissions: schema, names, duplicates, and every score recomputed from the predictions.

Scores are recomputed with the benchmark's own test labels (the trust property's ``load_data`` with
the submission's recorded options), never with anything the submission supplies except its
probabilities. Nothing in a submission is imported, unpickled or executed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.design import BASELINE_CELLS, task_scores
from w2sbench.errors import W2SBenchError
from w2sbench.files import stable_hash
from w2sbench.interfaces import DataContext, PropertyData, TrustProperty, reference_cells
from w2sbench.leaderboard._format import (
    SUBMISSION_FORMAT,
    SUBMISSION_SCHEMA_VERSION,
    check_name,
    decode_predictions,
    describe_entry,
    entry_key,
    submission_schema,
)
from w2sbench.leaderboard._safejson import UnsafeInput, read_json_file
from w2sbench.results import TASK_METRICS
from w2sbench.stats import gap_recovered, gap_recovered_summary, summarize

__all__ = ["ValidationReport", "EntryResult", "Validator", "validate_files", "SCORE_TOLERANCE"]

# Probabilities are stored as exact float64, so a recomputed score differs only by summation order.
SCORE_TOLERANCE = 1e-6
# A gap-recovered ratio divides by (ceiling - weak), which may be as small as 1e-3: allow relative slack.
RATIO_REL_TOLERANCE = 1e-6
_MAX_SCHEMA_ERRORS = 20
_MISSING = object()


@dataclass
class EntryResult:
    """What validation learned about one entry: its key, and which metrics could be recomputed."""

    key: str
    label: str
    verified: list[str] = field(default_factory=list)
    not_verifiable: list[str] = field(default_factory=list)
    scores_checked: int = 0


@dataclass
class ValidationReport:
    """The outcome for one submission file: problems (each one clear sentence) and notes."""

    path: Path
    submission: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entries: list[EntryResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and self.submission is not None


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
    if (lo_hi_r is None) != (lo_hi_e is None) or (
        lo_hi_e is not None and not all(_close(a, b, rel) for a, b in zip(lo_hi_r, lo_hi_e, strict=False))
    ):
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


class Validator:
    """Validates submissions against one plugin set and one data mirror, loading each test set once."""

    def __init__(self, plugins: Any, data_dir: str | Path | None, cache_dir: Path) -> None:
        self.plugins = plugins
        self.ctx = DataContext(Path(data_dir) if data_dir else None, cache_dir)
        self._data: dict[str, PropertyData | str] = {}
        self._schema = submission_schema()

    # ----------------------------------------------------------------- file level

    def validate_file(self, path: Path) -> ValidationReport:
        report = ValidationReport(Path(path))
        stem = report.path.name.removesuffix(".json")
        if not check_name(stem):
            report.problems.append(
                f'the file name "{stem}" is not a safe submission name (letters, digits, ".", "-", "_" only)'
            )
        try:
            doc = read_json_file(report.path)
        except UnsafeInput as exc:
            report.problems.append(f"rejected: {exc}")
            return report
        except OSError as exc:
            report.problems.append(f"cannot be read ({exc.strerror or exc})")
            return report
        if not isinstance(doc, dict):
            report.problems.append(f"is a JSON {type(doc).__name__}, not a submission object")
            return report
        version = doc.get("schema_version")
        if version != SUBMISSION_SCHEMA_VERSION or doc.get("format") != SUBMISSION_FORMAT:
            report.problems.append(
                f"has schema version {version!r} and format {doc.get('format')!r}; this w2sbench reads "
                f"{SUBMISSION_FORMAT!r} version {SUBMISSION_SCHEMA_VERSION!r} (re-export with `w2sbench leaderboard export`)"
            )
            return report
        import jsonschema

        errors = sorted(jsonschema.Draft202012Validator(self._schema).iter_errors(doc), key=lambda e: list(e.absolute_path))
        for error in errors[:_MAX_SCHEMA_ERRORS]:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            report.problems.append(f"does not match the submission schema at {where}: {_short(error.message)}")
        if len(errors) > _MAX_SCHEMA_ERRORS:
            report.problems.append(f"... and {len(errors) - _MAX_SCHEMA_ERRORS} more schema errors")
        if errors:
            return report
        if doc["name"] != stem:
            report.problems.append(f'names itself "{_short(doc["name"])}" but the file is {report.path.name}; they must agree')
        report.submission = doc
        seen: dict[str, int] = {}
        for index, entry in enumerate(doc["entries"]):
            where = f"entry {index} ({_short(describe_entry(entry))})"
            key = entry_key(entry)
            if key in seen:
                report.problems.append(f"{where} duplicates entry {seen[key]}: the same property, models, fine-tuning and options")
                continue
            seen[key] = index
            result = EntryResult(key, describe_entry(entry))
            report.problems.extend(f"{where}: {p}" for p in self.check_entry(entry, result))
            if result.not_verifiable:
                report.notes.append(
                    f"{where}: not verifiable from predictions (reported by the submitter, shown as such): "
                    + ", ".join(result.not_verifiable)
                )
            report.entries.append(result)
        return report

    # ----------------------------------------------------------------- entry level

    def _load(self, metric: TrustProperty, options: Mapping[str, Any]) -> PropertyData | str:
        key = f"{metric.name}:{stable_hash(dict(options))}"
        if key not in self._data:
            try:
                self._data[key] = metric.load_data(self.ctx, options)
            except W2SBenchError as exc:
                self._data[key] = f"the test data could not be loaded: {exc.problem} ({exc.fix})"
            except Exception as exc:  # noqa: BLE001 - a plugin failure is reported, not raised
                self._data[key] = f"the test data could not be loaded: {type(exc).__name__}: {exc}"
        return self._data[key]

    def check_entry(self, entry: Mapping[str, Any], result: EntryResult) -> list[str]:
        """Problems with one entry; fills ``result`` with what was verified."""
        prop = entry["property"]
        if prop not in self.plugins.trust_properties:
            known = ", ".join(sorted(self.plugins.trust_properties.names()))
            return [f'unknown trust property "{prop}" (this installation has: {known}); install the plugin that provides it']
        metric: TrustProperty = self.plugins.trust_properties.get(prop)
        try:
            options = metric.options(entry["options"])
        except W2SBenchError as exc:
            return [f"its options do not fit the trust property: {exc.problem}"]
        data = self._load(metric, options)
        if isinstance(data, str):
            return [data]
        problems = self._check_metadata(entry, metric, data)
        if problems:
            return problems
        try:
            payload = decode_predictions(entry["predictions"])
        except UnsafeInput as exc:
            return [f"rejected: {exc}"]
        order, id_problems = self._id_order(payload["ids"], data)
        if id_problems:
            return id_problems
        return self._check_scores(entry, metric, options, data, payload["probabilities"], order, result)

    def _check_metadata(self, entry: Mapping[str, Any], metric: TrustProperty, data: PropertyData) -> list[str]:
        problems = []
        recorded = entry["data"]["tests"]
        for name, test in data.tests.items():
            if name not in recorded:
                problems.append(f'test set "{name}" is missing from the submission')
            elif recorded[name]["fingerprint"] != test.fingerprint():
                problems.append(
                    f'test set "{name}" has fingerprint {recorded[name]["fingerprint"][:12]}… but the benchmark\'s is '
                    f"{test.fingerprint()[:12]}… (different test data: another dataset version or options)"
                )
        for name in set(recorded) - set(data.tests):
            problems.append(f'test set "{_short(name)}" is not one of the benchmark\'s ({", ".join(sorted(data.tests))})')
        if entry["data"]["main_test"] != data.main_test:
            problems.append(f'main test set is "{_short(entry["data"]["main_test"])}" but the benchmark\'s is "{data.main_test}"')
        known = self._directions(metric, data)
        for info in entry["metrics"]:
            name = info["name"]
            if name not in known:
                problems.append(f'unknown metric "{_short(name)}" for trust property "{metric.name}"')
            elif known[name] != info["higher_is_better"]:
                problems.append(f'metric "{name}" is marked higher_is_better={info["higher_is_better"]}, but it is {known[name]}')
        if entry["primary_trust_metric"] not in {m.name for m in metric.metrics}:
            problems.append(f'primary trust metric "{_short(entry["primary_trust_metric"])}" is not a metric of "{metric.name}"')
        for name in entry["strategies"]:
            if name not in self.plugins.strategies:
                problems.append(f'unknown strategy "{_short(name)}"; install the plugin that provides it')
        known_strategies = [self.plugins.strategies.get(n) for n in entry["strategies"] if n in self.plugins.strategies]
        teacher_cells = [c for c in dict.fromkeys(reference_cells(s)[0] for s in known_strategies) if c not in BASELINE_CELLS]
        expected_cells = list(BASELINE_CELLS) + teacher_cells + list(entry["strategies"])
        for cell in expected_cells:
            if cell not in entry["cells"]:
                problems.append(f'cell "{_short(cell)}" is missing')
        for cell in entry["cells"]:
            if cell not in expected_cells:
                problems.append(f'cell "{_short(cell)}" is neither a baseline nor one of the entry\'s strategies')
        seeds = {str(s) for s in entry["seeds"]}
        for cell, body in entry["cells"].items():
            if cell in expected_cells and set(body["seeds"]) != seeds:
                problems.append(f'cell "{_short(cell)}" has seeds {sorted(body["seeds"])} but the entry ran {sorted(seeds)}')
        return problems

    @staticmethod
    def _directions(metric: TrustProperty, data: PropertyData) -> dict[str, bool]:
        infos = [m for m in TASK_METRICS if not (m.name == "auroc" and data.num_labels != 2)] + list(metric.metrics)
        return {m.name: m.higher_is_better for m in infos}

    @staticmethod
    def _id_order(ids: Mapping[str, Any], data: PropertyData) -> tuple[dict[str, np.ndarray], list[str]]:
        """For each test set, the row of each benchmark test example in the submitted predictions."""
        order, problems = {}, []
        for name, test in data.tests.items():
            submitted = ids.get(name)
            if not isinstance(submitted, list) or not all(isinstance(i, str) for i in submitted):
                problems.append(f'the predictions hold no id list for test set "{name}"')
                continue
            where = {i: n for n, i in enumerate(submitted)}
            if len(where) != len(submitted):
                problems.append(f'the predictions for test set "{name}" repeat example ids')
                continue
            missing = [i for i in test.ids if i not in where]
            extra = len(where) - (len(test.ids) - len(missing))
            if missing or extra:
                problems.append(
                    f'the predictions for test set "{name}" lack {len(missing)} of its {len(test.ids)} examples'
                    f" and hold {extra} ids it does not have"
                )
                continue
            order[name] = np.asarray([where[i] for i in test.ids], dtype=np.int64)
        return order, problems

    def _probabilities(
        self, probabilities: Mapping[str, Any], seed: str, cell: str, data: PropertyData, order: Mapping[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], list[str]]:
        per_test = (probabilities.get(seed) or {}).get(cell) if isinstance(probabilities.get(seed), dict) else None
        if not isinstance(per_test, dict):
            return {}, [f'cell "{_short(cell)}" seed {seed}: predictions are missing']
        out, problems = {}, []
        for name, test in data.tests.items():
            try:
                arr = np.asarray(per_test.get(name), dtype=np.float64)
            except (TypeError, ValueError):
                arr = np.zeros(0)
            if arr.shape != (len(test), data.num_labels) or not np.isfinite(arr).all() or (arr < -1e-6).any() or (arr > 1 + 1e-6).any():
                problems.append(
                    f'cell "{_short(cell)}" seed {seed}: predictions for test set "{name}" are not a '
                    f"{len(test)} x {data.num_labels} array of probabilities"
                )
                continue
            out[name] = arr[order[name]]
        return out, problems

    def _check_scores(
        self,
        entry: Mapping[str, Any],
        metric: TrustProperty,
        options: Mapping[str, Any],
        data: PropertyData,
        probabilities: Mapping[str, Any],
        order: Mapping[str, np.ndarray],
        result: EntryResult,
    ) -> list[str]:
        problems: list[str] = []
        directions = self._directions(metric, data)
        has_live = type(metric).evaluate_model is not TrustProperty.evaluate_model
        trust_names = {m.name for m in metric.metrics}
        table: dict[str, dict[str, dict[str, Any]]] = {}  # seed -> cell -> metric -> trusted value
        verified: set[str] = set()
        unverifiable: set[str] = set()
        for cell, body in entry["cells"].items():
            for seed, reported in body["seeds"].items():
                probs, bad = self._probabilities(probabilities, seed, cell, data, order)
                problems.extend(bad)
                if bad:
                    continue
                recomputed: dict[str, Any] = dict(task_scores(data.tests[data.main_test].labels, probs[data.main_test]))
                try:
                    recomputed.update(metric.evaluate(data, probs, options))
                except Exception as exc:  # noqa: BLE001 - the plugin could not score these probabilities
                    problems.append(f'cell "{_short(cell)}" seed {seed}: {metric.name}.evaluate failed ({type(exc).__name__}: {exc})')
                    continue
                trusted: dict[str, Any] = {}
                for name, value in recomputed.items():
                    value = None if isinstance(value, float) and math.isnan(value) else value
                    got = reported.get(name, _MISSING)
                    result.scores_checked += 1
                    if got is _MISSING:
                        problems.append(f'cell "{_short(cell)}" seed {seed}: score "{name}" is missing')
                    elif not _close(got, value):
                        problems.append(
                            f'cell "{_short(cell)}" seed {seed}: {name} is reported as {_fmt(got)} but the predictions give {_fmt(value)}'
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
                        problems.append(f'cell "{_short(cell)}" seed {seed}: unknown metric "{_short(name)}"')
                table.setdefault(seed, {})[cell] = trusted
        if problems:
            return problems
        seeds = sorted(table, key=int)
        for cell, body in entry["cells"].items():
            for name in set(body["summary"]) | {n for s in seeds for n in table[s][cell]}:
                for issue in _summary_problems(body["summary"].get(name), [table[s][cell].get(name) for s in seeds]):
                    problems.append(f'cell "{_short(cell)}": summary of {_short(name)} {issue}')
            if cell in BASELINE_CELLS or cell not in entry["strategies"]:  # baselines and teachers: no gap recovered
                continue
            strategy = self.plugins.strategies.get(cell)
            refs = reference_cells(strategy)
            if body.get("references") != {"weak": refs[0], "ceiling": refs[1]}:
                problems.append(f'cell "{cell}": references should be weak={refs[0]}, ceiling={refs[1]}')
            gaps = body.get("gap_recovered") or {}
            for name in set(gaps) - set(directions):
                problems.append(f'cell "{cell}": gap recovered of unknown metric "{_short(name)}"')
            for name, higher in directions.items():
                if name not in verified | unverifiable:
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
        result.verified = sorted(verified)
        result.not_verifiable = sorted(unverifiable)
        return problems


def _short(text: Any, limit: int = 80) -> str:
    """Echo submitted strings shortened and on one line, so a hostile value cannot flood the terminal."""
    s = str(text).replace("\n", " ").replace("\r", " ")
    return s if len(s) <= limit else s[: limit - 1] + "…"


def validate_files(paths: Sequence[Path], validator: Validator) -> list[ValidationReport]:
    """Validate each file, then flag entries that repeat an entry of an earlier file."""
    reports = [validator.validate_file(Path(p)) for p in paths]
    owner: dict[str, str] = {}
    for report in reports:
        for result in report.entries:
            if result.key in owner:
                report.problems.append(f"entry ({_short(result.label)}) duplicates an entry of {owner[result.key]}")
            else:
                owner[result.key] = report.path.name
    return reports
