"""Findings on a synthetic run with known effects: pairs, verdicts, Holm, gap recovered, layout."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from w2sbench.design import design_of, task_scores
from w2sbench.findings import comparison_pairs
from w2sbench.findings_table import render_findings
from w2sbench.interfaces import Examples, MetricInfo, PropertyData, Strategy, TrustProperty
from w2sbench.outcomes import PropertyOutcome, SeedOutcome
from w2sbench.results import build_property_result, build_results
from w2sbench.stats import holm

VANILLA = Strategy("vanilla", "plain", False, False)
WEAK_TFT = Strategy("weak-tft", "weak regularized", True, False)
WTS = Strategy("weak-wts-tft", "both regularized", True, True)
AUX = Strategy("aux-conf", "a new strategy", False, False)
# accuracy each cell reaches on every test set (the same in every seed but for its own example noise)
LEVELS = {"weak": 0.6, "weak-reg": 0.6, "ceiling": 0.9, "ceiling-reg": 0.95, "vanilla": 0.75, "weak-tft": 0.75, "weak-wts-tft": 0.85, "aux-conf": 0.7}


class Toy(TrustProperty):
    name = "toy"
    description = "synthetic"
    primary = "shifted_accuracy"
    metrics = (
        MetricInfo("shifted_accuracy", True, "Accuracy on the shifted test set."),
        MetricInfo("live_leak", False, "A live score with no per-example record."),
    )
    default_options = {"weak_train_size": 1, "transfer_size": 1, "val_size": 1, "max_length": 8}

    def load_data(self, ctx: Any, options: Mapping[str, Any]) -> PropertyData:
        raise NotImplementedError

    def regularizer(self, options: Mapping[str, Any]) -> Any:
        raise NotImplementedError

    def evaluate(self, data: PropertyData, probabilities: Mapping[str, np.ndarray], options: Mapping[str, Any]) -> dict[str, float]:
        shifted = data.tests["shifted"]
        return {"shifted_accuracy": float((probabilities["shifted"].argmax(1) == shifted.labels).mean())}


def _examples(n: int, seed: int) -> Examples:
    labels = np.random.default_rng(seed).integers(0, 2, n)
    return Examples(ids=[str(i) for i in range(n)], texts=[f"t{i}" for i in range(n)], labels=labels)


def _probs(labels: np.ndarray, level: float, rng: np.random.Generator) -> np.ndarray:
    correct = rng.random(len(labels)) < level
    predicted = np.where(correct, labels, 1 - labels)
    return np.eye(2)[predicted] * 0.8 + 0.1


def _outcome(strategies: list[Strategy], levels: Mapping[str, float], seeds: tuple[int, ...] = (0, 1, 2)) -> PropertyOutcome:
    data = PropertyData(train=_examples(10, 0), tests={"main": _examples(400, 1), "shifted": _examples(300, 2)}, main_test="main")
    metric = Toy()
    cells = ["weak", "weak-reg", "ceiling", "ceiling-reg", *[s.name for s in strategies]]
    scores: dict[int, dict[str, Any]] = {}
    predictions: dict[int, dict[str, Any]] = {}
    for seed in seeds:
        rng = np.random.default_rng(100 + seed)
        predictions[seed], scores[seed] = {}, {}
        for cell in cells:
            source = "vanilla" if cell == "weak-tft" else cell  # weak-tft predicts exactly like vanilla
            probs = predictions[seed].get(source) or {n: _probs(t.labels, levels[cell], rng) for n, t in data.tests.items()}
            predictions[seed][cell] = probs
            s: dict[str, Any] = dict(task_scores(data.tests["main"].labels, probs["main"]))
            s.update(metric.evaluate(data, probs, {}))
            s["live_leak"] = 0.5 + 0.01 * seed + (0.05 if cell == "weak-wts-tft" else 0.0)
            scores[seed][cell] = s
    return PropertyOutcome(data, {seed: SeedOutcome(scores[seed], predictions[seed], {c: {} for c in cells}) for seed in seeds})


class ToyLive(Toy):
    primary = "live_leak"


def _run(
    strategies: list[Strategy], levels: Mapping[str, float] = LEVELS, seeds: tuple[int, ...] = (0, 1, 2), metric: TrustProperty | None = None
) -> dict[str, Any]:
    prop = build_property_result(metric or Toy(), strategies, _outcome(strategies, levels, seeds), resamples=100)
    settings = {"seeds": list(seeds), "weak": "w", "strong": "s"}
    return build_results(settings, {}, {"toy": prop}, {})


def _rows(results: dict[str, Any]) -> dict[tuple[str, str, str], dict[str, Any]]:
    return {(r["strategy"], r["baseline"], r["kind"]): r for r in results["properties"]["toy"]["findings"]["comparisons"]}


@pytest.fixture(scope="module")
def paper_run() -> dict[str, Any]:
    return _run([VANILLA, WEAK_TFT, WTS])


def test_paper_pairs_verdicts_and_holm(paper_run):
    rows = _rows(paper_run)
    pairs = {("weak-tft", "vanilla"), ("weak-wts-tft", "vanilla"), ("weak-wts-tft", "weak-tft"), ("weak-wts-tft", "ceiling-reg")}
    assert set(rows) == {(a, b, k) for a, b in pairs for k in ("trust", "task")}
    # identical predictions: effect exactly 0 in every resample
    same = rows[("weak-tft", "vanilla", "task")]
    assert same["effect"] == 0.0 and same["p_value"] == 1.0 and same["verdict"] == "no significant difference"
    better = rows[("weak-wts-tft", "vanilla", "task")]
    assert 0.05 < better["effect"] < 0.15 and better["verdict"] == "better" and better["ci95"][0] > 0
    worse = rows[("weak-wts-tft", "ceiling-reg", "trust")]
    assert worse["effect"] < 0 and worse["verdict"] == "worse"
    ordered = list(rows.values())
    assert [r["p_holm"] for r in ordered] == holm([r["p_value"] for r in ordered])


def test_a_live_primary_score_gets_a_paired_t_test_over_seeds():
    from scipy import stats as st

    rows = _rows(_run([VANILLA, WTS], metric=ToyLive()))
    live = rows[("weak-wts-tft", "vanilla", "trust")]
    # live_leak (lower is better) is 0.05 higher for weak-wts-tft in every seed: effect -0.05, zero variance
    assert math.isclose(live["effect"], -0.05) and live["p_value"] == 0.0 and live["method"] == "paired t-test over 3 seeds (live score)"
    one = _rows(_run([VANILLA, WTS], seeds=(0,), metric=ToyLive()))[("weak-wts-tft", "vanilla", "trust")]
    assert one["p_value"] is None and one["verdict"] == "undefined" and one["method"].startswith("none: live score with 1 seed")
    assert st.ttest_1samp([0.1, 0.2], 0.0).pvalue < 1  # scipy is what the paired test uses


def test_every_score_has_a_standard_error_over_test_examples(paper_run):
    cell = paper_run["properties"]["toy"]["cells"]["weak"]
    se = cell["stderr"]["0"]["accuracy"]
    # binomial standard error of a 0.6 accuracy on 400 examples is 0.0245
    assert 0.017 < se < 0.032
    assert cell["stderr"]["0"]["live_leak"] is None  # live: no per-example record
    lo, hi = cell["intervals"]["accuracy"]
    assert lo < cell["summary"]["accuracy"]["mean"] < hi


def test_gap_recovered_is_the_ratio_of_mean_gaps_when_resolved(paper_run):
    prop = paper_run["properties"]["toy"]
    summary = prop["cells"]["vanilla"]["gap_recovered"]["accuracy"]["summary"]
    mean = {c: prop["cells"][c]["summary"]["accuracy"]["mean"] for c in ("vanilla", "weak", "ceiling")}
    assert summary["resolved"] and math.isclose(summary["mean"], (mean["vanilla"] - mean["weak"]) / (mean["ceiling"] - mean["weak"]))
    assert summary["ci95"][0] < summary["mean"] < summary["ci95"][1]
    assert prop["findings"]["accuracy_gap"]["resolved"]


def test_unresolved_gap_is_undefined_with_the_measured_gap():
    levels = {**LEVELS, "ceiling": 0.6, "ceiling-reg": 0.6}
    prop = _run([VANILLA], levels)["properties"]["toy"]
    summary = prop["cells"]["vanilla"]["gap_recovered"]["accuracy"]["summary"]
    assert summary["mean"] is None and not summary["resolved"] and summary["gap_ci95"][0] < 0 < summary["gap_ci95"][1]
    assert abs(summary["gap"]) < 0.05 and "reason" in summary
    assert not prop["findings"]["accuracy_gap"]["resolved"]


def test_pairs_without_the_paper_strategies_and_with_new_ones():
    def pairs(*strategies: Strategy) -> list[tuple[str, str]]:
        return comparison_pairs([design_of(s) for s in strategies], cells)

    cells = ["weak", "ceiling", "ceiling-reg"]
    assert pairs(VANILLA, WEAK_TFT) == [("weak-tft", "vanilla")]
    assert pairs(VANILLA, WEAK_TFT, WTS, AUX)[-3:] == [
        ("aux-conf", "vanilla"), ("aux-conf", "weak-tft"), ("aux-conf", "weak-wts-tft"),
    ]
    assert pairs(AUX) == [("aux-conf", "ceiling")]  # never silently no finding
    rows = _rows(_run([VANILLA, AUX], seeds=(0,)))
    assert set(rows) == {("aux-conf", "vanilla", "trust"), ("aux-conf", "vanilla", "task")}
    assert rows[("aux-conf", "vanilla", "task")]["method"] == "bootstrap over 1 seed x test examples"


@pytest.mark.parametrize("width", [80, 120])
def test_findings_table_fits_and_keeps_identifiers_whole(paper_run, width):
    from rich.console import Console

    console = Console(width=width, record=True)
    assert render_findings(paper_run, console) == 1
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    for name in ("weak-tft vs", "weak-wts-tft", "ceiling-reg", "vanilla", "shifted_accuracy", "no significant", "better", "worse"):
        assert name in text, name
    assert "…" not in text
    lines = text.splitlines()
    assert [line for line in lines if line != line.rstrip()] == []  # a log file gets no trailing blanks
    assert "weak-wts-tft vs ceiling-reg" in lines  # each comparison is a heading line, its scores' rows under it
    flat = " ".join(text.split())
    # the line names the reference pair it decides for: weak-wts-tft's gap recovered is against weak-reg, ceiling-reg
    assert "toy: accuracy gap ceiling - weak +0.3" in flat
    assert ("resolved, so accuracy gap recovered against weak and ceiling (the references of vanilla) is defined") in flat


@pytest.mark.parametrize("width", [80, 120])
def test_report_tables_fit_with_scores_as_rows(paper_run, width):
    from rich.console import Console

    from w2sbench.report import render_tables

    results = {**paper_run, "settings": {**paper_run["settings"], "finetune_weak": "head", "finetune_strong": "full", "device": "cpu"}}
    console = Console(width=width, record=True)
    render_tables(results, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= width
    for name in ("weak-reg", "ceiling-reg", "weak-wts-tft", "shifted_accuracy ↑", "(primary trust score)", "live_leak ↓", "gap recovered:"):
        assert name in text, name
    assert "…" not in text


def test_end_of_run_screen_is_the_findings_table(paper_run, tmp_path):
    from rich.console import Console

    from w2sbench.cli_tables import end_screen

    console = Console(width=80, record=True)
    end_screen(console, {**paper_run, "timing": {"seconds": 1.0}}, tmp_path / "run")
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "Holm p" in text and "w2sbench report" in text and "score  " not in text.splitlines()[0]
    assert "gap recovered:" not in text  # the per-cell tables stay in `w2sbench report`


def test_a_primary_score_with_a_large_standard_error_is_reported_underpowered():
    from w2sbench.findings import underpowered_scores

    prop = {
        "primary_trust_metric": "dpd",
        "cells": {
            "weak": {"stderr": {"0": {"dpd": 0.011, "accuracy": 0.009}, "1": {"dpd": 0.031, "accuracy": 0.01}}},
            "vanilla": {"stderr": {"0": {"dpd": 0.025, "accuracy": 0.02, "live_attack": None}}},
            "ood:teachers": {"stderr": None},
        },
    }
    assert underpowered_scores(prop) == {"dpd": 0.031}
    assert underpowered_scores(prop, limit=0.005) == {"dpd": 0.031, "accuracy": 0.02}
    assert underpowered_scores({"primary_trust_metric": "dpd", "cells": {}}) == {}


def _power_prop() -> dict[str, Any]:
    """Two cells; an example-level primary score, accuracy, and a live score (per-seed stderr None)."""
    def cell(dpd: list[float], acc: list[float], live_se: float | None) -> dict[str, Any]:
        return {
            "stderr": {str(i): {"dpd": d, "accuracy": a, "mia": None} for i, (d, a) in enumerate(zip(dpd, acc, strict=True))},
            "summary": {"mia": {"mean": 0.5, "stderr": live_se, "n": 3 if live_se is not None else 1}},
        }

    def row(metric: str) -> dict[str, Any]:
        return {"strategy": "weak-wts-tft", "baseline": "vanilla", "metric": metric, "kind": "trust", "verdict": "no significant difference"}

    return {
        "primary_trust_metric": "dpd",
        "cells": {"vanilla": cell([0.012, 0.025], [0.01, 0.015], 0.031), "weak-wts-tft": cell([0.011, 0.019], [0.009, 0.011], 0.004)},
        "findings": {"comparisons": [row("dpd"), row("accuracy"), row("mia"), {**row("mia"), "baseline": "weak"}]},
    }


def test_comparisons_on_an_underpowered_score_are_marked():
    from w2sbench.findings import mark_underpowered, score_stderr

    prop = _power_prop()
    prop["cells"]["weak"] = {"stderr": {"0": {"mia": None}}, "summary": {"mia": {"mean": 0.5, "stderr": None, "n": 1}}}
    # example-level: the largest per-seed standard error; live: the standard error of the mean over seeds
    assert [score_stderr(prop, "vanilla", m) for m in ("dpd", "accuracy", "mia")] == [0.025, 0.015, 0.031]
    assert score_stderr(prop, "weak", "mia") is None  # a live score with one seed has none
    assert mark_underpowered(prop) == 2
    marks = [(r["score_stderr"], r["underpowered"]) for r in prop["findings"]["comparisons"]]
    # dpd: max(0.025, 0.019); accuracy: max(0.015, 0.011); mia vs vanilla: max(0.031, 0.004); mia vs weak: 0.004 only
    assert marks == [(0.025, True), (0.015, False), (0.031, True), (0.004, False)]
    assert all(r["verdict"] == "no significant difference" for r in prop["findings"]["comparisons"])  # kept
    assert mark_underpowered(prop, limit=0.001) == 4


def test_a_live_primary_score_is_judged_by_its_standard_error_over_seeds():
    from w2sbench.findings import mark_underpowered, underpowered_scores

    prop = _run([VANILLA, WTS], metric=ToyLive())["properties"]["toy"]
    live = next(r for r in prop["findings"]["comparisons"] if r["metric"] == "live_leak" and r["baseline"] == "vanilla")
    # live_leak is 0.50, 0.51, 0.52 (+0.05 for weak-wts-tft) over seeds 0-2: std 0.01, standard error 0.01 / sqrt(3)
    assert math.isclose(live["score_stderr"], 0.01 / math.sqrt(3)) and live["underpowered"] is False
    assert "live_leak" not in underpowered_scores(prop) and "live_leak" in underpowered_scores(prop, limit=0.005)
    mark_underpowered(prop, limit=0.005)
    assert live["underpowered"] is True


def test_the_findings_table_marks_underpowered_rows_with_a_footnote():
    from rich.console import Console

    prop = _power_prop()
    from w2sbench.findings import mark_underpowered

    mark_underpowered(prop)
    prop["metrics"] = [{"name": "dpd", "higher_is_better": False}]
    prop["findings"].update({"accuracy_gap": None, "resamples": 100})
    prop["findings"]["comparisons"] = prop["findings"]["comparisons"][:2]  # the run's rows: primary and accuracy
    prop["findings"]["comparisons"][1]["kind"] = "task"
    for r in prop["findings"]["comparisons"]:
        r.update({"effect": 0.01, "ci95": [-0.03, 0.05], "p_holm": 0.6})
    console = Console(width=80, record=True)
    render_findings({"settings": {"seeds": [0, 1, 2]}, "properties": {"toy": prop}}, console)
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    flat = " ".join(text.split())
    # the dpd row (standard error 0.025) is marked, the accuracy row (0.015) is not; the footnote names dpd
    assert flat.count("difference *") == 1 and flat.count("difference") == 3
    assert "* toy: dpd is underpowered (standard error up to 0.025 > 0.02)" in flat and "accuracy is underpowered" not in flat


def test_a_live_scores_own_standard_error_is_reported_and_judged_by_the_power_rule():
    from w2sbench.findings import score_stderr

    strategies = [VANILLA, WTS]
    outcome = _outcome(strategies, LEVELS)
    for seed, seed_outcome in outcome.seeds.items():  # what LiveScores.stderr gives the pipeline, per cell
        seed_outcome.live_stderr = {"vanilla": {"live_leak": 0.01 + seed / 100}, "weak-wts-tft": {"live_leak": 0.012}}
    prop = build_property_result(ToyLive(), strategies, outcome, resamples=100)
    cells = prop["cells"]
    assert [cells["vanilla"]["stderr"][s]["live_leak"] for s in ("0", "1", "2")] == [0.01, 0.02, 0.03]
    assert cells["weak"]["stderr"]["0"]["live_leak"] is None  # no per-example error given: over seeds instead
    assert score_stderr(prop, "vanilla", "live_leak") == 0.03 and score_stderr(prop, "weak-wts-tft", "live_leak") == 0.012
    row = next(r for r in prop["findings"]["comparisons"] if (r["strategy"], r["baseline"], r["kind"]) == ("weak-wts-tft", "vanilla", "trust"))
    assert row["score_stderr"] == 0.03 and row["underpowered"] is True



def _answer_prop(verdicts: dict) -> dict:
    """The paper's three strategies, their baselines and the findings' trust rows with these verdicts."""
    def cell(role: str, weak: str = "", ceiling: str = "", rw: bool = False, rs: bool = False) -> dict:
        entry: dict = {"role": role, "summary": {"dpd": {"mean": 0.1}}, "seeds": {"0": {}, "1": {}, "2": {}}}
        if role == "strategy":
            entry["references"] = {"weak": weak, "ceiling": ceiling}
            entry["design"] = {"regularize_weak": rw, "regularize_strong": rs, "plain": True}
        return entry

    cells = {c: cell("baseline") for c in ("weak", "weak-reg", "ceiling", "ceiling-reg")}
    cells.update({"vanilla": cell("strategy", "weak", "ceiling"), "weak-tft": cell("strategy", "weak-reg", "ceiling", rw=True),
                  "weak-wts-tft": cell("strategy", "weak-reg", "ceiling-reg", rw=True, rs=True)})
    rows = [{"strategy": a, "baseline": b, "kind": "trust", "effect": 0.1, "ci95": [0.05, 0.15], "p_holm": 0.01,
             "method": "bootstrap", "verdict": v} for (a, b), v in verdicts.items()]
    return {"primary_trust_metric": "dpd", "metrics": [{"name": "dpd", "higher_is_better": False, "kind": "trust"}],
            "cells": cells, "findings": {"comparisons": rows}}


def test_the_answer_follows_the_findings_verdicts():
    from w2sbench.report_values import answer

    both = {("weak-tft", "vanilla"): "better", ("weak-wts-tft", "vanilla"): "better", ("weak-wts-tft", "weak-tft"): "better"}
    assert answer(_answer_prop(both)) == (
        "trust transfers better with both models regularized: weak-wts-tft beats vanilla and weak-tft on dpd")
    level = {**both, ("weak-wts-tft", "weak-tft"): "no significant difference"}
    assert answer(_answer_prop(level)) == "no clear gain: weak-wts-tft is not significantly better than weak-tft on dpd"


def test_the_findings_table_ends_each_property_with_its_answer(paper_run):
    from rich.console import Console

    from w2sbench.report_values import answer

    console = Console(width=80, record=True)
    render_findings(paper_run, console)
    flat = " ".join(console.export_text().split())
    assert f"toy: {answer(paper_run['properties']['toy'])}" in flat
