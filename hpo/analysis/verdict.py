"""The verdict: which scientific value wins, and whether that holds up against the run-to-run
noise *and* the tuning the study has not done yet.

For each scientific value:

* its **estimate**: the mean of the seed re-runs (``hpo seeds``) of its best trial, outlier
  seeds set aside (:mod:`hpo.analysis.noise`). The original run is left out: it was picked as
  the best of many draws, so it is optimistic;
* its **seed noise**: the run-to-run standard deviation; the comparison uses the standard
  deviation pooled over every re-run trial, and the estimate's standard error from it;
* its **search uncertainty**: how much better its tuned optimum could plausibly be than the
  configuration found (:mod:`hpo.analysis.search`): the gain of its last doubling of trials,
  doubled when its best sits at a range edge, infinite with fewer than eight trials. When a
  better-looking trial of the value has no re-runs yet, the uncertainty covers that gap too.

The leader (best estimate) **wins only when it beats every other value by more than both**:
the gap to each must exceed the seed-noise margin *plus* that value's search uncertainty (how
much better it could get; the leader's own could only widen its lead). The seed-noise margin
is the playbook's rule made a test: "an improvement smaller than [the run-to-run] variance is
not an improvement", so the gap must exceed one run-to-run standard deviation
(``MIN_EFFECT``), and by more than a one-sided t quantile of the difference of the two
estimates, so that a gap of exactly one standard deviation is called a win at most ``alpha``
of the time however many re-runs are made. Otherwise the verdict names what stands in the
way and what would settle it: more trials of a value not tuned enough, a range to widen, or
more seed re-runs when only the noise is in the way.

Error rates. Under the null (no real difference of more than one run-to-run std), some value
beating all others by the noise margin alone happens with probability at most ``alpha``: each
value can be the one that beats the rest, so each comparison is one-sided at ``alpha / V``.
A study that is looked at several times before it stops (``hpo run --until-decided``)
divides that again by the number of looks it may take (Bonferroni): ``alpha / (V * looks)``
per comparison, whatever the looks see. The search uncertainty is an estimate, not a bound
with a stated probability: how often it falls short is what ``bench/decisions.py`` measures.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hpo.analysis.boundaries import boundary_warnings
from hpo.analysis.noise import Noise, measure_noise
from hpo.analysis.search import (
    MIN_TRIALS,
    SearchUncertainty,
    search_uncertainty,
    trials_to_reach,
)

if TYPE_CHECKING:
    from hpo.analysis.results import Group, Results

ALPHA = 0.05
MIN_EFFECT = 1.0  # run-to-run standard deviations a difference must exceed to be one
MAX_REPEATS_ADVISED = 50  # more seed re-runs than this per trial is not advice worth giving


@dataclass(frozen=True)
class ValueEstimate:
    """One scientific value: what its tuned result is, and how sure that is."""

    group: str
    value: float | None  # the estimate, metric units; None: no complete trial
    basis: str  # "mean of 5 seed re-runs of trial #3 (1 outlier set aside)", "single run ..."
    trial: int | None  # the trial the estimate is of
    reruns: int  # complete re-runs the estimate is the mean of (outliers not counted)
    outliers: int
    noise: float | None  # this value's own run-to-run std, from its re-runs
    se: float | None  # the estimate's standard error, from the pooled noise
    search: SearchUncertainty
    unrerun: float = 0.0  # how much better a trial without re-runs looked, metric units

    @property
    def uncertainty(self) -> float:
        """How much better this value could plausibly be than its estimate (>= 0)."""
        return max(self.search.amount, self.unrerun)


@dataclass(frozen=True)
class Comparison:
    """The leader against one other value."""

    other: str
    gap: float  # the other's estimate minus the leader's, in the better direction (>= 0)
    margin: float | None  # the seed-noise margin the gap must beat; None: noise unmeasured
    search: float  # the other value's uncertainty (how much better it could get)
    minimum: float = 0.0  # the part of the margin that is the smallest real difference

    @property
    def futile(self) -> bool:
        """Even the top of the gap's confidence interval is below the smallest real difference:
        no number of seed re-runs would make this a win."""
        return (self.margin is not None
                and self.gap + (self.margin - self.minimum) < self.minimum)

    @property
    def beaten(self) -> bool:
        return self.margin is not None and self.gap > self.margin + self.search

    @property
    def noise_bound(self) -> bool:
        """Within the seed-noise margin whatever more tuning would show."""
        return self.margin is not None and self.gap <= self.margin


@dataclass(frozen=True)
class Verdict:
    winner: str | None  # named only when it beats every other value by more than both
    leader: str | None  # best estimate so far, whether or not that is a verdict
    runner_up: str | None  # the closest other value by estimate
    gap: float | None  # leader's lead over the runner-up, in metric units
    noise: float | None  # pooled run-to-run standard deviation; None when not measured
    reruns: int  # complete seed re-runs the noise was measured from
    estimates: list[ValueEstimate]
    text: str  # markdown, one paragraph
    comparisons: list[Comparison] = field(default_factory=list)  # the leader vs each other
    advice: list[str] = field(default_factory=list)  # what would settle it, one line each
    alpha: float = ALPHA
    looks: int = 1
    quantile: float | None = None  # the t quantile each margin is made of

    @property
    def contenders(self) -> list[str]:
        """The leader and every value it has not beaten: those still in contention."""
        if self.leader is None:
            return [e.group for e in self.estimates]
        return [self.leader] + [c.other for c in self.comparisons if not c.beaten]


def verdict(results: Results, *, study_file: str = "<study file>", alpha: float = ALPHA,
            looks: int = 1) -> Verdict:
    """The verdict on the study as it is now; ``looks``: how many times a run that stops on
    its verdict may look (``hpo run --until-decided``), for the error rate to hold."""
    noise = measure_noise(results)
    boundaries = boundary_warnings(results)
    estimates = [_estimate(results, g, noise, boundaries) for g in results.groups]
    scored = [e for e in estimates if e.value is not None]
    measure = (f"`hpo seeds {study_file} --top 1 --repeats 5`, run the workers again "
               "(`hpo run`), then report again")
    if len(scored) < 2:
        return Verdict(None, scored[0].group if scored else None, None, None, noise.std,
                       noise.used, estimates, "**No verdict yet**: fewer than two scientific "
                       "values have a complete trial, so there is nothing to compare.",
                       alpha=alpha, looks=looks)
    ranked = sorted(scored, key=lambda e: results.score(e.value))  # type: ignore[arg-type]
    lead = ranked[0]
    second = ranked[1]
    gap = abs(lead.value - second.value)  # type: ignore[operator]
    versus = (f"{lead.group}: {lead.value:.4g} ({lead.basis}) vs {second.group}: "
              f"{second.value:.4g} ({second.basis})")
    quantile = _quantile(alpha / (len(results.groups) * looks), noise.dof)
    minimum = MIN_EFFECT * noise.std if noise.std is not None else 0.0
    comparisons = [_compare(results, lead, e, quantile, minimum) for e in ranked[1:]]
    comparisons += [Comparison(e.group, math.inf, None, math.inf) for e in estimates
                    if e.value is None]

    def out(winner: str | None, text: str, advice: list[str] | None = None) -> Verdict:
        return Verdict(winner, lead.group, second.group, gap, noise.std, noise.used, estimates,
                       text, comparisons, advice or [], alpha, looks, quantile)

    unscored = [e.group for e in estimates if e.value is None]

    if noise.std is None:
        too_few = f" ({noise.used} complete re-run(s) so far, too few)" if noise.used else ""
        text = (f"**No winner named: run-to-run variance not measured.** {lead.group} has the "
                f"best result so far, {versus}: a gap of {gap:.3g} in {results.metric}. Without "
                "seed re-runs nobody knows whether that gap is bigger than the noise between "
                f"two runs of the same configuration{too_few}; measure it with {measure}.")
        return out(None, text, [f"measure the run-to-run noise: {measure}"])
    if lead.reruns < 2:
        text = (f"**No winner named: {lead.group}'s best trial has no seed re-runs yet**, so "
                f"its result is a single, optimistic run. {versus}; re-run it: {measure}.")
        return out(None, text, [f"re-run {lead.group}'s best trial: {measure}"])

    split = f"{len(results.groups)} values" + (f" x {looks} looks" if looks > 1 else "")
    how = (f"noise margin: one run-to-run std {noise.std:.3g} (from {noise.used} seed re-runs"
           + (f", {noise.outliers} outlier(s) set aside" if noise.outliers else "")
           + f") plus {quantile:.2f} standard errors of the gap, a {_pct(alpha)} error rate "
           f"split over {split}")
    if not unscored and all(c.beaten for c in comparisons):
        closest = min(comparisons, key=lambda c: c.gap - (c.margin or 0) - c.search)
        text = (f"**{lead.group} wins** by {gap:.3g} in {results.metric}: {versus}. It beats "
                "every other value by more than the seed-noise margin plus that value's search "
                f"uncertainty (closest: {closest.other}, {closest.gap:.3g} > "
                f"{closest.margin:.3g} + {closest.search:.3g}; {how}).")
        return out(lead.group, text)

    by_group = {e.group: e for e in estimates}
    reasons, advice = [], []
    for c in comparisons:
        if c.beaten:
            continue
        other = by_group[c.other]
        if other.value is None:
            reasons.append(f"{c.other} has no complete trial")
            advice.append(_more_trials(other, None, results))
            continue
        if c.noise_bound:
            reasons.append(f"{c.other} is within the noise ({c.gap:.3g} <= margin "
                           f"{c.margin:.3g})")
            advice.append(_more_reruns(lead, other, c, study_file))
            if other.uncertainty > 0:
                advice.append(_more_trials(other, None, results))
            continue
        assert c.margin is not None
        room = c.gap - c.margin
        reasons.append(f"{c.other} is not tuned enough: it could be up to {c.search:.3g} "
                       f"better ({_uncertainty_basis(other)}), more than the {room:.3g} of the "
                       f"gap beyond the noise margin")
        advice.append(_more_trials(other, room, results))
    text = (f"**No winner yet.** {lead.group} leads, {versus}, but "
            + "; ".join(reasons) + f" ({how}). To settle it: " + "; ".join(advice) + ".")
    return out(None, text, advice)


def _estimate(results: Results, group: Group, noise: Noise,
              boundaries: list) -> ValueEstimate:
    search = search_uncertainty(results, group, boundaries)
    ranked = results.ranked(group.trials)
    rerun = [noise.by_trial[t.number] for t in ranked
             if t.number in noise.by_trial and len(noise.by_trial[t.number].kept) >= 2]
    if not rerun:
        best = ranked[0] if ranked else None
        if best is None or best.value is None:
            return ValueEstimate(group.label, None, "no complete trial", None, 0, 0, None, None,
                                 search)
        se = noise.std  # one run: its standard error is the noise itself
        return ValueEstimate(group.label, best.value, f"single run, trial #{best.number}",
                             best.number, 1, 0, None, se, search)
    chosen = min(rerun, key=lambda r: results.score(r.mean))
    basis = f"mean of {len(chosen.kept)} seed re-runs of trial #{chosen.of}"
    if chosen.outliers:
        basis += f", {chosen.outliers} outlier(s) set aside"
    se = noise.std / math.sqrt(len(chosen.kept)) if noise.std is not None else None
    # A trial that looked better than the estimate but has no re-runs could be this good.
    best = ranked[0]
    unrerun = 0.0
    if best.number != chosen.of and best.value is not None:
        unrerun = max(0.0, results.score(chosen.mean) - results.score(best.value))
        basis += f"; trial #{best.number} ({best.value:.4g}) not re-run yet"
    return ValueEstimate(group.label, chosen.mean, basis, chosen.of, len(chosen.kept),
                         chosen.outliers, chosen.std, se, search, unrerun)


def _compare(results: Results, lead: ValueEstimate, other: ValueEstimate,
             quantile: float | None, minimum: float) -> Comparison:
    assert lead.value is not None and other.value is not None
    gap = results.score(other.value) - results.score(lead.value)
    margin = None
    if quantile is not None and lead.se is not None and other.se is not None:
        margin = minimum + quantile * math.hypot(lead.se, other.se)
    return Comparison(other.group, gap, margin, other.uncertainty, minimum)


def _quantile(level: float, dof: int) -> float | None:
    if dof < 1:
        return None
    from scipy.stats import t

    return float(t.ppf(1 - level, dof))


def _uncertainty_basis(e: ValueEstimate) -> str:
    if e.unrerun > e.search.amount:
        return f"a trial without re-runs looked {e.unrerun:.3g} better"
    return e.search.basis


def _more_trials(e: ValueEstimate, room: float | None, results: Results) -> str:
    s = e.search
    widen = [f"widen {w.hyperparameter} to {w.proposed!r} (a new study version)"
             for w in s.edges]
    if s.gain is None:
        more = f"run at least {max(1, MIN_TRIALS - s.trials)} more trials of {e.group}"
    else:
        k = trials_to_reach(s, room) if room is not None else s.trials
        more = (f"run about {_round(k)} more trials of {e.group}" if k is not None and k > 0
                else f"re-run {e.group}'s best trial (hpo seeds)")
    return " or ".join([*widen, more])


def _more_reruns(lead: ValueEstimate, other: ValueEstimate, c: Comparison,
                 study_file: str) -> str:
    assert c.margin is not None
    if c.gap <= c.minimum:
        return (f"{lead.group} and {other.group} differ by less than one run-to-run std: not "
                "an improvement (the playbook), however many re-runs are made")
    n = max(lead.reruns, other.reruns, 2)
    needed = math.ceil(n * ((c.margin - c.minimum) / (c.gap - c.minimum)) ** 2)
    if needed > MAX_REPEATS_ADVISED:
        return (f"{lead.group} and {other.group} differ by less than the noise can resolve "
                f"with fewer than {MAX_REPEATS_ADVISED} re-runs each")
    return (f"about {needed} seed re-runs of each best trial would tell a gap of "
            f"{c.gap:.3g} from noise (`hpo seeds {study_file} --top 1 --repeats {needed}`)")


def _round(k: int) -> int:
    """A number of trials as a person would say it: 2 significant digits."""
    if k < 10:
        return k
    digits = 10 ** (len(str(k)) - 2)
    return -(-k // digits) * digits


def _pct(alpha: float) -> str:
    return f"{100 * alpha:g}%"
