"""Confidence intervals: they cover a known mean at the stated rate."""

import numpy as np
import pytest

from amr_pipeline.reporting import intervals


def test_t_interval_over_replicates_covers_a_known_mean_95_percent_of_the_time():
    """5 replicate means drawn around 0.03: the 95% t interval holds 0.03 in 95% of 4,000
    trials, within the binomial spread (about ±1%)."""
    rng = np.random.default_rng(0)
    trials, covered = 4000, 0
    for _ in range(trials):
        values = rng.normal(0.03, 0.004, 5)
        _, low, high = intervals.t_interval(values)
        covered += low <= 0.03 <= high
    assert abs(covered / trials - 0.95) < 0.012


def test_bootstrap_over_users_covers_a_known_hit_rate_at_about_the_stated_rate():
    """One replicate: per-user hits with probability 0.1 over 800 users; the percentile
    bootstrap covers 0.1 in about 95% of 300 trials."""
    rng = np.random.default_rng(1)
    trials, covered = 300, 0
    for trial in range(trials):
        hits = (rng.random(800) < 0.1).astype(float)
        _, low, high = intervals.bootstrap_interval(hits, seed=trial, resamples=500)
        covered += low <= 0.1 <= high
    assert 0.91 <= covered / trials <= 0.985


def test_interval_edge_cases_and_choice_by_replicate_count():
    assert intervals.t_interval([0.2, 0.2, 0.2]) == pytest.approx((0.2, 0.2, 0.2))
    mean, low, high = intervals.t_interval([0.5])
    assert mean == 0.5 and np.isnan(low) and np.isnan(high)
    users = np.r_[np.ones(30), np.zeros(70)]
    single = intervals.metric_interval([users], seed=3)
    assert single == intervals.bootstrap_interval(users, seed=3)
    several = intervals.metric_interval([users, users[::-1] * 0.5, users * 0.8])
    assert several == pytest.approx(intervals.t_interval([0.3, 0.15, 0.24]))
