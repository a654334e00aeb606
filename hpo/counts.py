"""What ``hpo status`` counts, as numbers: the study's standing without its trials.

Per scientific value: the design slots by their final attempt's state (a FAIL by its kind),
the attempts retried, the seed re-runs by state and the best design trial; for the study: the
slots done against the budget, the budget laid out, what the ETA needs, and the design slots
that failed, by kind and message, with their first trial numbers. Two sources give the same
record:

* :func:`from_tally`: the study's trials, grouped by :func:`hpo.tally.tally` (any storage);
* the PostgreSQL queue's aggregate queries (:meth:`hpo.store.queue.PostgresQueue.counts`),
  which read a few rows per scientific value however many trials the study holds, and the
  best trials themselves.

They must agree exactly (tests/integration/test_counts.py holds one against the other), and
:func:`hpo.tables.count_cells` renders either, so ``hpo status``, ``hpo run``'s summary and
``hpo report`` print the same numbers.

Pure: nothing here reads storage.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo import failures
from hpo.attrs import DIVERGED, ERROR, FAILURE_KIND, OOM, SLOT
from hpo.tally import Counts, slots_done, tally

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.study import Study
    from hpo.tally import ValueTally


# The user attributes that say how a FAIL ended (what hpo.failures reads its kind and message
# from): the aggregate queries count FAIL trials grouped by them.
OUTCOME_KEYS = (FAILURE_KIND, ERROR, OOM, DIVERGED)
FIRST = 8  # trial numbers kept per group of failures: what the tables list before "..."


@dataclass(frozen=True)
class ValueCounts:
    """One scientific value's counts: what :class:`hpo.tally.ValueTally` says, in numbers."""

    value: Mapping[str, Any]
    counts: Counts        # design slots by their final attempt
    rerun_counts: Counts  # seed re-runs by their final attempt
    retried: int          # earlier attempts, of design slots and of re-runs
    best: FrozenTrial | None  # the best complete design trial

    @property
    def label(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.value.items()) or "(all trials)"

    @classmethod
    def of(cls, value: ValueTally) -> ValueCounts:
        return cls(value=dict(value.value), counts=value.counts,
                   rerun_counts=value.rerun_counts, retried=value.retried, best=value.best)


@dataclass(frozen=True)
class Failed:
    """Design slots whose final attempt failed the same way: one kind, one message (its first
    line), inside the budget or beyond it."""

    kind: str
    message: str
    in_budget: bool
    count: int
    first: tuple[int, ...]  # their FIRST lowest trial numbers, in order
    first_slot: int         # their lowest slot: failures are listed in slot order


@dataclass(frozen=True)
class StudyCounts:
    """The study's standing: per scientific value (in the study's order), and overall."""

    values: tuple[ValueCounts, ...]
    budget: int    # the one counted against: as given, else as laid out, else the design's
    done: int      # design slots below the budget whose final attempt has finished
    planned: int   # the budget laid out so far: distinct slots
    first_start: dt.datetime | None  # the earliest start of any trial
    any_finished: bool  # some trial has finished, with its completion time
    failed: tuple[Failed, ...] = ()  # by kind, message, in the budget or not

    def failed_by(self, kinds: Iterable[str] = failures.KINDS, *,
                  in_budget: bool = False) -> list[Failed]:
        """The failed design slots of these kinds (only those below the budget, if asked),
        merged by kind and message, in slot order."""
        wanted = set(kinds)
        return merge(f for f in self.failed if f.kind in wanted and (f.in_budget or not in_budget))


def from_tally(definition: Study, trials: Iterable[FrozenTrial],
               budget: int | None = None) -> StudyCounts:
    """The counts from the trials themselves, through :func:`hpo.tally.tally`."""
    trials = list(trials)
    tallies = tally(definition, trials)
    planned = len({t.user_attrs[SLOT] for t in trials if SLOT in t.user_attrs})
    budget = budget or planned or definition.budget
    starts = [t.datetime_start for t in trials if t.datetime_start]
    return StudyCounts(
        values=tuple(ValueCounts.of(v) for v in tallies),
        budget=budget,
        done=slots_done(tallies, budget),
        planned=planned,
        first_start=min(starts, default=None),
        any_finished=any(t.state.is_finished() and t.datetime_complete for t in trials),
        failed=failed_of(tallies, budget),
    )


def failed_of(tallies: Iterable[ValueTally], budget: int | None = None) -> tuple[Failed, ...]:
    """The design slots whose final attempt failed, grouped as :class:`Failed` (every one
    inside the budget when none is given)."""
    groups: dict[tuple[str, str, bool], list[tuple[int, int]]] = {}
    for v in tallies:
        for s in v.slots:
            kind = failures.kind_of(s.final)
            if kind is not None:
                key = (kind, failures.message_of(s.final), budget is None or s.slot < budget)
                groups.setdefault(key, []).append((s.final.number, s.slot))
    return ordered(Failed(kind, message, below, len(found),
                          tuple(sorted(n for n, _ in found)[:FIRST]), min(s for _, s in found))
                   for (kind, message, below), found in groups.items())


def ordered(groups: Iterable[Failed]) -> tuple[Failed, ...]:
    """One order for a set of groups, whichever source counted them."""
    return tuple(sorted(groups, key=lambda f: (f.kind, f.message, f.in_budget)))


def merge(groups: Iterable[Failed]) -> list[Failed]:
    """Groups of the same kind and message merged (inside and beyond the budget), in the
    order of their first slot."""
    merged: dict[tuple[str, str], Failed] = {}
    for f in groups:
        other = merged.get((f.kind, f.message))
        merged[(f.kind, f.message)] = f if other is None else Failed(
            f.kind, f.message, f.in_budget and other.in_budget, f.count + other.count,
            tuple(sorted(f.first + other.first)[:FIRST]), min(f.first_slot, other.first_slot))
    return sorted(merged.values(), key=lambda f: f.first_slot)


def add_counts(parts: Iterable[tuple[FrozenTrial, int]]) -> Counts:
    """The counts of many trials given as (a trial like them, how many): each trial is
    counted as :meth:`hpo.tally.Counts.of` counts it, whatever fields Counts has."""
    fields = [f.name for f in dataclasses.fields(Counts)]
    total = dict.fromkeys(fields, 0)
    for trial, n in parts:
        one = Counts.of([trial])
        for name in fields:
            total[name] += getattr(one, name) * n
    return Counts(**total)
