"""Search uncertainty: how much better a scientific value's tuned optimum could plausibly be
than the best configuration its trials found.

The playbook compares scientific values after "optimizing away" the nuisance hyperparameters,
but a study with N trials per value only gets near each value's optimum, by an amount that
differs from value to value: a value with a narrow good region, more nuisance hyperparameters
or an optimum near the edge of its range misses by more. A verdict that ignores this names the
value that happened to be tuned best, not the value that is best.

The estimate, per value, from its finished design trials alone:

* **the expected best of n trials**, for n up to N, by the unbiased estimator of Tang et al.
  (2020, "Showing Your Work Doesn't Always Work"): the mean, over every subset of n of the N
  trials, of the subset's best, ``sum_i s_(i) * C(N - i, n - 1) / C(N, n)`` over the scores
  sorted best first. Dodge et al.'s (2019) formula samples *with* replacement and is biased
  towards the best trial; this one is exact for a study of n trials drawn like these.
  Infeasible and pruned trials are draws that found nothing: they score as the worst trial
  of the study.
* **the gain of the last doubling**: expected best of N/2 trials minus the best of N. If the
  best-of-n curve falls like ``n ** -1`` (a smooth optimum in about two effective dimensions;
  flatter for more, steeper for fewer), the distance still to go from N trials to the optimum
  equals the gain of the last doubling. That is the search uncertainty.
* **raised at a range edge**: when the value's best trial sits in the outer tenth of a
  nuisance range (:mod:`hpo.analysis.boundaries`) that could be widened, its optimum may lie
  outside it, where no trial looked: the uncertainty is doubled (as if the curve fell like
  ``n ** -0.58``, twice as far to go), and the verdict says which range to widen. A natural
  limit (momentum's 1) is not an edge to widen and raises nothing.
* **too few to tell** below ``MIN_TRIALS`` (8) finished trials: infinite, so a value with
  fewer is never beaten. Four quasi-random points can all miss a narrow optimum by about the
  same amount, and their curve then looks flat.

The design trials carry seed noise, which also makes the best of N better than the best of
N/2 (about 0.3-0.5 noise std between 4 and 32 trials): the estimate errs on the side of
calling a value less tuned than it is.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from optuna.trial import TrialState

from hpo.analysis.boundaries import boundary_warnings
from hpo.analysis.isolation import draw_scores

if TYPE_CHECKING:
    from hpo.analysis.boundaries import BoundaryWarning
    from hpo.analysis.results import Group, Results

# Fewer finished trials and the best-of-n curve says too little: four quasi-random points in
# three or four dimensions can all miss the good region by the same amount, and their curve
# then looks flat. Measured: at 4 trials per value, 5-8% of the null runs of
# bench/decisions.py named a false winner for that reason; at 8, at most 2-5%.
MIN_TRIALS = 8
EDGE_FACTOR = 2.0  # the uncertainty of a value whose best sits at a range edge


@dataclass(frozen=True)
class SearchUncertainty:
    group: str
    trials: int  # finished design trials drawn from (complete, infeasible, pruned)
    best: float | None  # the best trial's value, metric units
    half: float | None  # expected best of trials // 2, metric units
    gain: float | None  # half - best, in the better direction, >= 0; None: too few
    edges: tuple[BoundaryWarning, ...]  # the best trial at an edge that could be widened
    amount: float  # how much better the tuned optimum could be, >= 0, metric units; inf: unknown

    @property
    def basis(self) -> str:
        if self.gain is None:
            return (f"{self.trials} finished trial(s): too few to tell "
                    f"(at least {MIN_TRIALS} needed)")
        text = (f"expected best went from {self.half:.4g} at {self.trials // 2} trials to "
                f"{self.best:.4g} at {self.trials}")
        if self.edges:
            names = ", ".join(sorted({w.hyperparameter for w in self.edges}))
            text += f"; best at the edge of {names}: x{EDGE_FACTOR:g}"
        return text


def expected_best(scores: list[float] | np.ndarray, n: int) -> float:
    """The expected best (lowest) score of n trials drawn without replacement from ``scores``:
    Tang et al.'s unbiased estimator. ``inf`` scores are draws that found nothing; the
    expectation is over the subsets with at least one finite score (inf if there are none)."""
    s = np.sort(np.asarray(scores, dtype=float))
    total = len(s)
    if not 1 <= n <= total:
        raise ValueError(f"expected_best: n must be in 1..{total}, got {n}")
    # Weight of the i-th best (0-based) being the subset's best: C(N-1-i, n-1) / C(N, n). The
    # binomials overflow a float from about a thousand trials on (and cost a big integer each):
    # their ratios, w(i+1)/w(i) = (N-n-i)/(N-1-i), are multiplied up in log space instead,
    # relative to w(0), which is all the normalized sum below needs.
    i = np.arange(total - 1)
    with np.errstate(divide="ignore"):
        steps = np.log(np.clip(total - n - i, 0, None)) - np.log(total - 1 - i)
    weights = np.exp(np.concatenate(([0.0], np.cumsum(steps))))
    finite = np.isfinite(s)
    if not finite.any():
        return math.inf
    return float((s[finite] * weights[finite]).sum() / weights[finite].sum())


def search_uncertainty(results: Results, group: Group,
                       boundaries: list[BoundaryWarning] | None = None) -> SearchUncertainty:
    """The search uncertainty of one scientific value (see the module docstring)."""
    scores = draw_scores(results, group)
    # Pruned trials were stopped because they looked worse than their value's others: draws
    # that found nothing better, like the infeasible ones draw_scores already keeps.
    scores += [math.inf for t in group.finished if t.state == TrialState.PRUNED]
    finite = [s for s in scores if math.isfinite(s)]
    n = len(scores)
    best = results.score(min(finite)) if finite else None
    # A draw that found nothing is as bad as the worst trial the study has seen: conditioning
    # on the subsets that found something would hide exactly the uncertainty it stands for
    # (one good trial among three diverged ones is not a tuned value).
    worst = max((results.score(t.value) for g in results.groups for t in g.complete
                 if t.value is not None), default=None)
    if worst is not None:
        scores = [s if math.isfinite(s) else worst for s in scores]
    edges = tuple(w for w in (boundary_warnings(results) if boundaries is None else boundaries)
                  if w.group == group.label and w.proposed is not None)
    if n < MIN_TRIALS or not finite:
        return SearchUncertainty(group.label, n, best, None, None, edges, math.inf)
    half_score = expected_best(scores, n // 2)
    gain = max(0.0, half_score - min(finite))
    amount = gain * (EDGE_FACTOR if edges else 1.0)
    return SearchUncertainty(group.label, n, best, results.score(half_score), gain, edges,
                             amount)


def trials_to_reach(uncertainty: SearchUncertainty, target: float) -> int | None:
    """About how many more trials this value needs for its search uncertainty to fall to
    ``target`` (metric units), on the same ``n ** -1`` curve; None when it cannot be said."""
    if uncertainty.gain is None or not math.isfinite(uncertainty.amount) or target <= 0:
        return None
    if uncertainty.amount <= target:
        return 0
    return math.ceil(uncertainty.trials * (uncertainty.amount / target - 1))
