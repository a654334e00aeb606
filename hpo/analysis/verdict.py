"""The verdict: which scientific value wins, by how much, and whether that beats the noise.

The playbook: "an improvement smaller than [the run-to-run] variance is not an improvement".
Run-to-run variance is measured by seed re-runs (``hpo seeds``): the same hyperparameters,
new seeds. Without them it is unknown, and the verdict says so instead of naming a winner.

Each scientific value's result is the mean of the re-runs of its best re-run trial when it
has at least two, else its best trial's single value. The original run is left out of the
mean and of the variance: it was picked as the best of many draws, so it is optimistic.
A winner is named only when its lead over the runner-up exceeds ``NOISE_MULTIPLE`` times the
pooled run-to-run standard deviation: two single runs of one configuration differ by more
than that only about 16% of the time.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from hpo.analysis.results import RERUN_ATTR

if TYPE_CHECKING:
    from hpo.analysis.results import Group, Results

NOISE_MULTIPLE = 2.0
MIN_DOF = 2  # degrees of freedom before a standard deviation counts as measured


@dataclass(frozen=True)
class Estimate:
    group: str
    value: float
    basis: str  # "mean of 5 seed re-runs of trial #3" or "single run (trial #3)"


@dataclass(frozen=True)
class Verdict:
    winner: str | None  # named only when the lead exceeds the measured noise
    leader: str | None  # best so far, whether or not that is a verdict
    runner_up: str | None
    gap: float | None  # leader's lead over the runner-up, in metric units
    noise: float | None  # pooled run-to-run standard deviation; None when not measured
    reruns: int  # complete seed re-runs the noise was measured from
    estimates: list[Estimate]
    text: str  # markdown, one paragraph


def verdict(results: Results, *, study_file: str = "<study file>",
            noise_multiple: float = NOISE_MULTIPLE) -> Verdict:
    runs = _rerun_values(results)
    estimates = [e for g in results.groups if (e := _estimate(results, g, runs)) is not None]
    noise, dof, used = _pooled_std(runs)
    if len(estimates) < 2:
        return Verdict(None, estimates[0].group if estimates else None, None, None, noise, used,
                       estimates, "**No verdict yet**: fewer than two scientific values have a "
                       "complete trial, so there is nothing to compare.")
    ranked = sorted(estimates, key=lambda e: results.score(e.value))
    lead, second = ranked[0], ranked[1]
    gap = abs(lead.value - second.value)
    versus = (f"{lead.group}: {lead.value:.4g} ({lead.basis}) vs {second.group}: "
              f"{second.value:.4g} ({second.basis})")
    measure = (f"measure it with `hpo seeds {study_file} --top 1 --repeats 5`, run the workers "
               "again (`hpo run`), then report again")
    winner = None
    if gap == 0:
        unmeasured = "" if noise is not None else " (run-to-run variance not measured yet)"
        text = f"**No winner**: a tie{unmeasured}. {versus}."
    elif noise is None:
        too_few = f" ({used} complete re-run(s) so far, too few)" if used else ""
        text = (f"**No winner named: run-to-run variance not measured.** {lead.group} has the "
                f"best result so far, {versus}: a gap of {gap:.3g} in {results.metric}. Without "
                "seed re-runs nobody knows whether that gap is bigger than the noise between "
                f"two runs of the same configuration{too_few}; {measure}.")
    else:
        how = (f"the run-to-run standard deviation ({noise:.3g}, from {used} seed re-runs, "
               f"{dof} degrees of freedom)")
        if gap > noise_multiple * noise:
            winner = lead.group
            text = (f"**{lead.group} wins** by {gap:.3g} in {results.metric}: {versus}. That is "
                    f"{gap / noise:.1f}x {how}.")
        else:
            text = (f"**No winner: the difference is within the noise.** {versus}: a gap of "
                    f"{gap:.3g} in {results.metric}, only {gap / noise:.1f}x {how}; a real "
                    f"difference must exceed {noise_multiple:g}x ({noise_multiple * noise:.3g}).")
    return Verdict(winner, lead.group, second.group, gap, noise, used, estimates, text)


def _rerun_values(results: Results) -> dict[int, list[float]]:
    """Complete seed re-runs' values, by the number of the trial they re-ran."""
    runs: dict[int, list[float]] = {}
    for t in results.reruns:
        if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value):
            runs.setdefault(int(t.user_attrs[RERUN_ATTR]), []).append(t.value)
    return runs


def _estimate(results: Results, group: Group, runs: dict[int, list[float]]) -> Estimate | None:
    rerun = [(statistics.fmean(runs[t.number]), t.number) for t in group.trials
             if len(runs.get(t.number, ())) >= 2]
    if rerun:
        value, number = min(rerun, key=lambda vt: results.score(vt[0]))
        return Estimate(group.label, value,
                        f"mean of {len(runs[number])} seed re-runs of trial #{number}")
    best = results.best(group)
    if best is None or best.value is None:  # best() is a complete trial: it has a value
        return None
    return Estimate(group.label, best.value, f"single run, trial #{best.number}")


def _pooled_std(runs: dict[int, list[float]]) -> tuple[float | None, int, int]:
    """(pooled standard deviation or None, degrees of freedom, re-runs used)."""
    sets = [v for v in runs.values() if len(v) >= 2]
    dof = sum(len(v) - 1 for v in sets)
    used = sum(len(v) for v in runs.values())
    if dof < MIN_DOF:
        return None, dof, used
    pooled = sum((len(v) - 1) * statistics.variance(v) for v in sets) / dof
    return math.sqrt(pooled), dof, used
