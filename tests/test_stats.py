"""Summaries and gap-recovered ratios on hand-computed cases."""

from __future__ import annotations

import math

import pytest

from w2sbench.findings import seed_paired_test
from w2sbench.stats import bootstrap_stderr, gap_recovered, gap_recovered_summary, holm, summarize, wald_test


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
    # differences 0.1, 0.2, 0.1: t = 0.1333 / (0.0577 / sqrt 3) = 4 on 2 degrees of freedom, whose two-sided
    # p-value has the closed form 1 - t / sqrt(2 + t^2)
    r = seed_paired_test([0.5 - 0.4, 0.6 - 0.4, 0.7 - 0.6])
    assert math.isclose(r["effect"], 0.1333333, rel_tol=1e-5) and r["n"] == 3
    assert math.isclose(r["p_value"], 1 - 4 / math.sqrt(18), rel_tol=1e-9)


def test_gap_recovered_is_undefined_over_an_unresolved_gap():
    # Issue 14: a 0.0015 gap gave 40.0; a gap below MIN_GAP (0.01) or whose interval includes 0 is no gap.
    assert gap_recovered(0.76, 0.70, 0.7015, True) is None
    assert gap_recovered(0.76, 0.70, 0.80, True, gap_interval=[-0.01, 0.21]) is None
    assert math.isclose(gap_recovered(0.76, 0.70, 0.80, True, gap_interval=[0.05, 0.15]), 0.6)


def test_gap_recovered_summary_is_bounded_with_one_near_zero_gap():
    # Seed 1's gap is 0.0015 (its own ratio would be 40); the ratio of mean gaps stays bounded:
    # mean(strategy - weak) = (0.05 + 0.06 + 0.04) / 3 = 0.05, mean(ceiling - weak) = (0.1 + 0.0015 + 0.08) / 3.
    strategy, weak, ceiling = [0.75, 0.76, 0.74], [0.70, 0.70, 0.70], [0.80, 0.7015, 0.78]
    assert gap_recovered(strategy[1], weak[1], ceiling[1], True) is None
    s = gap_recovered_summary(strategy, weak, ceiling, True)
    assert math.isclose(s["mean"], 0.15 / 0.1815) and s["resolved"] and s["n"] == 3
    assert math.isclose(s["gap"], 0.1815 / 3)
    assert gap_recovered_summary(strategy, weak, ceiling, True, gap_interval=[-0.01, 0.13])["mean"] is None


def test_holm_equals_statsmodels_and_skips_undefined():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005]
    # by hand: sorted 0.005*4=0.02, 0.01*3=0.03, 0.03*2=0.06, 0.04*1 -> max(0.04, 0.06)=0.06
    assert holm(p) == [0.03, 0.06, 0.06, 0.02]
    assert holm(p) == [float(x) for x in multipletests(p, method="holm")[1]]
    assert holm([None, 0.01, 0.02]) == [None, 0.02, 0.02]


def test_holm_leaves_the_garbage_collector_as_it_found_it():
    import gc

    assert gc.get_freeze_count() == 0
    holm([0.01, 0.02])
    assert gc.get_freeze_count() == 0  # its freeze (statsmodels' gc.collect skips the heap) was undone
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        holm([0.01, 0.02])
        assert gc.get_freeze_count() == frozen  # a program's own freeze is left alone
    finally:
        gc.unfreeze()


def test_wald_test_from_a_bootstrap_standard_error():
    r = wald_test(0.0196, 0.01)  # z = 1.96
    assert math.isclose(r["p_value"], 0.04999579029644097, rel_tol=1e-9)
    assert math.isclose(r["ci95"][0], 0.0196 - 1.959963984540054 * 0.01)
    assert wald_test(None, 0.01)["p_value"] is None and wald_test(0.0, 0.0)["p_value"] == 1.0


def test_a_ratio_keeps_a_sane_standard_error_when_a_few_resamples_explode():
    """Gap recovered: the SE is the percentile interval's half-width / 1.96, not the resamples' SD (which a
    single near-zero denominator makes astronomical)."""
    from w2sbench.stats import interval_stderr, percentile_interval

    ratios = [0.3] * 50 + [0.5] * 49 + [1e13]
    ci = percentile_interval(ratios)
    assert ci == [0.3, 0.5]
    assert interval_stderr(ci) == pytest.approx(0.2 / (2 * 1.959963984540054), rel=1e-12)
    assert interval_stderr(None) is None


def test_bootstrap_stderr_of_a_mean_is_the_binomial_standard_error():
    import numpy as np

    def mean(x, axis=-1):
        return np.mean(x, axis=axis)[None]

    x = np.r_[np.ones(100), np.zeros(300)]  # p = 0.25 on 400 examples: sqrt(p (1 - p) / n) = 0.021651
    (se,) = bootstrap_stderr([x], mean, paired=True, resamples=4000, seed=0)
    assert math.isclose(se, math.sqrt(0.25 * 0.75 / 400), rel_tol=0.04)  # 4,000 resamples: ~1.1% relative noise
    assert bootstrap_stderr([np.ones(50)], mean, paired=True) == [0.0]  # no spread, no error
    assert bootstrap_stderr([np.ones(1)], mean, paired=True) == [None]  # one example: undefined
