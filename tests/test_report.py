"""Reports on real tiny runs: intervals over seeds or test examples, comparisons, verdicts, --json/--quiet."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import SMALL_FAIRNESS
from w2sbench.cli import main
from w2sbench.report import INTERVALS_FILE, render_tables
from w2sbench.report_values import comparisons, format_interval, ratio_interval
from w2sbench.results import load_results
from w2sbench.stats import summarize

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runs(tiny_models, data_dir, tmp_path_factory) -> dict[str, Path]:
    """A two-seed run and a one-seed run of the same cells (the second served from the first's cache)."""
    root = tmp_path_factory.mktemp("report-runs")
    pair = f"{tiny_models['bert']}:{tiny_models['bert-big']}"
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("W2SBENCH_CACHE", str(root / "w2s-cache"))
        mp.setenv("HF_HUB_OFFLINE", "1")
        for name, seeds in (("two", "0,1"), ("one", "0")):
            out[name] = root / name
            args = ["run", "--seeds", "0", "--pair", pair, "--properties", "fairness", "--finetune", "head", "--seeds", seeds,
                    "--data-dir", str(data_dir), "--out", str(out[name]), "--cache-dir", str(root / "cache"), "--quiet"]
            assert main([*args, *SMALL_FAIRNESS]) == 0
    return out


def _report_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["report", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_one_seed_bootstrap_n_recomputes_the_findings_over_test_examples(runs, capsys, monkeypatch):
    stored = load_results(runs["one"])
    before = (runs["one"] / "results.json").read_bytes()
    doc = _report_json(capsys, str(runs["one"]), "--bootstrap", "40")
    assert doc["settings"]["seeds"] == [0]  # still the results document, with a report section
    assert doc["report"]["bootstrap"] == {"source": "recomputed", "resamples": 40}
    assert doc["properties"]["fairness"]["findings"]["resamples"] == 40 != stored["properties"]["fairness"]["findings"]["resamples"]
    prop = doc["report"]["properties"]["fairness"]
    for cell, entry in prop["cells"].items():
        for metric in ("accuracy", "demographic_parity_difference"):
            value = entry["scores"][metric]
            assert value["method"] == "bootstrap over test examples", (cell, metric)
            assert value["lo"] <= value["hi"]
            assert [value["lo"], value["hi"]] == doc["properties"]["fairness"]["cells"][cell]["intervals"][metric]
    acc = prop["cells"]["ceiling"]["scores"]["accuracy"]
    # 150 test rows: a 95% interval of an accuracy is several points wide, and holds the point estimate here
    assert 0.02 < acc["hi"] - acc["lo"] < 0.4 and acc["lo"] <= acc["mean"] <= acc["hi"]
    rows = {(c["strategy"], c["baseline"]): c for c in prop["comparisons"]}
    assert set(rows) == {("weak-wts-tft", "vanilla"), ("weak-wts-tft", "weak-tft")}
    assert all(r["method"] == "bootstrap over 1 seed x test examples; p Holm-corrected" for r in rows.values())
    assert prop["verdict"].startswith("demographic_parity_difference, weak-wts-tft vs vanilla")
    assert not (runs["one"] / INTERVALS_FILE).exists()  # the findings' bootstrap serves every interval
    assert (runs["one"] / "results.json").read_bytes() == before  # the report never rewrites the run

    import w2sbench.findings_cache as findings_cache

    def rescored(*_a, **_k):
        raise AssertionError("re-scored although the bootstrap with 40 resamples was cached")

    monkeypatch.setattr(findings_cache, "resample_scores", rescored)
    again = _report_json(capsys, str(runs["one"]), "--bootstrap", "40")
    assert again == doc  # served from the findings cache in RUN/cache


def test_several_seeds_use_the_run_bootstrap_and_its_comparisons(runs, capsys):
    doc = _report_json(capsys, str(runs["two"]))
    assert doc["report"]["bootstrap"] == {"source": "results.json", "resamples": 200}
    assert not (runs["two"] / INTERVALS_FILE).exists()
    prop = doc["report"]["properties"]["fairness"]
    stored = doc["properties"]["fairness"]["cells"]["vanilla"]["intervals"]["accuracy"]
    value = prop["cells"]["vanilla"]["scores"]["accuracy"]
    # the crossed bootstrap over seeds x test examples written with the findings (not a t-interval over 2 seeds)
    assert value["method"] == "bootstrap over 2 seeds x test examples" and [value["lo"], value["hi"]] == stored
    assert prop["findings"]["comparisons"] and all(r["verdict"] for r in prop["findings"]["comparisons"])
    found = {(r["strategy"], r["baseline"]): r for r in prop["findings"]["comparisons"] if r["kind"] == "trust"}
    for row in prop["comparisons"]:
        # the headline comparisons are the findings' rows: their effect, interval, Holm p and verdict
        finding = found[(row["strategy"], row["baseline"])]
        assert (row["improvement"], row["interval"], row["p_value"], row["outcome"]) == (
            finding["effect"], finding["ci95"], finding["p_holm"], finding["verdict"])
        assert row["n_seeds"] == 2 and row["method"] == "bootstrap over 2 seeds x test examples; p Holm-corrected"
        # improvement is oriented: demographic parity difference is lower-is-better
        a, b = row["strategy_mean"], row["baseline_mean"]
        assert math.isclose(row["improvement"], b - a, abs_tol=1e-9)
    assert _report_json(capsys, str(runs["two"]), "--bootstrap", "200") == doc  # the stored number: as stored


def test_undefined_gap_ratio_is_shown_as_undefined(runs, capsys):
    results = load_results(runs["two"])
    prop = results["properties"]["fairness"]
    # The ceiling does not beat the weak model: stats.gap_recovered gives None for every seed.
    prop["cells"]["vanilla"]["gap_recovered"]["accuracy"] = {"seeds": {"0": None, "1": None}, "summary": summarize([None, None])}
    value = ratio_interval(prop, "vanilla", "accuracy")
    assert value["mean"] is None and format_interval(value) == "undefined"
    from rich.console import Console

    console = Console(record=True, width=200)
    render_tables(results, console)
    text = console.export_text()
    # scores as rows, cells as columns: the gap-recovered row holds vanilla's "undefined"
    gap_row = next(line for line in text.splitlines() if line.startswith("gap recovered:"))  # accuracy's comes first
    assert "undefined" in gap_row
    assert "weak-wts-tft vs vanilla" in text and "Holm p" in text and "verdict" in text


def test_comparison_orientation_for_higher_is_better():
    prop = {
        "primary_trust_metric": "robust_accuracy",
        "metrics": [{"name": "robust_accuracy", "higher_is_better": True, "kind": "trust"}],
        "cells": {
            name: {"role": "strategy", "seeds": {str(s): {"robust_accuracy": v + 0.01 * s} for s in range(3)},
                   "summary": {"robust_accuracy": summarize([v + 0.01 * s for s in range(3)])},
                   "references": {"weak": weak, "ceiling": ceiling}}  # the comparisons are read from these
            for name, v, weak, ceiling in (("vanilla", 0.5, "weak", "ceiling"), ("weak-tft", 0.52, "weak-reg", "ceiling"),
                                           ("weak-wts-tft", 0.6, "weak-reg", "ceiling-reg"))
        },
    }
    rows = comparisons(prop)
    assert [round(r["improvement"], 6) for r in rows] == [0.1, 0.08]
    assert all(r["outcome"] == "no significant difference" or r["outcome"] == "better" for r in rows)


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["tables", "json"])
def test_report_into_a_closed_pipe_ends_quietly(runs, json_flag):
    from tests.test_bad_inputs import into_closed_pipe

    done = into_closed_pipe(["report", str(runs["one"]), "--bootstrap", "0", *json_flag])
    assert done.returncode == 1
    assert "unexpected error" not in done.stderr and "BrokenPipeError" not in done.stderr  # a closed pipe is no bug


def test_quiet_prints_nothing_and_several_runs_render(runs, capsys):
    capsys.readouterr()
    assert main(["report", str(runs["one"]), "--quiet", "--bootstrap", "0"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["report", str(runs["one"]), str(runs["two"]), "--bootstrap", "0"]) == 0
    text = capsys.readouterr().out
    assert str(runs["one"]) in text and str(runs["two"]) in text
    docs = _report_json(capsys, str(runs["one"]), str(runs["two"]), "--bootstrap", "0")
    assert isinstance(docs, list) and len(docs) == 2
