"""A study's trials sorted the playbook's way: by scientific value, re-runs kept apart.

Every analysis compares *scientific values*, so every analysis starts here. Two kinds of trial
are kept apart:

* design trials: the study's balanced, paired design, one per slot (its final attempt: an
  attempt whose worker died and that was retried is not a trial of the design);
* seed re-runs (user attribute ``seed_rerun_of``, added by ``hpo seeds``): the same
  hyperparameters as a design trial with a new seed. They measure run-to-run variance and
  must not count as extra trials of the design, or one lucky seed would win the isolation plot.

A scientific hyperparameter with very many values (``integer(16, 1024)``) is bucketed, so an
isolation plot shows the best trial per slice instead of a thousand single points.

The grouping itself is :func:`hpo.tally.tally`'s, the one every command counts with.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from hpo import failures
from hpo.attrs import SEED_RERUN_OF as RERUN_ATTR
from hpo.space import Int
from hpo.store.queue import queue_for
from hpo.tally import tally, value_of

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from hpo.space import Distribution
    from hpo.study import Study
    from hpo.tally import ValueTally

# More distinct values than this and a scientific integer is plotted in slices.
MAX_VALUES_UNBUCKETED = 12
BUCKETS = 8


def is_rerun(trial: FrozenTrial) -> bool:
    return RERUN_ATTR in trial.user_attrs


def is_infeasible(trial: FrozenTrial) -> bool:
    """Diverged or out of memory: a property of the hyperparameters (:mod:`hpo.failures`).

    A trial whose objective raised, that timed out or whose worker died is FAIL too, but
    says nothing about its hyperparameters: it is a failure, never infeasible.
    """
    return failures.is_infeasible(trial)


def infeasible_kind(trial: FrozenTrial) -> str:
    """'oom', 'diverged', or 'failed' for a FAIL that is not infeasible (error, timeout,
    infrastructure)."""
    kind = failures.kind_of(trial)
    return kind if kind in failures.INFEASIBLE else "failed"


@dataclass
class Group:
    """One scientific value (or a slice of values) and its trials."""

    label: str
    value: dict[str, Any]
    nuisance: dict[str, Distribution]
    trials: list[FrozenTrial] = field(default_factory=list)  # design trials, every state
    reruns: list[FrozenTrial] = field(default_factory=list)  # seed re-runs of this group's trials
    retried: int = 0  # attempts whose worker died, retried: in no list above

    @property
    def finished(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state.is_finished()]

    @property
    def complete(self) -> list[FrozenTrial]:
        return [t for t in self.trials if t.state == TrialState.COMPLETE and _finite(t.value)]


@dataclass
class Results:
    """The study's design, read back from a definition, and its trials grouped."""

    name: str
    goal: str
    metric: str
    direction: str
    fixed: dict[str, Any]
    groups: list[Group]
    scientific: list[str]
    tallies: tuple[ValueTally, ...] = ()  # the same trials, per scientific value and slot

    def score(self, value: float) -> float:
        """The value oriented so that lower is better, whatever the direction."""
        return value if self.direction == "minimize" else -value

    def ranked(self, trials: Sequence[FrozenTrial]) -> list[FrozenTrial]:
        """Complete trials, best first."""
        done = [t for t in trials if t.state == TrialState.COMPLETE and _finite(t.value)]
        return sorted(done, key=lambda t: (self.score(value_of(t)), t.number))

    def best(self, group: Group) -> FrozenTrial | None:
        ranked = self.ranked(group.trials)
        return ranked[0] if ranked else None

    def better(self, a: float, b: float) -> bool:
        return self.score(a) < self.score(b)

    @property
    def reruns(self) -> list[FrozenTrial]:
        return [t for g in self.groups for t in g.reruns]


def collect(definition: Study, study: optuna.Study) -> Results:
    """Group a study's trials by scientific value (or slice of values)."""
    space = definition.space
    names = list(space.scientific)
    values = space.scientific_values()
    key_of = _bucketing(definition)
    groups: dict[tuple, Group] = {}
    for value in values:
        key, label, shown = key_of(value)
        group = groups.get(key)
        if group is None:
            groups[key] = Group(label=label, value=shown,
                                nuisance=dict(space.active_nuisance(value)))
        else:
            # A slice holds several values: the union of their nuisance hyperparameters.
            for n, d in space.active_nuisance(value).items():
                group.nuisance.setdefault(n, d)
    # One read of every trial: on PostgreSQL a query of hpo's own (TrialQueue.all_trials).
    tallies = tally(definition, queue_for(study).all_trials())
    for counted in tallies:
        group = groups[key_of(dict(counted.value))[0]]
        group.trials.extend(counted.design)
        group.reruns.extend(counted.reruns)
        group.retried += counted.retried
    for group in groups.values():
        # In trial order, as they ran: the bootstrap's draws depend on the order.
        group.trials.sort(key=lambda t: t.number)
        group.reruns.sort(key=lambda t: t.number)
    return Results(
        name=definition.name,
        goal=definition.goal,
        metric=definition.metric,
        direction=definition.direction,
        fixed=dict(space.fixed),
        groups=list(groups.values()),
        scientific=names,
        tallies=tallies,
    )


def group_label(definition: Study, value: dict) -> str:
    """The label of the group (scientific value, or slice of values) a value belongs to."""
    return _bucketing(definition)(value)[1]


def _bucketing(definition: Study) -> Callable[[dict], tuple[tuple, str, dict]]:
    """A function: scientific value -> (group key, label, value shown)."""
    space = definition.space
    edges: dict[str, list[int]] = {}
    for name, dist in space.scientific.items():
        if isinstance(dist, Int) and len(dist.values()) > MAX_VALUES_UNBUCKETED:
            edges[name] = _bucket_edges(dist)

    def key_of(value: dict) -> tuple[tuple, str, dict]:
        key, parts, shown = [], [], {}
        for name, v in value.items():
            if name in edges:
                lo, hi = _slice(edges[name], v)
                key.append((name, lo))
                parts.append(f"{name} in [{lo}, {hi}]")
                shown[name] = (lo, hi)
            else:
                key.append((name, v))
                parts.append(f"{name}={v}")
                shown[name] = v
        return tuple(key), ", ".join(parts) or "(all trials)", shown

    return key_of


def _bucket_edges(dist: Int) -> list[int]:
    """BUCKETS slices of an integer range (log-spaced for a log range); last edge inclusive."""
    if dist.log:
        lo, hi = math.log(dist.low), math.log(dist.high + 1)
        raw = [round(math.exp(lo + i * (hi - lo) / BUCKETS)) for i in range(BUCKETS + 1)]
    else:
        width = dist.high + 1 - dist.low
        raw = [round(dist.low + i * width / BUCKETS) for i in range(BUCKETS + 1)]
    edges = sorted(set(raw))
    edges[-1] = dist.high
    return edges


def _slice(edges: list[int], v: int) -> tuple[int, int]:
    """The inclusive [lo, hi] slice holding v: [e0, e1 - 1], ..., [e(k-1), ek]."""
    i = max(j for j in range(len(edges) - 1) if edges[j] <= v)
    return edges[i], (edges[i + 1] - 1 if i + 2 < len(edges) else edges[-1])


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)
