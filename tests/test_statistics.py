"""Intervals, baselines, nulls and correlations (`weightspace.statistics`) against direct computations."""

import numpy as np
import pytest

from weightspace import statistics


def test_rank_correlation_is_the_correlation_of_ranks():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=40), rng.normal(size=40)
    y = x + y  # correlated, no ties
    ranks = lambda v: np.argsort(np.argsort(v))
    assert statistics.rank_correlation(x, y) == pytest.approx(np.corrcoef(ranks(x), ranks(y))[0, 1])
    np.testing.assert_array_equal(statistics.ranks(np.array([3.0, 1.0, 3.0, 2.0])), [2.5, 0.0, 2.5, 1.0])
    assert np.isnan(statistics.rank_correlation(x, np.ones_like(x)))


def test_within_group_correlation_ignores_the_gap_between_groups():
    """Groups far apart on both axes, anti-correlated inside: positive across, negative within."""
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(5), 6)
    inside = rng.normal(size=30)
    x = 100.0 * groups + inside
    y = 100.0 * groups - inside + 0.1 * rng.normal(size=30)
    across = statistics.correlation_evidence(x, y, num_resamples=400)
    within = statistics.correlation_evidence(x, y, groups, num_resamples=400)
    assert across["rho"] > 0.8 and across["interval"][0] > 0 and across["p_value"] < 0.01
    assert within["rho"] < -0.8 and within["interval"][1] < 0 and within["p_value"] < 0.01
    # Within groups, only the deviations from each group's mean rank count: the textbook value of that.
    rx, ry = statistics.ranks(x), statistics.ranks(y)
    centre = lambda r: r - np.array([r[groups == g].mean() for g in groups])
    assert within["rho"] == pytest.approx(np.corrcoef(centre(rx), centre(ry))[0, 1])


def test_no_correlation_is_no_evidence():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=18), rng.normal(size=18)
    evidence = statistics.correlation_evidence(x, y, np.repeat(np.arange(6), 3), num_resamples=400)
    low, high = evidence["interval"]
    assert low < 0 < high and evidence["p_value"] > 0.05


def test_bootstrap_interval_majority_and_null():
    values = np.r_[np.ones(30), np.zeros(10)]
    low, high = statistics.bootstrap_interval(values)
    assert low < 0.75 < high and high - low < 0.4
    assert statistics.majority_baseline(np.array([1, 1, 2, 3])) == 0.5
    mean, q95 = statistics.shuffled_null(np.zeros(40, int), np.r_[np.zeros(10, int), np.ones(30, int)])
    assert mean == pytest.approx(0.25) and q95 == pytest.approx(0.25)  # a constant guess scores its label's share


def test_ratio_interval_holds_the_ratio_of_the_means_and_pairs_units():
    rng = np.random.default_rng(3)
    denominator = rng.uniform(1.0, 2.0, (3, 50))
    numerator = 2.0 * denominator  # exactly twice, unit by unit: every paired resample gives 2
    assert statistics.ratio_interval(numerator, denominator) == pytest.approx((2.0, 2.0))
    noisy = numerator * rng.uniform(0.5, 1.5, (3, 50))
    low, high = statistics.ratio_interval(noisy, denominator)
    assert low < noisy.mean() / denominator.mean() < high and low > 1.5 and high < 2.5
    with pytest.raises(ValueError, match="one shape"):
        statistics.ratio_interval(numerator[:, :3], denominator)
