"""Paired bootstrap confidence interval for a difference in pass@1 between two agents.

Both agents are evaluated on the same problems with the same seeds, so the difference is paired:
``d[p, s] = a[p, s] - b[p, s]`` (per-problem pass@1 estimate of problem ``p`` in seed ``s``). The
interval resamples problems *and* seeds with replacement (a two-way bootstrap), so it covers both
sources of variation a reader cares about: which problems were drawn and which training run
happened (with one seed only problems are resampled). The statistic is the mean of ``d`` over the
resampled problems × seeds; the interval is the percentile interval of ``resamples`` replicates.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Difference", "paired_bootstrap"]


@dataclass(frozen=True)
class Difference:
    """``mean`` difference (a − b) with its ``low``–``high`` interval at ``level``, from ``problems`` × ``seeds``."""

    mean: float
    low: float
    high: float
    problems: int
    seeds: int
    level: float = 0.95

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def text(self) -> str:
        return f"{self.mean:+.3f} [{self.low:+.3f}, {self.high:+.3f}]"


def paired_bootstrap(
    a: Sequence[Sequence[float]] | np.ndarray, b: Sequence[Sequence[float]] | np.ndarray, *, resamples: int = 2000, level: float = 0.95, seed: int = 0
) -> Difference:
    """Mean of ``a - b`` (arrays of shape problems × seeds) and its paired two-way bootstrap interval."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"paired_bootstrap needs two problems × seeds arrays of the same shape, got {d.shape}")
    n_problems, n_seeds = d.shape
    rng = np.random.default_rng(seed)
    # weight of each problem (seed) in a replicate = how often it was drawn / how many were drawn
    wp = np.stack([np.bincount(rng.integers(0, n_problems, n_problems), minlength=n_problems) for _ in range(resamples)]) / n_problems
    ws = np.stack([np.bincount(rng.integers(0, n_seeds, n_seeds), minlength=n_seeds) for _ in range(resamples)]) / n_seeds
    replicates = np.einsum("bp,ps,bs->b", wp, d, ws)
    tail = (1 - level) / 2
    low, high = np.quantile(replicates, [tail, 1 - tail])
    return Difference(float(d.mean()), float(low), float(high), n_problems, n_seeds, level)
