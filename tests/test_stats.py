"""Summaries and gap-recovered ratios on hand-computed cases."""

from __future__ import annotations

import math

from w2sbench.stats import gap_recovered, paired_test, summarize


def test_summary_of_three_values():
    s = summarize([0.7, 0.8, 0.9])
    assert math.isclose(s["mean"], 0.8) and math.isclose(s["std"], 0.1)
    assert math.isclose(s["stderr"], 0.1 / math.sqrt(3))
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, df=2)
    assert math.isclose(s["ci95"][0], 0.8 - half, rel_tol=1e-6) and s["n"] == 3


def test_summary_skips_undefined_values():
    assert summarize([None, 0.5])["n"] == 1
    assert summarize([None])["mean"] is None


def test_gap_recovered_directions():
    assert math.isclose(gap_recovered(0.8, 0.7, 0.9, True), 0.5)
    # lower is better: weak 0.2, ceiling 0.1, strategy 0.12 -> recovered 80%
    assert math.isclose(gap_recovered(0.12, 0.2, 0.1, False), 0.8)
    assert gap_recovered(0.8, 0.9, 0.85, True) is None  # ceiling does not beat weak
    assert gap_recovered(0.1, 0.1, 0.3, False) is None


def test_paired_test():
    r = paired_test([0.5, 0.6, 0.7], [0.4, 0.4, 0.6])
    assert math.isclose(r["diff"], 0.1333333, rel_tol=1e-5) and 0 < r["p_value"] < 1
