"""The paired bootstrap interval of `codegym compare`'s differences to clm, on cases checked by hand."""

from __future__ import annotations

import pytest

from codegym.experiments.bootstrap import paired_bootstrap


def test_constant_difference_has_a_zero_width_interval():
    d = paired_bootstrap([[0.5, 0.7], [0.2, 0.4]], [[0.3, 0.5], [0.0, 0.2]])
    assert d.mean == pytest.approx(0.2) and d.low == pytest.approx(0.2) and d.high == pytest.approx(0.2)
    assert d.excludes_zero and (d.problems, d.seeds) == (2, 2)


def test_two_problems_one_seed_matches_the_exact_bootstrap_distribution():
    # differences 0 and 1: a resample of 2 problems has mean 0, 0.5 or 1 with probability 1/4, 1/2, 1/4,
    # so the 2.5% and 97.5% quantiles are 0 and 1 and the interval includes 0
    d = paired_bootstrap([[1.0], [1.0]], [[1.0], [0.0]], resamples=4000)
    assert d.mean == pytest.approx(0.5) and d.low == 0.0 and d.high == 1.0 and not d.excludes_zero


def test_seeds_are_resampled_too():
    # one problem, differences +1 in seed 0 and -1 in seed 1: only resampling seeds spreads the interval
    d = paired_bootstrap([[1.0, 0.0]], [[0.0, 1.0]], resamples=4000)
    assert d.mean == 0.0 and d.low == -1.0 and d.high == 1.0


def test_shapes_must_match():
    with pytest.raises(ValueError, match="problems × seeds"):
        paired_bootstrap([1.0, 2.0], [0.0, 1.0])


def test_level_sets_the_percentiles():
    # the same exact distribution (0, 0.5, 1 with probability 1/4, 1/2, 1/4): a 40% interval is
    # the 30th to 70th percentile, both 0.5; a 60% one (20th to 80th) reaches 0 and 1
    d = paired_bootstrap([[1.0], [1.0]], [[1.0], [0.0]], resamples=4000, level=0.4)
    assert (d.low, d.high, d.level) == (0.5, 0.5, 0.4) and d.excludes_zero
    wider = paired_bootstrap([[1.0], [1.0]], [[1.0], [0.0]], resamples=4000, level=0.6)
    assert (wider.low, wider.high) == (0.0, 1.0)


def test_the_default_seed_and_resamples_reproduce():
    a = [[0.1 * i, 0.3] for i in range(7)]
    b = [[0.05 * i * i, 0.2] for i in range(7)]
    default = paired_bootstrap(a, b)
    assert default == paired_bootstrap(a, b, seed=0, resamples=2000, level=0.95)  # the documented defaults, reproducibly
    assert paired_bootstrap(a, b, seed=1) != default and paired_bootstrap(a, b, resamples=2001) != default


def test_one_problem_one_seed_and_empty_input():
    d = paired_bootstrap([[1.0]], [[0.25]])
    assert (d.mean, d.low, d.high, d.problems, d.seeds) == (0.75, 0.75, 0.75, 1, 1)
    with pytest.raises(ValueError, match="problems × seeds"):
        paired_bootstrap([[]], [[]])
    assert d.text() == "+0.750 [+0.750, +0.750]" and not paired_bootstrap([[0.0]], [[0.0]]).excludes_zero
    assert paired_bootstrap([[0.0]], [[0.5]]).excludes_zero  # negative and away from 0
