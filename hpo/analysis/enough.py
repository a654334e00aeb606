"""Enough trials? The expected best result against the number of trials.

The playbook asks whether a study sampled enough points: count the trials in the "good"
region, and look at how the best result depends on the budget. For N from 1 to the trials
run, the expected best of N of a scientific value's trials (Tang et al.'s unbiased estimator,
the mean best over every subset of N, as the verdict's search uncertainty uses it) estimates
what a study of N trials would have found; a bootstrap (N drawn with replacement) gives its
90% band. If going from N/2 to N trials still improved the
expected best by more than the gap between scientific values, more trials could change the
answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hpo.analysis._bootstrap import best_of_n
from hpo.analysis.isolation import draw_scores
from hpo.analysis.search import expected_best

if TYPE_CHECKING:
    from hpo.analysis.isolation import IsolationPoint
    from hpo.analysis.results import Results

MIN_TRIALS = 4  # fewer, and a bootstrap says nothing
# Both judged against the study's spread, its upper-quartile trial minus its best: what counts
# as a real change is relative to how much the hyperparameters matter in this study. (Not the
# median: with one scientific value far better, the median falls inside its tight cluster.)
GOOD = 0.1  # "good region": within this fraction of the spread of the value's best trial
FLAT = 0.05  # a gain from N/2 to N trials under this fraction of the spread is "flat"


@dataclass(frozen=True)
class CurvePoint:
    n: int
    expected: float  # in metric units
    low: float  # 90% band, better end
    high: float


@dataclass(frozen=True)
class EnoughTrials:
    group: str
    trials: int
    curve: list[CurvePoint]
    good: int  # complete trials in the good region
    gain: float | None  # expected improvement from N/2 to N trials, metric units, >= 0 better
    spread: float  # the study's upper quartile - best of its complete trials, metric units

    @property
    def still_improving(self) -> bool:
        return self.gain is not None and self.gain > max(FLAT * self.spread, 1e-12)

    @property
    def message(self) -> str:
        if self.gain is None:
            return (f"{self.group}: {self.trials} trial(s) is too few to tell "
                    f"(at least {MIN_TRIALS} needed)")
        half = self.curve_at(self.trials // 2)
        verb = ("still improving" if self.still_improving
                else "flat")
        return (f"{self.group}: {verb}: the expected best went from {half.expected:.4g} at "
                f"{half.n} trials to {self.curve[-1].expected:.4g} at {self.trials} "
                f"(gain {self.gain:.3g}); {self.good} of {self.trials} trials in the good region")

    def curve_at(self, n: int) -> CurvePoint:
        return min(self.curve, key=lambda p: abs(p.n - n))


def enough_trials(results: Results) -> list[EnoughTrials]:
    everything = sorted(results.score(t.value) for g in results.groups for t in g.complete
                        if t.value is not None)
    spread = float(np.quantile(everything, 0.75)) - everything[0] if everything else 0.0
    out = []
    for i, group in enumerate(results.groups):
        scores = draw_scores(results, group)
        n = len(scores)
        curve = []
        for size in _sizes(n):
            stats = best_of_n(scores, size, seed=i)
            if stats is not None and stats.feasible > 0:
                # The expected best is exact (Tang et al.'s unbiased estimator, the one the
                # verdict's search uncertainty uses); the bootstrap gives the 90% band.
                curve.append(CurvePoint(size, results.score(expected_best(scores, size)),
                                        results.score(stats.low), results.score(stats.high)))
        complete = sorted(results.score(t.value) for t in group.complete if t.value is not None)
        good = sum(s <= complete[0] + GOOD * spread for s in complete) if complete else 0
        gain = None
        if n >= MIN_TRIALS and len(curve) >= 2:
            half = min(curve, key=lambda p: abs(p.n - n // 2))
            gain = max(0.0, results.score(half.expected) - results.score(curve[-1].expected))
        out.append(EnoughTrials(group.label, n, curve, good, gain, spread))
    return out


def answer_could_change(results: Results, enough: list[EnoughTrials],
                        points: list[IsolationPoint]) -> str:
    """One sentence: would more trials still be likely to change which value is best?"""
    ranked = sorted(((results.score(p.best.value), p) for p in points
                     if p.best is not None and p.best.value is not None), key=lambda sp: sp[0])
    if len(ranked) < 2:
        return "Fewer than two scientific values have a complete trial: nothing to compare yet."
    leader_score, leader = ranked[0]
    by_label = {e.group: e for e in enough}
    tied = ranked[1][0] == leader_score
    if tied and by_label[leader.group.label].still_improving:
        e = by_label[leader.group.label]
        return (f"More trials could still change the answer: {leader.group.label} shares the "
                f"best single trial and its expected best was still improving ({e.gain:.3g} from "
                f"{e.trials // 2} to {e.trials} trials).")
    for other_score, other in ranked[1:]:
        e = by_label[other.group.label]
        gap = other_score - leader_score
        if e.gain is None:
            return (f"More trials could still change the answer: {other.group.label} has only "
                    f"{e.trials} trial(s).")
        if e.still_improving and e.gain >= gap:
            return (f"More trials could still change the answer: {other.group.label}'s expected "
                    f"best was still improving ({e.gain:.3g} from {e.trials // 2} to {e.trials} "
                    f"trials), as much as its gap of {gap:.3g} to {leader.group.label}.")
    overlapping = [p.group.label for _, p in ranked[1:] if p.band and leader.band
                   and _overlap(results, leader.band, p.band)]
    if overlapping:
        return ("More trials are unlikely to improve any value much, but the bootstrap bands of "
                f"{leader.group.label} and {', '.join(overlapping)} overlap: another draw of the "
                "same number of trials could order them differently.")
    return ("More trials are unlikely to change the answer: every value's expected best has "
            "flattened, and the bootstrap bands do not overlap.")


def _sizes(n: int) -> list[int]:
    """About a dozen budgets from 1 to n, spaced geometrically, always with n/2 and n."""
    if n < 1:
        return []
    return sorted({1, max(1, n // 2), n, *(max(1, round(n ** (i / 10))) for i in range(11))})


def _overlap(results: Results, a: tuple[float, float], b: tuple[float, float]) -> bool:
    # Bands are (better end, worse end); in score units a band is [low, high].
    a_lo, a_hi = sorted(results.score(x) for x in a)
    b_lo, b_hi = sorted(results.score(x) for x in b)
    return a_lo <= b_hi and b_lo <= a_hi
