"""Fold statistics: the corrected resampled t-test, Holm's adjustment, bounded CIs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as scipy_stats

from bench.benchmark.stats import corrected_ttest, describe_folds, find_regressions, holm, paired

DIFF = np.array([0.01, 0.02, 0.015, 0.012, 0.018])  # mean 0.015, sample variance 17e-6


def test_corrected_ttest_equals_the_formula_by_hand():
    # 5 folds, n_test/n_train = 0.25: variance of the mean = (1/5 + 0.25) * 17e-6
    t_by_hand = 0.015 / math.sqrt((1 / 5 + 0.25) * 17e-6)
    t, p = corrected_ttest(DIFF, 0.25)
    assert t == pytest.approx(t_by_hand, rel=1e-9)
    assert p == pytest.approx(2 * scipy_stats.t.sf(t_by_hand, df=4), rel=1e-9)
    assert p > scipy_stats.ttest_1samp(DIFF, 0.0).pvalue  # the correction is more cautious


def test_corrected_ttest_with_ratio_zero_is_scipys_paired_t():
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    expected = scipy_stats.ttest_rel(a, a - DIFF)
    t, p = corrected_ttest(DIFF, 0.0)
    assert (t, p) == pytest.approx((expected.statistic, expected.pvalue), rel=1e-9)


def test_corrected_ttest_degenerate_differences():
    assert corrected_ttest(np.zeros(5), 0.25) == (0.0, 1.0)
    assert corrected_ttest(np.full(5, -0.01), 0.25) == (-math.inf, 0.0)
    with pytest.raises(ValueError, match="at least 2 folds"):
        corrected_ttest(np.array([0.1]), 0.25)


def test_paired_uses_the_corrected_test_and_standard_error_and_says_so():
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    comparison = paired("nn", a, "mf", a - DIFF, "rmse", test_train_ratio=0.25)
    half = scipy_stats.t.ppf(0.975, 4) * math.sqrt((1 / 5 + 0.25) * 17e-6)
    assert comparison.worse_by == pytest.approx(0.015)
    assert (comparison.ci_low, comparison.ci_high) == pytest.approx((0.015 - half, 0.015 + half))
    assert comparison.p_t == pytest.approx(corrected_ttest(DIFF, 0.25)[1])
    assert comparison.p_wilcoxon == pytest.approx(scipy_stats.wilcoxon(DIFF).pvalue)
    assert "corrected resampled t (Nadeau-Bengio, n_test/n_train = 0.25) p = " in (
        comparison.sentence()
    )


def test_paired_without_ratio_keeps_the_plain_paired_t():
    a = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    comparison = paired("nn", a, "mf", a - DIFF, "rmse")
    assert comparison.p_t == pytest.approx(scipy_stats.ttest_rel(a, a - DIFF).pvalue)
    assert comparison.sentence().startswith("nn trails mf on rmse by 0.0150 ± ")
    assert "(paired t p = " in comparison.sentence()
    assert paired("nn", a, "mf", a - DIFF, "ndcg_at_10").sentence().startswith("nn beats mf")


def _runs(diff: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    folds = [f"u{i}" for i in range(1, len(diff) + 1)]
    old = pd.DataFrame({"model": "mf", "fold": folds, "rmse": 0.95})
    return old.assign(rmse=0.95 + diff), old


def test_the_correction_can_turn_a_regression_into_noise():
    new, old = _runs(np.array([0.002, 0.016, 0.006, 0.012, 0.014]))
    plain = find_regressions(new, old, metrics=("rmse",))
    assert len(plain) == 1 and "paired t p = " in plain[0].message()
    assert find_regressions(new, old, metrics=("rmse",), test_train_ratio=0.25) == []


def test_holm_on_a_hand_example():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> 0.06 (running max)
    adjusted = holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(holm([0.7, 0.8, 0.9]), [1.0, 1.0, 1.0])  # capped
    np.testing.assert_allclose(holm([0.6, 0.2]), [0.6, 0.4])
    assert holm([]).shape == (0,)


def test_holm_matches_statsmodels():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    pvalues = np.random.default_rng(0).uniform(0, 0.2, size=12)
    expected = multitest.multipletests(pvalues, method="holm")[1]
    np.testing.assert_allclose(holm(pvalues), expected)


def test_describe_folds_matches_the_t_interval_without_bounds():
    values = np.array([0.91, 0.93, 0.92, 0.95, 0.90])
    d = describe_folds(values)
    half = scipy_stats.t.ppf(0.975, 4) * values.std(ddof=1) / np.sqrt(5)
    mean = values.mean()
    assert (d["ci_low"], d["ci_high"]) == pytest.approx((mean - half, mean + half))
    wider = describe_folds(values, test_train_ratio=0.25)
    assert wider["ci_high"] - wider["ci_low"] == pytest.approx(2 * half * math.sqrt(0.45 * 5))


def test_describe_folds_clips_the_interval_to_the_bounds():
    near_zero = np.array([0.001, 0.05, 0.002, 0.0, 0.004])
    free = describe_folds(near_zero)
    assert free["ci_low"] < 0  # the case the bounds are for
    clipped = describe_folds(near_zero, bounds=(0.0, 1.0))
    assert clipped["ci_low"] == 0.0
    assert clipped["ci_high"] == pytest.approx(free["ci_high"])
    assert clipped["mean"] == free["mean"] and clipped["std"] == free["std"]
    near_one = describe_folds(1 - near_zero, bounds=(0.0, 1.0))
    assert near_one["ci_high"] == 1.0 and near_one["ci_low"] == pytest.approx(1 - free["ci_high"])
