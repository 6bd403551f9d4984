"""Leaderboard submissions: export -> validate -> build round trips, and tampered files rejected."""

from __future__ import annotations

import copy
import csv
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_FAIRNESS
from w2sbench import hookimpl
from w2sbench.cli import main
from w2sbench.interfaces import MetricInfo
from w2sbench.leaderboard import decode_predictions, encode_predictions, make_validator, validate_files
from w2sbench.plugin_manager import Plugins
from w2sbench.stats import gap_recovered, summarize
from w2sbench_plugins.fairness import Fairness

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = ("vanilla", "weak-tft", "weak-wts-tft")


@pytest.fixture(scope="module")
def exported(tiny_models, data_dir, tmp_path_factory) -> dict[str, Any]:
    """One real tiny-model run (two seeds) exported as a submission, shared by the tests of this module."""
    root = tmp_path_factory.mktemp("leaderboard")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("W2SBENCH_CACHE", str(root / "w2s-cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
        run = root / "run"
        assert main(["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--data-dir", str(data_dir), "--out", str(run),
                     "--quiet", "--finetune", "head", "--seeds", "0,1", *SMALL_FAIRNESS]) == 0
        path = root / "submissions" / "tiny-lab.json"
        path.parent.mkdir()
        assert main(["leaderboard", "export", str(run), "--to", str(path)]) == 0
    return {"run": run, "path": path, "doc": json.loads(path.read_text())}


def _write(tmp_path: Path, doc: Any, name: str = "tampered") -> Path:
    if isinstance(doc, dict) and "name" in doc and name != "tampered":
        doc["name"] = name
    elif isinstance(doc, dict) and "name" in doc:
        doc["name"] = "tampered"
    path = tmp_path / f"{name}.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _validate(data_dir: Path, *paths: Path, plugins: Any = None) -> list[Any]:
    return validate_files(list(paths), make_validator(data_dir, plugins))


@pytest.mark.slow
def test_round_trip_export_validate_build(exported, data_dir, tmp_path, capsys):
    doc = exported["doc"]
    assert doc["schema_version"] == "1.0" and doc["name"] == "tiny-lab"
    (entry,) = doc["entries"]
    assert entry["property"] == "fairness" and entry["seeds"] == [0, 1] and entry["strategies"] == list(STRATEGIES)
    assert entry["models"]["strong"]["params"] and entry["models"]["strong"]["sha256"]
    assert entry["cells"]["vanilla"]["summary"]["accuracy"]["n"] == 2
    payload = decode_predictions(entry["predictions"])
    assert len(payload["ids"]["adult_test"]) == 150
    assert len(payload["probabilities"]["1"]["weak-wts-tft"]["adult_test"]) == 150

    # The generic exporter route writes the same entries.
    other = tmp_path / "via-export.json"
    assert main(["export", str(exported["run"]), "--format", "leaderboard", "--to", str(other)]) == 0
    assert json.loads(other.read_text())["entries"] == doc["entries"]

    capsys.readouterr()
    assert main(["leaderboard", "validate", str(exported["path"]), "--data-dir", str(data_dir)]) == 0
    out = capsys.readouterr().out
    assert "ok" in out and "scores recomputed and matched" in out

    board = tmp_path / "board"
    board.mkdir()
    (board / "board-stale.md").write_text("left over from a removed property")
    assert main(["leaderboard", "build", "--submissions", str(exported["path"].parent), "--out", str(board),
                 "--data-dir", str(data_dir)]) == 0
    assert sorted(p.name for p in board.iterdir()) == ["board-fairness.csv", "board-fairness.md", "index.html"]
    rows = list(csv.DictReader((board / "board-fairness.csv").open()))
    assert sorted(r["strategy"] for r in rows) == sorted(STRATEGIES)
    vanilla = next(r for r in rows if r["strategy"] == "vanilla")
    assert float(vanilla["accuracy"]) == pytest.approx(entry["cells"]["vanilla"]["summary"]["accuracy"]["mean"])
    assert vanilla["accuracy_ci95_low"] != ""  # two seeds give an interval
    md = (board / "board-fairness.md").read_text()
    assert "| # | submission |" in md and "gap recovered: demographic_parity_difference" in md
    html = (board / "index.html").read_text()
    assert html.count("<svg") == 2 and 'class="board"' in html  # the size plot and the gap-recovered plot
    assert not re.search(r"""(src|href|url)\s*[=(]\s*["']?(https?:|//)""", html)  # nothing loads from the network


def _tamper_score(doc):
    doc["entries"][0]["cells"]["vanilla"]["seeds"]["0"]["accuracy"] += 0.05


def _tamper_summary(doc):
    doc["entries"][0]["cells"]["weak"]["summary"]["demographic_parity_difference"]["mean"] = 0.5


def _tamper_interval(doc):
    # one more bound than an interval has: its first two must not be taken for the interval (the schema's job)
    summary = doc["entries"][0]["cells"]["vanilla"]["summary"]["accuracy"]
    summary["ci95"] = [*summary["ci95"], 1.0]


def _tamper_gap(doc):
    gap = doc["entries"][0]["cells"]["weak-tft"]["gap_recovered"]["accuracy"]
    gap["seeds"]["1"] = 0.42


def _tamper_prediction(doc):
    # A careful forger re-encodes (valid hash); the recomputed scores still expose the edit.
    entry = doc["entries"][0]
    payload = decode_predictions(entry["predictions"])
    rows = payload["probabilities"]["0"]["vanilla"]["adult_test"]
    for i in range(10):
        rows[i] = [rows[i][1], rows[i][0]] if rows[i][0] != rows[i][1] else [1.0, 0.0]
        rows[i] = [0.0, 1.0] if rows[i][0] > 0.5 else [1.0, 0.0]
    entry["predictions"] = encode_predictions(payload["ids"], payload["probabilities"])


def _tamper_prediction_bytes(doc):
    # Edited and re-compressed, but the recorded hash was left as it was.
    block = doc["entries"][0]["predictions"]
    payload = decode_predictions(block)
    payload["probabilities"]["0"]["weak"]["adult_test"][0] = [0.0, 1.0]
    block["data"] = encode_predictions(payload["ids"], payload["probabilities"])["data"]


def _tamper_ids(doc):
    entry = doc["entries"][0]
    payload = decode_predictions(entry["predictions"])
    payload["ids"]["adult_test"][3] = "test-999999"
    entry["predictions"] = encode_predictions(payload["ids"], payload["probabilities"])


def _missing_field(doc):
    del doc["entries"][0]["seeds"]


def _missing_cell(doc):
    del doc["entries"][0]["cells"]["weak-tft"]


def _unknown_metric(doc):
    for seed in ("0", "1"):
        doc["entries"][0]["cells"]["ceiling"]["seeds"][seed]["telepathy_score"] = 0.9


def _unknown_property(doc):
    doc["entries"][0]["property"] = "telepathy"


def _wrong_version(doc):
    doc["schema_version"] = "2.0"


def _duplicate_entry(doc):
    doc["entries"].append(copy.deepcopy(doc["entries"][0]))


def _hostile_name(doc):
    doc["name"] = "../../etc/<script>alert(1)</script>"


def _other_test_data(doc):
    doc["entries"][0]["options"]["test_size"] = 149


TAMPERINGS = {
    "score edited": (_tamper_score, 'cell "vanilla" seed 0: accuracy is reported as'),
    "summary edited": (_tamper_summary, 'cell "weak": summary of demographic_parity_difference mean is 0.5'),
    "interval with three bounds": (_tamper_interval, "schema at entries/0/cells/vanilla/summary/accuracy/ci95:"),
    "gap ratio edited": (_tamper_gap, 'cell "weak-tft" seed 1: gap recovered of accuracy is reported as 0.42'),
    "prediction edited": (_tamper_prediction, "but the predictions give"),
    "prediction bytes edited": (_tamper_prediction_bytes, "predictions do not match their recorded sha256"),
    "ids edited": (_tamper_ids, 'predictions for test set "adult_test" lack 1 of its 150 examples'),
    "missing field": (_missing_field, "schema at entries/0: 'seeds' is a required property"),
    "missing cell": (_missing_cell, 'cell "weak-tft" is missing'),
    "unknown metric": (_unknown_metric, 'cell "ceiling" seed 0: unknown metric "telepathy_score"'),
    "unknown property": (_unknown_property, 'unknown trust property "telepathy"'),
    "wrong version": (_wrong_version, "has schema version '2.0'"),
    "duplicate entry": (_duplicate_entry, "entry 1 (fairness: tiny-bert -> tiny-bert-big (head:head)) duplicates entry 0"),
    "hostile name": (_hostile_name, "schema at name: '../../etc/<script>alert(1)</script>' does not match"),
    "different test data": (_other_test_data, 'test set "adult_test" has fingerprint'),
}


@pytest.mark.slow  # shares a module-scoped tiny-model run
@pytest.mark.parametrize("case", list(TAMPERINGS))
def test_tampered_submission_is_rejected_with_a_clear_message(case, exported, data_dir, tmp_path, capsys):
    tamper, message = TAMPERINGS[case]
    doc = copy.deepcopy(exported["doc"])
    tamper(doc)
    path = tmp_path / "tampered.json"
    if case != "hostile name":
        doc["name"] = "tampered"
    path.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["leaderboard", "validate", str(path), "--data-dir", str(data_dir)]) == 1
    out = capsys.readouterr().out
    assert f"INVALID {path}" in out
    assert message in out, out


def test_nesting_depth_counts_brackets_outside_strings_only():
    import random

    from w2sbench.leaderboard._safejson import nesting_depth

    assert nesting_depth(json.dumps({"a": "]]]]", "b": [[[["[["]]]]})) == 5
    assert nesting_depth(json.dumps({"a": 'x"]]]', "b": [[1]]})) == 3  # an escaped quote does not end the string
    assert nesting_depth(json.dumps({"a": "x\\", "b": [[1]]})) == 3  # an escaped backslash does not escape the quote
    assert nesting_depth("7") == 0

    def depth(value):  # noqa: ANN001, ANN202
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else None
        return 0 if children is None else 1 + max((depth(c) for c in children), default=0)

    def build(rng, level):  # noqa: ANN001, ANN202
        if level > 6 or rng.random() < 0.3:
            return "".join(rng.choice('[]{}"\\aé') for _ in range(rng.randrange(6)))
        items = [build(rng, level + 1) for _ in range(rng.randrange(4))]
        return items if rng.random() < 0.5 else {f"k{i}]": item for i, item in enumerate(items)}

    rng = random.Random(0)
    for _ in range(300):
        value = build(rng, 0)
        assert nesting_depth(json.dumps(value, ensure_ascii=False)) == depth(value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "it is not valid JSON"),
        ("[" * 100_000 + "]" * 100_000, "nested deeper than 32 levels"),
        ('[{"a":' * 30 + "1" + "}]" * 30, "nested deeper than 32 levels"),  # 60 levels, 30 of each bracket
        ('{"score": NaN}', "it contains NaN"),
        (b"\xff\xfe{}", "not UTF-8"),
        ("[1, 2]", "is a JSON list, not a submission object"),
    ],
    ids=["invalid json", "deep nesting", "deep alternating nesting", "nan", "binary", "not an object"],
)
def test_unreadable_files_are_rejected(content, message, data_dir, tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    assert main(["leaderboard", "validate", str(path), "--data-dir", str(data_dir)]) == 1
    assert message in capsys.readouterr().out


@pytest.mark.slow  # shares a module-scoped tiny-model run
def test_size_caps_stop_huge_files_and_gzip_bombs(exported, data_dir, tmp_path, monkeypatch):
    import w2sbench.leaderboard._safejson as safejson

    monkeypatch.setattr(safejson, "MAX_FILE_BYTES", 10_000)
    (report,) = _validate(data_dir, exported["path"])
    assert not report.ok and "submissions may be at most 0 MiB" in report.problems[0]
    monkeypatch.undo()
    monkeypatch.setattr(safejson, "MAX_PAYLOAD_BYTES", 2**20)  # a bomb: 64 MiB of zeros, ~64 KiB compressed
    doc = copy.deepcopy(exported["doc"])
    bomb = encode_predictions({"adult_test": ["0" * (64 * 2**20)]}, {})
    doc["entries"][0]["predictions"] = bomb
    (report,) = _validate(data_dir, _write(tmp_path, doc))
    assert any("decompress to more than 1 MiB" in p for p in report.problems), report.problems


@pytest.mark.slow  # shares a module-scoped tiny-model run
def test_file_name_must_be_safe_and_match_the_name(exported, data_dir, tmp_path):
    doc = copy.deepcopy(exported["doc"])
    path = tmp_path / "<b>evil.json"
    path.write_text(json.dumps(doc))
    (report,) = _validate(data_dir, path)
    assert any("not a safe submission name" in p for p in report.problems)
    assert any('names itself "tiny-lab" but the file is <b>evil.json' in p for p in report.problems)


@pytest.mark.slow  # shares a module-scoped tiny-model run
def test_duplicates_across_files_are_rejected(exported, data_dir, tmp_path):
    copy_path = _write(tmp_path, copy.deepcopy(exported["doc"]), "copy-of-tiny-lab")
    first, second = _validate(data_dir, exported["path"], copy_path)
    assert first.ok
    assert not second.ok and "duplicates an entry of tiny-lab.json" in second.problems[0]


@pytest.mark.slow  # shares a module-scoped tiny-model run
def test_export_refuses_an_unsafe_destination_name(exported, tmp_path, capsys):
    assert main(["leaderboard", "export", str(exported["run"]), "--to", str(tmp_path / "bad name!.json")]) == 2
    assert "not a usable submission name" in capsys.readouterr().err


class _LiveFairness(Fairness):
    """Fairness plus a score only the model can give (like a live attack), so it cannot be recomputed."""

    metrics = (*Fairness.metrics, MetricInfo("live_attack_success", False, "needs the model"))

    def evaluate(self, data, probabilities, options):
        return Fairness().evaluate(data, probabilities, options)

    def evaluate_model(self, model, data, options, seed):  # pragma: no cover - never called by the validator
        return {"live_attack_success": 0.0}


class _LivePlugin:
    @hookimpl
    def w2sbench_register_trust_metrics(self):
        return [_LiveFairness()]


@pytest.mark.slow  # shares a module-scoped tiny-model run
def test_model_only_scores_are_listed_as_not_verifiable(exported, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("W2SBENCH_DISABLE_PLUGINS", "fairness")
    plugins = Plugins(extra_plugins=[("live-fairness", _LivePlugin())])
    doc = copy.deepcopy(exported["doc"])
    entry = doc["entries"][0]
    entry["metrics"].append({"name": "live_attack_success", "higher_is_better": False, "kind": "trust"})
    values = {cell: {"0": 0.1 + i / 10, "1": 0.15 + i / 10} for i, cell in enumerate(entry["cells"])}
    for cell, body in entry["cells"].items():
        for seed in ("0", "1"):
            body["seeds"][seed]["live_attack_success"] = values[cell][seed]
        body["summary"]["live_attack_success"] = summarize(list(values[cell].values()))
        if cell in STRATEGIES:
            weak, ceiling = body["references"]["weak"], body["references"]["ceiling"]
            ratios = {s: gap_recovered(values[cell][s], values[weak][s], values[ceiling][s], False) for s in ("0", "1")}
            body["gap_recovered"]["live_attack_success"] = {"seeds": ratios, "summary": summarize(list(ratios.values()))}
    (report,) = _validate(data_dir, _write(tmp_path, doc, "live"), plugins=plugins)
    assert report.ok, report.problems
    assert report.entries[0].not_verifiable == ["live_attack_success"]
    assert "not verifiable from predictions" in report.notes[0]

    # Editing it is not caught by recomputation (it cannot be), but the board marks it as reported-only.
    from w2sbench.leaderboard import collect_rows, render_markdown

    rows = collect_rows([report], plugins.trust_properties.items)["fairness"]
    assert "†" in render_markdown(plugins.trust_properties.get("fairness"), rows)


def test_shipped_submissions_validate_and_the_board_is_current(data_dir, tmp_path):
    shipped = REPO / "leaderboards" / "submissions"
    paths = sorted(shipped.glob("*.json"))
    assert paths, "leaderboards/submissions/ must hold at least one real submission"
    out = tmp_path / "board"
    out.mkdir()
    assert main(["leaderboard", "build", "--submissions", str(shipped), "--out", str(out), "--data-dir", str(data_dir)]) == 0
    for made in out.iterdir():
        committed = REPO / "leaderboards" / made.name
        assert committed.is_file() and committed.read_text() == made.read_text(), (
            f"leaderboards/{made.name} is out of date: run `w2sbench leaderboard build`"
        )
    assert os.access(REPO / "leaderboards" / "index.html", os.R_OK)
    # offline-default's product predicts one class for every fairness test example on every seed: flagged, last
    lines = [line for line in (out / "board-fairness.md").read_text().splitlines() if line.startswith("| ") and line[2].isdigit()]
    assert "| offline-default | minilm-l0 → minilm-l6 | head:full | product ‡ | 3 | 0.770 [0.770, 0.770] |" in lines[-1]
    assert sum("‡ |" in line for line in lines) == 1
    assert "product,3," in next(r for r in (out / "board-fairness.csv").read_text().splitlines() if r.endswith(",yes"))


@pytest.mark.slow  # shares a module-scoped tiny-model run
def test_a_submission_whose_test_data_is_missing_here_is_unchecked_not_invalid(exported, tmp_path, capsys):
    empty = tmp_path / "no-data"
    empty.mkdir()
    capsys.readouterr()
    assert main(["leaderboard", "validate", str(exported["path"]), "--data-dir", str(empty)]) == 2
    out = capsys.readouterr().out
    assert "INVALID" not in out and "ok " not in out
    assert f"UNCHECKED {exported['path']}: 1 entry could not be checked here" in out
    assert "the test data could not be loaded:" in out
    assert "fix: pass --data-dir DIR with the benchmark's dataset mirror" in out
