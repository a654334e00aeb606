"""Run-to-run noise from seed re-runs, robust to a bad seed now and then.

The playbook: re-run the best trial with new seeds to measure run-to-run variance; a
difference smaller than that is not a difference. Real runs have occasional outliers (a bad
initialization, a loss spike the run never recovers from), and one among five re-runs moves a
mean, and a standard deviation even more, past any threshold. So:

* the spread is first measured robustly: the median absolute difference between two re-runs of
  the same trial, over every such pair in the study, scaled to a standard deviation (for
  normal noise the difference of two runs has std ``sqrt(2) * sigma`` and its median absolute
  value is ``0.954 * sigma``);
* a re-run further than ``OUTLIER`` of those from its trial's median (with at least four
  re-runs, so that "its median" means something) is set aside as an outlier, and counted;
* each trial's estimate is the mean of its remaining re-runs, and the noise is their pooled
  standard deviation (classical, with its degrees of freedom), which for normal noise is as
  good as a mean can be. Under normal noise about one re-run in a thousand is set aside
  (measured: 2 or 3 values, 5 re-runs each; the robust spread of so few pairs is itself
  noisy, so the threshold is wide): a bad seed 5 or more noise std off is caught.

The original run is left out of everything: it was picked as the best of many draws, so its
value is optimistic (the winner's curse).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from itertools import combinations

from optuna.trial import TrialState

from hpo.analysis.results import RERUN_ATTR, Results

OUTLIER = 4.5  # robust standard deviations from the trial's median
MIN_FOR_OUTLIERS = 4  # re-runs of one trial before any can be called an outlier
MIN_DOF = 2  # degrees of freedom before a standard deviation counts as measured
_PAIR_MEDIAN = math.sqrt(2) * 0.6744897501960817  # median |X - Y| / sigma for normal noise


@dataclass(frozen=True)
class Reruns:
    """One trial's complete seed re-runs."""

    of: int  # the re-run trial's number
    values: tuple[float, ...]  # every complete re-run, in trial order
    kept: tuple[float, ...]  # without the outliers

    @property
    def outliers(self) -> int:
        return len(self.values) - len(self.kept)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.kept)

    @property
    def std(self) -> float | None:
        """This trial's own run-to-run standard deviation; None below two re-runs kept."""
        return statistics.stdev(self.kept) if len(self.kept) >= 2 else None


@dataclass(frozen=True)
class Noise:
    """The study's run-to-run noise, pooled over every re-run trial."""

    std: float | None  # pooled standard deviation of one run; None when not measured
    dof: int  # its degrees of freedom
    used: int  # complete re-runs it was measured from (outliers included)
    outliers: int  # re-runs set aside
    by_trial: dict[int, Reruns]  # re-run trial number -> its re-runs


def rerun_values(results: Results) -> dict[int, list[float]]:
    """Complete seed re-runs' values, by the number of the trial they re-ran."""
    runs: dict[int, list[float]] = {}
    for t in results.reruns:
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            runs.setdefault(int(t.user_attrs[RERUN_ATTR]), []).append(t.value)
    return runs


def measure_noise(results: Results) -> Noise:
    """Robust per-trial estimates and the pooled run-to-run noise (see the module docstring)."""
    runs = rerun_values(results)
    robust = robust_std(list(runs.values()))
    by_trial = {}
    for number, values in runs.items():
        kept = values
        if robust and len(values) >= MIN_FOR_OUTLIERS:
            middle = statistics.median(values)
            kept = [v for v in values if abs(v - middle) <= OUTLIER * robust]
        by_trial[number] = Reruns(number, tuple(values), tuple(kept))
    sets = [r.kept for r in by_trial.values() if len(r.kept) >= 2]
    dof = sum(len(v) - 1 for v in sets)
    used = sum(len(v) for v in runs.values())
    outliers = sum(r.outliers for r in by_trial.values())
    if dof < MIN_DOF:
        return Noise(None, dof, used, outliers, by_trial)
    pooled = sum((len(v) - 1) * statistics.variance(v) for v in sets) / dof
    return Noise(math.sqrt(pooled), dof, used, outliers, by_trial)


def robust_std(sets: list[list[float]]) -> float | None:
    """The standard deviation of one run, from the median absolute difference between two
    re-runs of the same trial, over all such pairs; None without a pair."""
    differences = [abs(a - b) for values in sets for a, b in combinations(values, 2)]
    if not differences:
        return None
    return statistics.median(differences) / _PAIR_MEDIAN
