"""The board's findings: paired effects against vanilla with exact t-test values, Holm's correction,
undefined cases, and the page sections (basis line, findings, gap plot, † for scores not recomputed)."""

from __future__ import annotations

import math

import pytest

from tests.board_rows import synthetic_boards
from w2sbench.leaderboard._board import render_html
from w2sbench.leaderboard._findings import paired_effects


def test_paired_effect_matches_a_hand_computed_t_test():
    # Lower is better: differences vanilla - strategy = 0.05, 0.10, 0.10; mean 1/12, sem 1/60, t = 5 on 2 df.
    vanilla = {"0": 0.10, "1": 0.20, "2": 0.30}
    (eff,) = paired_effects(vanilla, {"weak-tft": {"0": 0.05, "1": 0.10, "2": 0.20}}, "dpd", higher_is_better=False)
    assert eff.improvement == pytest.approx(1 / 12)
    assert eff.p_value == pytest.approx(1 - 5 / math.sqrt(27))  # two-sided p of t = 5 on 2 df
    half = 4.302652729911275 / 60  # t_{0.975, 2} * sem
    assert eff.ci95 == pytest.approx((1 / 12 - half, 1 / 12 + half))
    assert eff.p_holm == pytest.approx(eff.p_value) and eff.verdict == "better" and eff.n == 3


def test_holm_multiplies_the_smallest_p_by_the_number_of_tests():
    vanilla = {"0": 0.80, "1": 0.81, "2": 0.82}
    effects = paired_effects(
        vanilla,
        {"a": {"0": 0.85, "1": 0.86, "2": 0.88}, "b": {"0": 0.79, "1": 0.82, "2": 0.82}},
        "accuracy", higher_is_better=True,
    )
    a, b = effects
    assert a.p_holm == pytest.approx(min(1.0, 2 * a.p_value))
    assert b.p_holm == pytest.approx(max(a.p_holm, b.p_value))
    assert b.verdict == "no significant difference"


def test_undefined_effects_say_why():
    vanilla = {"0": 0.5, "1": None}
    effects = paired_effects(vanilla, {"one": {"0": 0.6, "1": 0.7}, "none": {"0": None, "1": None}}, "m", True)
    assert [e.verdict for e in effects] == ["undefined (1 seed: no interval)", "undefined (no seed defines both scores)"]
    assert effects[0].ci95 is None and effects[0].improvement == pytest.approx(0.1)


def test_page_sections_basis_and_unverified_marks():
    page = render_html(synthetic_boards(), ["lab-a", "lab-b"])
    assert "This board rests on 2 submission(s), 3 entries (one per run and trust property), 2 weak → strong pair(s), " \
           "2 trust properties and 3 seed(s) per entry." in page
    assert 'id="findings-adversarial"' in page and 'id="gap-fairness"' in page
    assert page.count('<table class="findings">') == 3
    assert "attack_<wbr>success_<wbr>rate ↓ †" in page  # the header of a score the validator cannot recompute
    assert "† attack_success_rate: not recomputed by the validator" in page
    assert "undefined on every seed: ceiling not more trustworthy than weak" in page


def test_gap_plot_shortens_a_long_undefined_reason_to_fit_and_keeps_it_whole_in_the_tooltip():
    from w2sbench.leaderboard._board import BoardRow
    from w2sbench.leaderboard._plots import gap_plot
    from w2sbench.plugin_manager import get_plugins

    metric = get_plugins().trust_properties.get("fairness")
    row = BoardRow("lab", "p", "w", "s", None, None, "head", "ensemble", 3, {}, {}, gap_references={"weak": "ensemble:teachers", "ceiling": "ceiling"})
    svg = gap_plot(metric, [("lab", [row])])
    full = "undefined on every seed: ceiling not more trustworthy than ensemble:teachers"  # 77 characters: clipped before
    assert f"<title>{full}</title>undefined on every seed: ceiling not above ensemble:teachers</text>" in svg


def test_page_says_the_board_tests_over_seeds_only_and_names_each_interval_method():
    page = render_html(synthetic_boards(), ["lab-a", "lab-b"])
    basis = ("The board&#x27;s intervals and verdicts come from the per-seed scores only: a 95% t-interval and a paired "
             "t-test over seeds, Holm-corrected across the strategies of an entry, verdict at 5%. A run&#x27;s findings "
             "also resample test examples (a bootstrap over seeds × test examples), so the board is more conservative: "
             "a run&#x27;s &quot;better&quot; can be the board&#x27;s &quot;no significant difference&quot;.")
    assert page.count(basis) == 3  # the page's legend and each property's findings note
    assert "as in a run&#x27;s findings" not in page
    assert "Findings: each strategy against plain transfer, over seeds only</h3>" in page
    assert ("Score cells: mean over seeds [95% t-interval over the per-seed scores, cut at the score&#x27;s range]. "
            "Gap-recovered cells: the run&#x27;s ratio of mean gaps [its 95% bootstrap interval over seeds × test examples] "
            "(older submissions: mean of the per-seed ratios [t over seeds]).") in page
    assert "accuracy ↑ [t over seeds]</th>" in page
    assert "attack_<wbr>success_<wbr>rate ↓ † [t over seeds]</th>" in page
    # the synthetic gap summaries are per-seed ratios (summarize), so their column says so
    assert "gap recovered: demographic_<wbr>parity_<wbr>difference [t over seeds]</th>" in page


def test_score_intervals_are_cut_at_the_metric_bounds_and_gap_ratios_are_not():
    from w2sbench.leaderboard._board import cut_at_bounds

    summary = {"mean": 0.037, "ci95": [-0.020, 0.094], "n": 3}
    assert cut_at_bounds(summary, (0.0, 1.0)) == {"mean": 0.037, "ci95": [0.0, 0.094], "n": 3}
    assert cut_at_bounds({"mean": 0.5, "ci95": [-0.840, 1.230]}, (0.0, 1.0))["ci95"] == [0.0, 1.0]
    assert cut_at_bounds({"mean": 2.0, "ci95": [-1.0, 5.0]}, (0.0, None))["ci95"] == [0.0, 5.0]
    assert cut_at_bounds(summary, None) == summary
    assert cut_at_bounds({"mean": 0.1, "ci95": None, "n": 1}, (0.0, 1.0)) == {"mean": 0.1, "ci95": None, "n": 1}


def _validated(constant_cells, summary_ci):  # noqa: ANN001, ANN202 - a ValidationReport stand-in for collect_rows
    from pathlib import Path

    from w2sbench.leaderboard._rescore import EntryResult
    from w2sbench.leaderboard._validate import ValidationReport

    def cell(dpd: float) -> dict:
        return {"summary": {"accuracy": {"mean": 0.8, "ci95": [0.7, 1.1]},
                            "demographic_parity_difference": {"mean": dpd, "ci95": summary_ci}},
                "gap_recovered": {"demographic_parity_difference": {"summary": {"mean": 5.3, "ci95": [3.2, 14.5], "method": "ratio of mean gaps"}}},
                "seeds": {}, "references": {"weak": "weak", "ceiling": "ceiling"}}

    entry = {"property": "fairness", "pair": "p", "seeds": [0, 1, 2], "finetune": {"weak": "head", "strong": "full"},
             "models": {"weak": {"name": "w"}, "strong": {"name": "s"}}, "strategies": ["vanilla", "product"],
             "cells": {"vanilla": cell(0.05), "product": cell(0.0)}}
    result = EntryResult("k", "label", constant_cells=list(constant_cells))
    return ValidationReport(Path("lab.json"), submission={"name": "lab", "entries": [entry]}, entries=[result])


def test_constant_predictions_are_flagged_and_ranked_last_and_intervals_cut_from_the_installed_metric():
    from w2sbench.leaderboard._board import collect_rows, render_csv, render_markdown
    from w2sbench.plugin_manager import get_plugins

    props = get_plugins().trust_properties.items
    fair = props["fairness"]
    rows = collect_rows([_validated(["product"], [-0.02, 0.094])], props)["fairness"]
    assert [(r.strategy, r.constant) for r in rows] == [("vanilla", False), ("product", True)]  # DPD 0.0 would lead
    assert rows[0].scores["demographic_parity_difference"]["ci95"] == [0.0, 0.094]  # no bounds in the submission
    assert rows[0].scores["accuracy"]["ci95"] == [0.7, 1.0]
    assert rows[1].gaps["demographic_parity_difference"]["ci95"] == [3.2, 14.5]  # ratios have no bounds
    md = render_markdown(fair, rows)
    assert "| 2 | lab | w → s | head:full | product ‡ | 3 | 0.800 [0.700, 1.000] | 0.000 [0.000, 0.094] | 5.300 [3.200, 14.500] |" in md
    assert ("‡ = constant predictions: one class for every example of the main test set on every seed (trivially fair); "
            "ranked last.") in md
    assert "gap recovered: demographic_parity_difference [run bootstrap] |" in md
    assert "| demographic_parity_difference ↓ [t over seeds] |" in md
    csv_lines = render_csv(fair, rows).splitlines()
    assert csv_lines[0].endswith(",not_verifiable,constant_predictions")
    assert csv_lines[1].endswith(",,") and csv_lines[2].endswith(",,yes")
    page = render_html({"fairness": (fair, rows)}, ["lab"])
    assert '<td title="constant predictions: one class for every example">product ‡</td>' in page
    assert ("‡ constant predictions: one class for every example of the main test set on every seed: a constant "
            "predictor is trivially fair, so the row is ranked last.") in page
    plain = collect_rows([_validated([], [-0.02, 0.094])], props)["fairness"]
    assert [r.strategy for r in plain] == ["product", "vanilla"] and "‡" not in render_markdown(fair, plain)
