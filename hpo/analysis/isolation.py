"""Isolation plot: for each scientific value, the best trial over the nuisance hyperparameters.

The playbook's central comparison: nuisance hyperparameters are "optimized away" by taking,
for each scientific value, the best trial found for it. The band says how much that best
depends on which trials happened to be drawn: the best of a bootstrap resample of the same
number of trials, 5th to 95th percentile. Infeasible trials stay in the resample (scoring
as no result), because a value whose trials often diverge is less likely to find a good one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.analysis._bootstrap import best_of_n
from hpo.analysis.results import Group, Results, is_infeasible

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial


@dataclass(frozen=True)
class IsolationPoint:
    group: Group
    best: FrozenTrial | None
    band: tuple[float, float] | None  # in metric units, (better end, worse end)
    trials: int  # finished design trials the best was taken over


def isolation_plot(results: Results) -> list[IsolationPoint]:
    """One point per scientific value (or slice of values), in the study's order."""
    points = []
    for i, group in enumerate(results.groups):
        scores = draw_scores(results, group)
        stats = best_of_n(scores, len(scores), seed=i)
        band = None
        if stats is not None and stats.feasible > 0:
            band = (results.score(stats.low), results.score(stats.high))
        points.append(IsolationPoint(group, results.best(group), band, len(scores)))
    return points


def draw_scores(results: Results, group: Group) -> list[float]:
    """Scores of the trials a bootstrap draws from: complete ones, and infeasible ones as +inf.

    Pruned trials are left out: they were stopped early, not measured.
    """
    complete = {t.number: t.value for t in group.complete if t.value is not None}
    return [results.score(complete[t.number]) if t.number in complete else float("inf")
            for t in group.finished if t.number in complete or is_infeasible(t)]
