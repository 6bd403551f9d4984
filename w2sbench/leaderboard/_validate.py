"""Check submissions: schema, names, duplicates, test data, cells and prediction ids; every score is then
recomputed from the predictions (w2sbench/leaderboard/_rescore.py).

Scores are recomputed with the benchmark's own test labels (the trust property's ``load_data`` with
the submission's recorded options), never with anything the submission supplies except its
probabilities. Nothing in a submission is imported, unpickled or executed.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from w2sbench.design import BASELINE_CELLS
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
from w2sbench.leaderboard._rescore import SCORE_TOLERANCE, EntryResult, check_scores, score_directions, short
from w2sbench.leaderboard._safejson import UnsafeInput, read_json_file

__all__ = ["ValidationReport", "EntryResult", "Validator", "validate_files", "SCORE_TOLERANCE"]

_MAX_SCHEMA_ERRORS = 20


@dataclass
class ValidationReport:
    """The outcome for one submission file: problems (each one clear sentence), entries that could not be
    checked here (their test data did not load: the validator's data, not the submission, is missing) and notes."""

    path: Path
    submission: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    entries: list[EntryResult] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems and not self.unchecked and self.submission is not None


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
            report.problems.append(f"does not match the submission schema at {where}: {short(error.message)}")
        if len(errors) > _MAX_SCHEMA_ERRORS:
            report.problems.append(f"... and {len(errors) - _MAX_SCHEMA_ERRORS} more schema errors")
        if errors:
            return report
        if doc["name"] != stem:
            report.problems.append(f'names itself "{short(doc["name"])}" but the file is {report.path.name}; they must agree')
        report.submission = doc
        seen: dict[str, int] = {}
        for index, entry in enumerate(doc["entries"]):
            where = f"entry {index} ({short(describe_entry(entry))})"
            key = entry_key(entry)
            if key in seen:
                report.problems.append(f"{where} duplicates entry {seen[key]}: the same property, models, fine-tuning and options")
                continue
            seen[key] = index
            result = EntryResult(key, describe_entry(entry))
            with warnings.catch_warnings(record=True) as caught:  # a property's warning names the entry it came from
                warnings.simplefilter("always")
                report.problems.extend(f"{where}: {p}" for p in self.check_entry(entry, result))
            for w in caught:
                warnings.warn_explicit(f"{report.path.name} {where}: {w.message}", w.category, w.filename, w.lineno)
            if result.unchecked:
                report.unchecked.append(f"{where}: {result.unchecked}")
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
            result.unchecked = data
            return []
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
        return check_scores(entry, metric, options, data, payload["probabilities"], order, result, self.plugins.strategies.get)

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
            problems.append(f'test set "{short(name)}" is not one of the benchmark\'s ({", ".join(sorted(data.tests))})')
        if entry["data"]["main_test"] != data.main_test:
            problems.append(f'main test set is "{short(entry["data"]["main_test"])}" but the benchmark\'s is "{data.main_test}"')
        known = score_directions(metric, data)
        for info in entry["metrics"]:
            name = info["name"]
            if name not in known:
                problems.append(f'unknown metric "{short(name)}" for trust property "{metric.name}"')
            elif known[name] != info["higher_is_better"]:
                problems.append(f'metric "{name}" is marked higher_is_better={info["higher_is_better"]}, but it is {known[name]}')
        if entry["primary_trust_metric"] not in {m.name for m in metric.metrics}:
            problems.append(f'primary trust metric "{short(entry["primary_trust_metric"])}" is not a metric of "{metric.name}"')
        for name in entry["strategies"]:
            if name not in self.plugins.strategies:
                problems.append(f'unknown strategy "{short(name)}"; install the plugin that provides it')
        known_strategies = [self.plugins.strategies.get(n) for n in entry["strategies"] if n in self.plugins.strategies]
        teacher_cells = [c for c in dict.fromkeys(reference_cells(s)[0] for s in known_strategies) if c not in BASELINE_CELLS]
        expected_cells = list(BASELINE_CELLS) + teacher_cells + list(entry["strategies"])
        for cell in expected_cells:
            if cell not in entry["cells"]:
                problems.append(f'cell "{short(cell)}" is missing')
        for cell in entry["cells"]:
            if cell not in expected_cells:
                problems.append(f'cell "{short(cell)}" is neither a baseline nor one of the entry\'s strategies')
        seeds = {str(s) for s in entry["seeds"]}
        for cell, body in entry["cells"].items():
            if cell in expected_cells and set(body["seeds"]) != seeds:
                problems.append(f'cell "{short(cell)}" has seeds {sorted(body["seeds"])} but the entry ran {sorted(seeds)}')
        return problems

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

def validate_files(paths: Sequence[Path], validator: Validator) -> list[ValidationReport]:
    """Validate each file, then flag entries that repeat an entry of an earlier file."""
    reports = [validator.validate_file(Path(p)) for p in paths]
    owner: dict[str, str] = {}
    for report in reports:
        for result in report.entries:
            if result.key in owner:
                report.problems.append(f"entry ({short(result.label)}) duplicates an entry of {owner[result.key]}")
            else:
                owner[result.key] = report.path.name
    return reports
