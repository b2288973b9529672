"""The bootstrap behind every interval: it covers the truth at about its
nominal rate on draws whose truth is known, and says why when it cannot."""

from __future__ import annotations

import math

import numpy as np

import pytest

from batchscope_analysis.intervals import bootstrap, bootstrap_groups, round_to_interval, small_sample_factor


def test_mean_interval_covers_the_true_mean_at_about_its_level() -> None:
    rng = np.random.default_rng(1)
    trials, covered = 200, 0
    for t in range(trials):
        data = list(rng.normal(3.0, 1.0, 20))
        iv = bootstrap(data, lambda d: float(np.mean(d)), draws=400, seed=t)
        covered += iv.low <= 3.0 <= iv.high
    # nominal 90 %; the percentile bootstrap of a mean of 20 runs a little
    # narrow (about 87 %), and 200 trials have a binomial sd of 2.1 points
    assert 0.80 <= covered / trials <= 0.96


def test_groups_are_resampled_within_each_group() -> None:
    groups = {16: [1.0, 1.2, 0.9], 32: [2.0, 2.1, 1.9]}
    iv = bootstrap_groups(groups, lambda g: float(np.mean(g[32]) - np.mean(g[16])), draws=500)
    assert iv.has_interval and iv.low <= iv.value <= iv.high
    assert 0.6 < iv.low and iv.high < 1.4


def test_one_seed_per_group_has_no_interval_and_says_why() -> None:
    iv = bootstrap_groups({16: [1.0], 32: [2.0]}, lambda g: g[32][0] - g[16][0])
    assert iv.value == 1.0 and not iv.has_interval and "one seed" in iv.reason
    assert iv.as_dict() == {"value": 1.0, "low": None, "high": None}


def test_rounding_follows_the_interval_width() -> None:
    assert round_to_interval(1189.4, 700.0) == 1190.0
    assert round_to_interval(0.123456, 0.02) == 0.123
    assert math.isnan(round_to_interval(math.nan, 1.0))


def test_three_seeds_are_widened_to_about_their_level() -> None:
    # Unwidened, the percentile bootstrap of a mean of 3 covers about 70 % of the time; the
    # Student-t widening (2.17x at n = 3) brings it to 84 % here (300 trials, binomial sd 2 points):
    # the bootstrap's range from 3 values is itself noisy.
    rng = np.random.default_rng(2)
    trials, covered = 300, 0
    for t in range(trials):
        iv = bootstrap_groups({1: list(rng.normal(0.0, 1.0, 3))}, lambda g: float(np.mean(g[1])), draws=300, seed=t)
        covered += iv.low <= 0.0 <= iv.high
    assert 0.80 <= covered / trials <= 0.97
    assert small_sample_factor(3) == pytest.approx(2.17, abs=0.01) and small_sample_factor(1) == 1.0


def test_a_positive_quantity_stays_positive_when_widened() -> None:
    iv = bootstrap_groups({1: [0.2, 3.0]}, lambda g: float(np.mean(g[1])), draws=300)
    assert 0 < iv.low < iv.value < iv.high
    c = small_sample_factor(2)  # 5.4: two seeds say little, and the interval says so
    assert iv.low == pytest.approx(1.6 * (0.2 / 1.6) ** c) and iv.high == pytest.approx(1.6 * (3.0 / 1.6) ** c)
