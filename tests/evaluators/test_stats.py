"""evaluators.stats: mean and standard error, pass@k, the paired bootstrap tests (pure, no server)."""

from __future__ import annotations

import numpy as np
import pytest

from evaluators.stats import finite, mean_stderr, paired_bootstrap, paired_bootstrap_greater, pass_at_k


def test_mean_stderr_known_values():
    assert mean_stderr([]) == (None, None)
    assert mean_stderr([None, None]) == (None, None)
    assert mean_stderr([3.0]) == (3.0, None)  # undefined, not zero
    mean, se = mean_stderr([1, 0, 1, 0, None])  # None is left out
    assert mean == 0.5 and se == pytest.approx(np.std([1, 0, 1, 0], ddof=1) / 2)
    mean, se = mean_stderr([2, 4, 4, 4, 5, 5, 7, 9])
    assert mean == 5 and se == pytest.approx(np.std([2, 4, 4, 4, 5, 5, 7, 9], ddof=1) / np.sqrt(8))


def test_paired_bootstrap_known_cases():
    a = [1.0, 0.0] * 50
    assert paired_bootstrap(a, a, resamples=2000) == 1.0  # identical runs: no evidence at all
    assert paired_bootstrap([0.0] * 100, [1.0] * 100, resamples=2000) == pytest.approx(1 / 2001)  # as small as it gets
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2, 400).astype(float)
    flip = base.copy()
    flip[:4] = 1 - flip[:4]  # 4 of 400 answers differ: not significant
    assert paired_bootstrap(base, flip, resamples=5000) > 0.2
    better = np.where(rng.random(400) < 0.3, 1.0, base)  # +~15 points: clearly significant
    assert paired_bootstrap(base, better, resamples=5000) < 0.001
    assert paired_bootstrap([], []) is None
    # Seeded: the same call gives the same p-value.
    assert paired_bootstrap(base, flip, seed=3) == paired_bootstrap(base, flip, seed=3)


def test_paired_bootstrap_matches_reference_loop():
    """The vectorised test equals a plain-Python reading of the same definition."""
    rng = np.random.default_rng(0)
    a, b = rng.random(30), rng.random(30) + 0.1
    d = b - a
    gen = np.random.default_rng(7)
    idx = gen.integers(0, 30, size=(3000, 30))
    obs = d.mean()
    count = sum(abs(d[row].mean() - obs) >= abs(obs) - 1e-12 for row in idx)
    assert paired_bootstrap(a, b, resamples=3000, seed=7) == pytest.approx((count + 1) / 3001)


def test_one_sided_bootstrap_tells_better_from_worse():
    a, b = [0.0] * 100, [1.0] * 10 + [0.0] * 90  # b right on 10 more of 100
    assert paired_bootstrap_greater(a, b, resamples=2000) < 0.01
    assert paired_bootstrap_greater(b, a, resamples=2000) > 0.99  # worse is not "better"
    assert 0.2 < paired_bootstrap_greater(a, [1.0, -1.0] * 50, resamples=2000) < 0.8  # no difference
    assert paired_bootstrap_greater([], []) is None


def test_pass_at_k_counts_samples_with_any_full_score():
    records = [{"completion_scores": [{"acc": 0.0}, {"acc": 1.0}]},  # one of two right: a pass
               {"completion_scores": [{"acc": 0.0}, {"acc": None}]},  # none right
               {"completion_scores": [{"acc": None}]},                # nothing scored: left out
               {}]
    assert pass_at_k(records, "acc") == 0.5
    assert pass_at_k([], "acc") is None


def test_finite_leaves_out_none_and_nan():
    assert finite([1, None, float("nan"), 2.5]) == [1.0, 2.5]
