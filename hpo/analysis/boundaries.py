"""Bad search-space boundaries: a best trial close to the edge of a nuisance range.

The playbook: a search space is "suspicious if the best point sampled from it is close to its
boundary", because the optimum may lie outside it and the scientific values were then not
compared at their best. For every scientific value and every numeric nuisance hyperparameter,
the best trial's position in the range is measured (in log space for a log range); in the
outer ``EDGE`` of the range it is a warning that names the edge and proposes a wider range.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hpo.space import Float, Int

if TYPE_CHECKING:
    from hpo.analysis.results import Results
    from hpo.space import Distribution

EDGE = 0.1  # the outer tenth of a range, at either end


@dataclass(frozen=True)
class BoundaryWarning:
    group: str
    hyperparameter: str
    edge: str  # "low" or "high"
    best_value: float
    best_trial: int
    distribution: Distribution
    proposed: Distribution | None  # None: the edge is a natural limit (0, or 1 for a fraction)

    @property
    def message(self) -> str:
        where = f"the {'bottom' if self.edge == 'low' else 'top'} {EDGE:.0%} of its range"
        head = (f"{self.group}: the best trial (#{self.best_trial}) has {self.hyperparameter}="
                f"{self.best_value:.4g}, in {where} {self.distribution!r}")
        if self.proposed is None:
            return (f"{head}; {self.edge} edge is a natural limit, so consider whether "
                    f"{self.hyperparameter} is needed at all")
        return (f"{head}; the optimum may lie {'below' if self.edge == 'low' else 'above'} it: "
                f"extend the range to {self.proposed!r} (a new study version)")


def position(distribution: Float | Int, value: float) -> float:
    """Where ``value`` lies in the range, 0 at low and 1 at high (log-scaled for log ranges)."""
    low, high = float(distribution.low), float(distribution.high)
    if high == low:
        return 0.5
    if distribution.log:
        return (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    return (value - low) / (high - low)


def boundary_warnings(results: Results, *, edge: float = EDGE) -> list[BoundaryWarning]:
    """Warnings for best trials in the outer ``edge`` of a numeric nuisance range."""
    warnings = []
    for group in results.groups:
        best = results.best(group)
        if best is None:
            continue
        for name, dist in group.nuisance.items():
            if not isinstance(dist, (Float, Int)) or name not in best.params:
                continue
            value = best.params[name]
            u = position(dist, value)
            side = "low" if u <= edge else "high" if u >= 1 - edge else None
            if side is None:
                continue
            warnings.append(BoundaryWarning(group.label, name, side, value, best.number, dist,
                                            extended(dist, side)))
    return warnings


def extended(dist: Float | Int, side: str) -> Distribution | None:
    """The range with one edge pushed out, or None where the edge is a natural limit.

    A log range moves by a decade, as learning rates are searched. A linear range moves by
    half its width, but does not cross 0 when it starts at or above 0; a fraction in [0, 1]
    (momentum, beta1) approaches 1 the way those are tuned: 1 - x shrinks tenfold.
    """
    low, high = dist.low, dist.high
    if dist.log:
        low, high = (low / 10, high) if side == "low" else (low, high * 10)
        if isinstance(dist, Int):
            low, high = max(1, math.floor(low)), math.ceil(high)
            return None if (low, high) == (dist.low, dist.high) else Int(low, high, log=True)
        return Float(_nice(low), _nice(high), log=True)
    width = high - low
    fraction = 0 <= low and high <= 1 and isinstance(dist, Float)
    if side == "high":
        if fraction and high == 1:
            return None
        high = 1 - (1 - high) / 10 if fraction else high + width / 2
    else:
        if low == 0:
            return None
        low = max(0, low - width / 2) if low > 0 else low - width / 2
    if isinstance(dist, Int):
        return Int(math.floor(low), math.ceil(high))
    return Float(_nice(low), _nice(high))


def _nice(x: float) -> float:
    """Rounded to 4 significant digits, so a proposal reads as a range a person would write."""
    return float(f"{x:.4g}")
