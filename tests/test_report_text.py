"""What `w2sbench report` writes, on synthetic runs: fractions, why a gap recovered is undefined, the accuracy-gap
line's reference pair, --bootstrap N recomputing the findings (and 0 leaving them out), and the run's time over
re-runs (timing.history)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rich.console import Console

from tests.test_findings import LEVELS, VANILLA, WEAK_TFT, WTS, Toy, _examples, _outcome
from w2sbench.errors import W2SBenchError
from w2sbench.findings_table import accuracy_gap_line
from w2sbench.interfaces import PropertyData
from w2sbench.report import render_report, render_tables, report_document, timing_lines
from w2sbench.report_findings import recompute_findings, stored_resamples, without_findings
from w2sbench.report_values import format_interval, format_summary, ratio_reason
from w2sbench.results import build_property_result, build_results, write_results
from w2sbench.timing_history import MAX_HISTORY, earlier_invocations

# weak-reg and ceiling-reg 0.6 apart from... nothing: their accuracy gap is 0, so weak-wts-tft's gap recovered
# (against weak-reg, ceiling-reg) is undefined while vanilla's (against weak, ceiling) is defined
UNRESOLVED = {**LEVELS, "weak-reg": 0.7, "ceiling-reg": 0.7}
SETTINGS = {"pair": "w:s", "weak": "w", "strong": "s", "metrics": ["toy"], "strategies": ["vanilla", "weak-tft", "weak-wts-tft"],
            "seeds": [0, 1, 2], "finetune_weak": "head", "finetune_strong": "full", "options": {"toy": {}}, "train": {},
            "data_dir": None, "device": "cpu"}
MODELS = {role: {"name": role, "source": role, "sha256": "0" * 64} for role in ("weak", "strong")}


def _results(levels: Mapping[str, float] = UNRESOLVED, resamples: int = 50) -> tuple[dict[str, Any], Any]:
    strategies = [VANILLA, WEAK_TFT, WTS]
    outcome = _outcome(strategies, levels)
    prop = build_property_result(Toy(), strategies, outcome, resamples=resamples)
    return build_results(SETTINGS, MODELS, {"toy": prop}, {"seconds": 2.0, "stages_computed": 5, "stages_cached": 0}), outcome


@pytest.fixture(scope="module")
def unresolved() -> dict[str, Any]:
    return _results()[0]


def _text(results: Mapping[str, Any], width: int = 80) -> str:
    console = Console(width=width, record=True)
    render_tables(results, console)
    return console.export_text()


# --------------------------------------------------------------------------- fractions


def test_scores_are_fractions_with_three_decimals_like_the_findings_table():
    assert format_interval({"mean": 0.835, "lo": 0.8201, "hi": 0.85}) == "0.835 [0.820, 0.850]"
    assert format_interval({"mean": 0.835, "lo": None, "hi": None}) == "0.835"
    assert format_interval({"mean": None}) == "undefined"
    assert format_summary({"mean": 0.835, "std": 0.0042}) == "0.835 ± 0.004"


@pytest.mark.parametrize("width", [80, 120])
def test_accuracy_reads_as_a_fraction_in_the_score_table(unresolved, width):
    text = _text(unresolved, width)
    mean = unresolved["properties"]["toy"]["cells"]["weak"]["summary"]["accuracy"]["mean"]
    lo, hi = unresolved["properties"]["toy"]["cells"]["weak"]["intervals"]["accuracy"]
    row = next(i for i, line in enumerate(text.splitlines()) if line.startswith("accuracy ↑"))
    lines = text.splitlines()
    assert f"{mean:.3f}" in lines[row] and f"[{lo:.3f}, {hi:.3f}]" in lines[row + 1]
    assert f"{mean * 100:.1f}" not in text
    assert max(len(line) for line in lines) <= width


# --------------------------------------------------------------------------- why a gap recovered is undefined


def _gap_prop(gap: float, ci: list[float] | None, higher: bool = True, reason: str | None = None, n: int = 3) -> dict[str, Any]:
    summary = {"mean": None, "std": None, "stderr": None, "ci95": None, "n": n, "gap": gap, "gap_ci95": ci, "resolved": False}
    if reason:
        summary["reason"] = reason
    return {
        "metrics": [{"name": "m", "higher_is_better": higher, "kind": "trust"}],
        "cells": {"wts": {"references": {"weak": "weak-reg", "ceiling": "ceiling-reg"},
                          "gap_recovered": {"m": {"seeds": {}, "summary": summary}}}},
    }


def test_the_reason_names_the_strategys_own_reference_pair_and_gap():
    assert ratio_reason(_gap_prop(0.009, [-0.003, 0.022]), "wts", "m") == (
        "m gap ceiling-reg - weak-reg +0.009 [-0.003, +0.022]: the ceiling beats the weak model by less than the 0.01 "
        "minimum gap")
    assert ratio_reason(_gap_prop(0.03, [-0.01, 0.07]), "wts", "m") == (
        "m gap ceiling-reg - weak-reg +0.030 [-0.010, +0.070]: the 95% interval of the gap includes 0")
    # lower is better: a positive ceiling - weak is a worse ceiling
    assert ratio_reason(_gap_prop(0.08, [0.05, 0.11], higher=False), "wts", "m") == (
        "m gap ceiling-reg - weak-reg +0.080 [+0.050, +0.110]: the ceiling is worse than the weak model")
    assert ratio_reason(_gap_prop(0.02, [-0.01, 0.05], higher=False), "wts", "m") == (
        "m gap ceiling-reg - weak-reg +0.020 [-0.010, +0.050]: the ceiling is not better than the weak model")
    assert ratio_reason(_gap_prop(0.05, None, reason="no interval for the gap (none: live score with 1 seed)"), "wts", "m") == (
        "m gap ceiling-reg - weak-reg +0.050: no interval for the gap (none: live score with 1 seed)")
    assert ratio_reason(_gap_prop(0.05, None, n=0), "wts", "m") == "m: no seed scores wts, weak-reg and ceiling-reg all"
    defined = _gap_prop(0.05, [0.02, 0.08])
    defined["cells"]["wts"]["gap_recovered"]["m"]["summary"]["mean"] = 0.4
    assert ratio_reason(defined, "wts", "m") is None


@pytest.mark.parametrize("width", [80, 120])
def test_an_undefined_gap_recovered_gets_a_note_under_the_table(unresolved, width):
    prop = unresolved["properties"]["toy"]
    summary = prop["cells"]["weak-wts-tft"]["gap_recovered"]["accuracy"]["summary"]
    assert summary["mean"] is None and prop["cells"]["vanilla"]["gap_recovered"]["accuracy"]["summary"]["mean"] is not None
    text = _text(unresolved, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width
    assert [line for line in lines if line != line.rstrip()] == []  # a log file gets no trailing blanks
    flat = " ".join(text.split())
    reason = ratio_reason(prop, "weak-wts-tft", "accuracy")
    assert reason is not None and reason.startswith("accuracy gap ceiling-reg - weak-reg ")
    # each undefined ratio reads "undefined (a)", lettered in reading order; ratios with the same reason share a note
    reasons = [ratio_reason(prop, c, m) for m in ("accuracy", "shifted_accuracy") for c in ("vanilla", "weak-tft", "weak-wts-tft")]
    notes = list(dict.fromkeys(r for r in reasons if r))
    assert flat.count("undefined (a)") == reasons.count(notes[0])
    for i, note in enumerate(notes):
        assert f"({'abc'[i]}) {note}" in flat
    assert "(d)" not in flat
    # the JSON report carries the same reason
    doc = report_document(unresolved)["properties"]["toy"]["cells"]["weak-wts-tft"]["gap_recovered"]["accuracy"]
    assert doc["mean"] is None and doc["reason"] == reason


def test_the_findings_of_every_property_come_together_with_the_runs_holm_count(unresolved):
    two = {**unresolved, "properties": {"toy": unresolved["properties"]["toy"], "toy2": unresolved["properties"]["toy"]}}
    flat = " ".join(_text(two).split())
    # one legend, after both findings tables and both properties' score tables: 8 comparisons each, corrected together
    assert flat.count("Holm-corrected over the run's 16 comparisons") == 1 and "over the run's 8 comparisons" not in flat
    assert flat.index("toy2: synthetic") < flat.index("toy: trust = shifted_accuracy") < flat.index("toy2: trust = shifted_accuracy")


def _gap(**kw: Any) -> dict[str, Any]:
    return {"accuracy_gap": {"gap": 0.024, "ci95": [0.011, 0.036], "resolved": True, "strategies": ["vanilla"], **kw}}


def test_the_accuracy_gap_line_says_whose_gap_recovered_it_decides():
    scope = "accuracy gap recovered against weak and ceiling (the references of vanilla)"
    assert accuracy_gap_line("p", _gap()) == f"p: accuracy gap ceiling - weak +0.024 [+0.011, +0.036]: resolved, so {scope} is defined"
    assert accuracy_gap_line("p", _gap(ci95=[-0.01, 0.05], resolved=False)) == (
        f"p: accuracy gap ceiling - weak +0.024 [-0.010, +0.050]: the 95% interval of the gap includes 0, so {scope} is "
        "undefined")
    assert accuracy_gap_line("p", _gap(gap=0.005, ci95=[0.001, 0.009])).endswith(
        f": the ceiling beats the weak model by less than the 0.01 minimum gap, so {scope} is undefined")
    assert accuracy_gap_line("p", _gap(gap=-0.03, ci95=[-0.05, -0.01])).endswith(
        f": the ceiling is worse than the weak model, so {scope} is undefined")
    # results written before accuracy_gap.strategies: the pair alone
    older = {"accuracy_gap": {"gap": 0.024, "ci95": [0.011, 0.036], "resolved": True}}
    assert accuracy_gap_line("p", older).endswith(": resolved, so accuracy gap recovered against weak and ceiling is defined")
    assert accuracy_gap_line("p", {"accuracy_gap": None}) == (
        "p: accuracy gap ceiling - weak undefined, so accuracy gap recovered against weak and ceiling is undefined")


def test_the_findings_record_the_strategies_taught_against_weak_and_ceiling(unresolved):
    assert unresolved["properties"]["toy"]["findings"]["accuracy_gap"]["strategies"] == ["vanilla"]


# --------------------------------------------------------------------------- --bootstrap N


class _Plugins:
    def __init__(self, metric: Toy) -> None:
        self.trust_properties = _Registry({metric.name: metric})


class _Registry:
    def __init__(self, items: dict[str, Any]) -> None:
        self.items = items

    def __contains__(self, name: str) -> bool:
        return name in self.items

    def get(self, name: str) -> Any:
        return self.items[name]


class _LoadedToy(Toy):
    def __init__(self, data: PropertyData) -> None:
        self.data = data

    def load_data(self, ctx: Any, options: Mapping[str, Any]) -> PropertyData:
        return self.data


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], _Plugins]:
    """A run directory as `w2sbench run` writes it (results.json and the predictions sidecar), 50 resamples."""
    results, outcome = _results()
    folder = tmp_path_factory.mktemp("toy-run")
    write_results(folder, results, {"toy": outcome})
    return folder, json.loads((folder / "results.json").read_text()), _Plugins(_LoadedToy(outcome.data))


def test_recomputing_with_the_stored_resamples_gives_the_stored_findings(run_dir):
    folder, results, plugins = run_dir
    again = recompute_findings(folder, results, plugins, 50, cache_dir=folder / "cache")
    assert json.loads(json.dumps(again["properties"])) == results["properties"]  # the same bootstrap, bit for bit
    assert stored_resamples(again) == 50


def test_bootstrap_n_recomputes_the_findings_and_keeps_results_json(run_dir, capsys):
    folder, results, plugins = run_dir
    before = (folder / "results.json").read_bytes()
    render_report([folder], Console(width=80, record=True), plugins, as_json=True, resamples=20, cache_dir=folder / "cache")
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"]["bootstrap"] == {"source": "recomputed", "resamples": 20}
    prop = doc["properties"]["toy"]
    assert prop["findings"]["resamples"] == 20
    assert prop["cells"]["weak"]["intervals"] != results["properties"]["toy"]["cells"]["weak"]["intervals"]
    assert [r["verdict"] is not None for r in prop["findings"]["comparisons"]] == [True] * 8  # Holm-corrected again
    assert (folder / "results.json").read_bytes() == before
    assert any((folder / "cache" / "findings").iterdir())  # the bootstrap is kept for the next report
    console = Console(width=80, record=True)
    render_report([folder], console, plugins, resamples=20, cache_dir=folder / "cache")
    text = console.export_text()
    assert "(20 resamples;" in " ".join(text.split())
    assert "recomputing the findings with 20 bootstrap resamples (results.json holds 50" in " ".join(capsys.readouterr().err.split())


def test_bootstrap_default_and_the_stored_number_show_the_stored_findings(run_dir, capsys):
    folder, results, plugins = run_dir
    for resamples in (None, 50):
        render_report([folder], Console(), plugins, as_json=True, resamples=resamples)
        doc = json.loads(capsys.readouterr().out)
        assert doc["report"]["bootstrap"] == {"source": "results.json", "resamples": 50}
        assert doc["properties"] == results["properties"]
        assert capsys.readouterr().err == ""


def test_bootstrap_zero_leaves_the_findings_and_every_bootstrap_interval_out(run_dir, capsys):
    folder, results, plugins = run_dir
    render_report([folder], Console(), plugins, as_json=True, resamples=0)
    doc = json.loads(capsys.readouterr().out)
    assert doc["report"]["bootstrap"] == {"source": "off", "resamples": None}
    prop = doc["properties"]["toy"]
    assert "findings" not in prop and all("intervals" not in c and "stderr" not in c for c in prop["cells"].values())
    value = doc["report"]["properties"]["toy"]["cells"]["weak"]["scores"]["accuracy"]
    assert value["method"] == "t-interval over 3 seeds"  # no bootstrap: the t-interval over the seeds
    assert prop == without_findings(results)["properties"]["toy"]


def test_without_findings_is_what_run_writes_with_the_bootstrap_off():
    results, outcome = _results()
    off = build_property_result(Toy(), [VANILLA, WEAK_TFT, WTS], outcome, resamples=0)
    assert json.loads(json.dumps(without_findings(results)["properties"]["toy"])) == json.loads(json.dumps(off))


def test_a_negative_bootstrap_is_refused(run_dir):
    folder, _, plugins = run_dir
    with pytest.raises(W2SBenchError, match="--bootstrap -1 is negative"):
        render_report([folder], Console(), plugins, resamples=-1)


def test_recomputing_refuses_test_data_that_differ_from_the_runs(run_dir):
    folder, results, plugins = run_dir
    data = plugins.trust_properties.get("toy").data
    other = replace(data, tests={**data.tests, "main": _examples(400, 99)})  # other labels than the run's
    with pytest.raises(W2SBenchError, match="differ from the run's") as err:
        recompute_findings(folder, results, _Plugins(_LoadedToy(other)), 20, cache_dir=folder / "other-cache")
    assert "Leave out --bootstrap to show the findings results.json holds (50 resamples)" in err.value.fix


# --------------------------------------------------------------------------- timing over re-runs


def _timing(seconds: float, computed: int, cached: int) -> dict[str, Any]:
    return {"seconds": seconds, "stages_computed": computed, "stages_cached": cached}


def test_a_cached_rerun_keeps_the_cold_runs_time(tmp_path):
    results, outcome = _results()
    write_results(tmp_path, results, {"toy": outcome})
    cold = results["timing"]["history"]
    assert cold == [{"finished_utc": results["created_utc"], "w2sbench_version": results["w2sbench_version"], **_timing(2.0, 5, 0)}]
    earlier = earlier_invocations(tmp_path / "results.json", SETTINGS)
    assert earlier == cold
    rerun = build_results(SETTINGS, {}, {}, _timing(0.5, 0, 5), earlier=earlier)
    assert rerun["timing"]["seconds"] == 0.5 and rerun["timing"]["stages_computed"] == 0  # this invocation's
    assert [h["seconds"] for h in rerun["timing"]["history"]] == [2.0, 0.5]
    assert earlier_invocations(tmp_path / "results.json", {**SETTINGS, "seeds": [0]}) == []  # another configuration: not carried
    assert earlier_invocations(tmp_path / "nothing" / "results.json", SETTINGS) == []
    lines = timing_lines(rerun["timing"])
    assert lines == [
        f"last run: 0.5 s; stages computed 0, served from cache 5 (finished {rerun['created_utc']})",
        f"computation: 2.0 s in 1 run that computed stages (5 stages; first finished {results['created_utc']}); "
        "2 runs in all wrote these results",
    ]


def test_results_written_before_the_history_give_their_one_invocation(tmp_path):
    old = {"settings": SETTINGS, "created_utc": "2026-12-02T06:49:16Z", "w2sbench_version": "0.9", "timing": _timing(284.0, 20, 0)}
    (tmp_path / "results.json").write_text(json.dumps(old))
    assert earlier_invocations(tmp_path / "results.json", SETTINGS) == [
        {"finished_utc": "2026-12-02T06:49:16Z", "w2sbench_version": "0.9", **_timing(284.0, 20, 0)}]
    assert timing_lines(_timing(1.6, 0, 20)) == ["1.6 s; stages computed 0, served from cache 20"]


def test_the_history_is_capped_keeping_the_runs_that_computed():
    earlier = [{"finished_utc": str(i), **_timing(1.0, 3 if i in (0, 7) else 0, 3)} for i in range(MAX_HISTORY + 5)]
    history = build_results(SETTINGS, {}, {}, _timing(0.1, 0, 6), earlier=earlier)["timing"]["history"]
    assert len(history) == MAX_HISTORY
    assert [h["finished_utc"] for h in history[:3]] == ["0", "7", "8"]  # the oldest idle runs, 1-6, went first
    assert history[-1]["seconds"] == 0.1


def test_a_rerun_that_did_the_computing_is_one_line():
    history = [{"finished_utc": "t0", **_timing(1.6, 0, 20)}, {"finished_utc": "t1", **_timing(140.9, 16, 4)}]
    assert timing_lines({**_timing(140.9, 16, 4), "history": history}) == [
        "140.9 s; stages computed 16, served from cache 4 (the only one of the 2 runs of this directory that computed stages)"]
    resumed = [{"finished_utc": "t0", **_timing(100.0, 10, 0)}, {"finished_utc": "t1", **_timing(50.5, 6, 10)}]
    assert timing_lines({**_timing(50.5, 6, 10), "history": resumed}) == [
        "last run: 50.5 s; stages computed 6, served from cache 10 (finished t1)",
        "computation: 150.5 s in 2 runs that computed stages (16 stages; first finished t0); 2 runs in all wrote these results",
    ]


def test_stage_time_is_read_from_the_last_run_that_computed_stages():
    from w2sbench.report import stage_time_lines

    spent = {"fairness": {"predict": {"computed": 15, "seconds": 107.04}, "train": {"computed": 21, "seconds": 745.3}},
             "ood": {}}
    cold = {"finished_utc": "t0", **_timing(900.0, 36, 0), "stages": spent}
    rerun = {"finished_utc": "t1", **_timing(1.2, 0, 36), "stages": {"fairness": {}, "ood": {}}}
    expected = ["stage time, summed over worker processes, of the last run that computed stages:",
                "fairness: predict 107 s (15), train 745 s (21)", "ood: nothing computed"]
    assert stage_time_lines({**rerun, "history": [cold, rerun]}) == expected
    assert stage_time_lines({**_timing(900.0, 36, 0), "stages": spent}) == expected  # no history: this invocation
    assert stage_time_lines(_timing(1.6, 0, 20)) == []  # results from before stage times were kept


def test_a_run_whose_stages_all_came_from_the_cache_says_so():
    history = [{"finished_utc": "t", **_timing(0.4, 0, 9)}]
    assert timing_lines({**_timing(0.4, 0, 9), "history": history}) == [
        "0.4 s; stages computed 0, served from cache 9 (every stage came from the stage cache: computed by another run "
        "directory or configuration)"]


def test_scores_are_finite_in_the_json_report(run_dir, capsys):
    folder, _, plugins = run_dir
    render_report([folder], Console(), plugins, as_json=True, resamples=7, cache_dir=folder / "cache")
    text = capsys.readouterr().out
    assert "NaN" not in text and "Infinity" not in text
    assert np.isfinite(json.loads(text)["properties"]["toy"]["findings"]["comparisons"][0]["effect"])


def test_a_score_interval_is_cut_at_the_scores_possible_range():
    from w2sbench.report_values import score_interval

    summary = {"mean": 0.904, "std": 0.048, "stderr": 0.028, "ci95": [0.785, 1.024], "n": 3}
    prop = {"metrics": [{"name": "rate", "higher_is_better": False, "kind": "trust", "bounds": [0.0, 1.0]},
                        {"name": "free", "higher_is_better": True, "kind": "trust"},
                        {"name": "eps", "higher_is_better": False, "kind": "trust", "bounds": [0.0, None]}],
            "cells": {"c": {"summary": {"rate": summary, "free": summary,
                                        "eps": {**summary, "mean": 0.1, "ci95": [-0.2, 0.4]}}}}}
    assert score_interval(prop, "c", "rate") == {"mean": 0.904, "lo": 0.785, "hi": 1.0,
                                                  "method": "t-interval over 3 seeds, cut at the score's range"}
    assert score_interval(prop, "c", "free") == {"mean": 0.904, "lo": 0.785, "hi": 1.024, "method": "t-interval over 3 seeds"}
    assert (score_interval(prop, "c", "eps")["lo"], score_interval(prop, "c", "eps")["hi"]) == (0.0, 0.4)
