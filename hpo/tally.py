"""One grouping of a study's trials: by scientific value, and within a value by slot.

Every count hpo prints per scientific value (the summary after ``hpo run``, ``hpo status``,
``hpo report``) comes from :func:`tally`, so they cannot disagree. The rules:

* a trial's *slot* is its ``slot`` user attribute, else its number (:func:`hpo.design.slot_of`),
  and its scientific value is ``values[slot % len(values)]``, the design's own rule: a WAITING
  trial with no parameters yet is counted where it will run;
* a slot's *final attempt* is its latest trial that is not a seed re-run. The earlier ones are
  attempts whose worker died and which the reaper retried (a copy with the same slot and the
  system attributes ``failed_trial`` / ``retry_history``): they are counted as *retried*, never
  as design trials, or a dead worker would look like a failed hyperparameter;
* a seed re-run (user attribute ``seed_rerun_of``, from ``hpo seeds``) evaluates a slot's point
  again with another seed. It is outside the design and the budget, and counted apart. A re-run
  can be retried too: its attempts are chained by ``failed_trial``, and the final one counts.

Pure: a list of trials in, frozen records out; nothing here reads storage.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from optuna.trial import TrialState

from hpo import failures
from hpo.attrs import SEED_RERUN_OF as RERUN_ATTR
from hpo.attrs import SLOT as SLOT_ATTR
from hpo.design import slot_of

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.study import Study


@dataclass(frozen=True)
class Counts:
    """Trials (or slots, by their final attempt) in each state, a FAIL by its failure kind
    (:mod:`hpo.failures`): infeasible (diverged, oom) apart from failed (error, timeout,
    infrastructure)."""

    waiting: int = 0
    running: int = 0
    complete: int = 0
    pruned: int = 0
    diverged: int = 0
    oom: int = 0
    error: int = 0
    timeout: int = 0
    infrastructure: int = 0

    @classmethod
    def of(cls, trials: Iterable[FrozenTrial]) -> Counts:
        trials = list(trials)
        states = [t.state for t in trials]
        return cls(waiting=states.count(TrialState.WAITING),
                   running=states.count(TrialState.RUNNING),
                   complete=states.count(TrialState.COMPLETE),
                   pruned=states.count(TrialState.PRUNED),
                   **failures.count_kinds(trials))

    @property
    def infeasible(self) -> int:
        """Diverged or out of memory: a property of the hyperparameters."""
        return self.diverged + self.oom

    @property
    def failed(self) -> int:
        """Error, timeout or infrastructure: to fix, and retry (``hpo retry``)."""
        return self.error + self.timeout + self.infrastructure

    @property
    def fail(self) -> int:
        """Every FAIL, whatever its kind."""
        return self.infeasible + self.failed

    def kinds(self) -> dict[str, int]:
        """Each failure kind's count, in :data:`hpo.failures.KINDS` order."""
        return {kind: getattr(self, kind) for kind in failures.KINDS}

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.fail

    @property
    def total(self) -> int:
        return self.finished + self.waiting + self.running


@dataclass(frozen=True)
class Slot:
    """One place in the design: its final attempt, and the attempts retried before it."""

    slot: int
    final: FrozenTrial
    earlier: tuple[FrozenTrial, ...] = ()  # oldest first

    @property
    def done(self) -> bool:
        return self.final.state.is_finished()


@dataclass(frozen=True)
class ValueTally:
    """One scientific value: its design slots, its seed re-runs and its best trial."""

    value: Mapping[str, Any]
    slots: tuple[Slot, ...]  # by slot
    reruns: tuple[FrozenTrial, ...]  # the final attempt of each seed re-run, by number
    retried: int  # earlier attempts, of design slots and of re-runs, that were retried
    best: FrozenTrial | None  # the best complete design trial (never a re-run)

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.value.items()) or "(all trials)"

    @property
    def design(self) -> tuple[FrozenTrial, ...]:
        """Each slot's final attempt, by trial number: the design trials."""
        return tuple(sorted((s.final for s in self.slots), key=lambda t: t.number))

    @property
    def counts(self) -> Counts:
        """Design slots by their final attempt's state."""
        return Counts.of(s.final for s in self.slots)

    @property
    def rerun_counts(self) -> Counts:
        return Counts.of(self.reruns)


def design_slots(trials: Iterable[FrozenTrial]) -> tuple[Slot, ...]:
    """Every design slot with its final and earlier attempts, by slot; seed re-runs left out.
    Needs no definition: ``hpo studies`` counts a study it has no study file for with it."""
    attempts: dict[int, list[FrozenTrial]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        # A trial with no slot was not laid out by hpo (enqueued by hand or by another
        # client): it is not the design's, and hpo refuses to run it (hpo.store.opening).
        if RERUN_ATTR not in trial.user_attrs and SLOT_ATTR in trial.user_attrs:
            attempts.setdefault(slot_of(trial), []).append(trial)
    return tuple(Slot(slot, tried[-1], tuple(tried[:-1]))
                 for slot, tried in sorted(attempts.items()))
def value_of(trial: FrozenTrial) -> float:
    """A complete trial's value: Optuna types it optional, but a COMPLETE trial has one."""
    assert trial.value is not None, f"trial #{trial.number} has no value"
    return trial.value


def tally(definition: Study, trials: Iterable[FrozenTrial]) -> tuple[ValueTally, ...]:
    """The study's trials grouped by scientific value (in the study's order), then by slot."""
    values = definition.space.scientific_values()
    sign = 1.0 if definition.direction == "minimize" else -1.0
    trials = list(trials)
    by_value: list[list[Slot]] = [[] for _ in values]
    for slot in design_slots(trials):
        by_value[slot.slot % len(values)].append(slot)
    reruns: list[dict[int, list[FrozenTrial]]] = [{} for _ in values]
    for trial in sorted(trials, key=lambda t: t.number):
        if RERUN_ATTR in trial.user_attrs:
            # A retried re-run's copies carry the first attempt's number as failed_trial.
            chain = int(trial.system_attrs.get("failed_trial", trial.number))
            reruns[slot_of(trial) % len(values)].setdefault(chain, []).append(trial)
    out = []
    for value, value_slots, by_chain in zip(values, by_value, reruns, strict=True):
        slots = tuple(value_slots)
        complete = [s.final for s in slots if s.final.state == TrialState.COMPLETE
                    and s.final.value is not None and math.isfinite(s.final.value)]
        out.append(ValueTally(
            value=dict(value),
            slots=slots,
            reruns=tuple(sorted((tried[-1] for tried in by_chain.values()),
                                key=lambda t: t.number)),
            retried=sum(len(s.earlier) for s in slots)
            + sum(len(tried) - 1 for tried in by_chain.values()),
            best=min(complete, key=lambda t: (sign * value_of(t), t.number), default=None),
        ))
    return tuple(out)


def failed_slots(tallies: Iterable[ValueTally], budget: int | None = None) -> list[Slot]:
    """Design slots whose final attempt failed with an error, a timeout or an infrastructure
    failure (not infeasible): what makes ``hpo run`` exit 1 and ``hpo retry`` queue again."""
    return sorted((s for v in tallies for s in v.slots
                   if (budget is None or s.slot < budget) and failures.is_failure(s.final)),
                  key=lambda s: s.slot)


def slots_done(tallies: Iterable[ValueTally], budget: int | None = None) -> int:
    """Design slots whose final attempt finished (below ``budget`` when one is given: slots laid
    out by an earlier, larger budget are not part of this one)."""
    return sum(s.done for v in tallies for s in v.slots if budget is None or s.slot < budget)
