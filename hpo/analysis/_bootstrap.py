"""Bootstrap of best-of-N: what the best trial would have been with another draw of N trials.

Scores are oriented so that lower is better; an infeasible trial scores +inf, so a resample
made only of failed trials has no best (it is left out of the statistics, and counted).
A fixed seed: the same study gives the same report every time.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

RESAMPLES = 1000
BAND = (0.05, 0.95)  # a 90% band


@dataclass(frozen=True)
class BestOfN:
    n: int
    mean: float  # expected best score over resamples that found a feasible trial
    low: float  # the band, in score units (lower is better)
    high: float
    feasible: float  # fraction of resamples with at least one feasible trial


def best_of_n(scores: Sequence[float], n: int, *, resamples: int = RESAMPLES,
              seed: int = 0) -> BestOfN | None:
    """Best-of-``n`` statistics from resampling ``scores`` with replacement; None if no data."""
    values = np.asarray(scores, dtype=float)
    if len(values) == 0 or n < 1:
        return None
    rng = np.random.default_rng(seed)
    bests = values[rng.integers(0, len(values), size=(resamples, n))].min(axis=1)
    found = bests[np.isfinite(bests)]
    if len(found) == 0:
        return BestOfN(n, float("inf"), float("inf"), float("inf"), 0.0)
    low, high = np.quantile(found, BAND)
    return BestOfN(n, float(found.mean()), float(low), float(high), len(found) / resamples)
