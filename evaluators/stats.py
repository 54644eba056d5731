"""The statistics every report shares: mean with standard error, pass@k over a sample's
completions, and the paired bootstrap tests `compare` uses. Pure functions of score lists
(pass@k: of results records), apart from results.py, which owns the run files.
"""

from __future__ import annotations

import math

import numpy as np


def finite(values) -> list[float]:
    """The values that count: None and NaN (an unscored or failed sample) are left out."""
    return [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]


def mean_stderr(values) -> tuple[float | None, float | None]:
    """Mean and standard error of the mean (sample std, ddof=1); None values are left out.
    No values: (None, None); one value: stderr None (undefined, not zero)."""
    xs = finite(values)
    if not xs:
        return None, None
    mean = sum(xs) / len(xs)
    if len(xs) < 2:
        return mean, None
    var = sum((x - mean) ** 2 for x in xs) / (len(xs) - 1)
    return mean, math.sqrt(var / len(xs))


def mean_or_none(values) -> float | None:
    xs = finite(values)
    return sum(xs) / len(xs) if xs else None


def paired_bootstrap(a, b, *, resamples: int = 10_000, seed: int = 0) -> float | None:
    """Two-sided p-value for mean(b) != mean(a) on paired samples.

    Resamples the per-pair differences with replacement and centres the bootstrap
    distribution on zero (the null); p is the share of resampled mean differences at
    least as extreme as the observed one, with the +1 correction so it is never 0.
    """
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        return None
    observed = d.mean()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, d.size, size=(resamples, d.size))
    centred = d[idx].mean(axis=1) - observed
    extreme = np.count_nonzero(np.abs(centred) >= abs(observed) - 1e-12)
    return float((extreme + 1) / (resamples + 1))


def paired_bootstrap_greater(a, b, *, resamples: int = 10_000, seed: int = 0) -> float | None:
    """One-sided p-value for mean(b) > mean(a) on paired samples: the share of resampled mean
    differences at or below zero (+1 correction). "Did this training stage help", not "did it change"."""
    d = np.asarray(b, dtype=float) - np.asarray(a, dtype=float)
    if d.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(resamples, d.size))].mean(axis=1)
    return float((np.count_nonzero(means <= 1e-12) + 1) / (resamples + 1))


def pass_at_k(records: list[dict], field: str) -> float | None:
    """Share of samples where any completion scores >= 1 (pass@n for n completions)."""
    hits = []
    for r in records:
        vals = finite(s.get(field) for s in r.get("completion_scores") or [])
        if vals:
            hits.append(1.0 if max(vals) >= 1 else 0.0)
    return mean_or_none(hits)
