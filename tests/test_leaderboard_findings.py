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
