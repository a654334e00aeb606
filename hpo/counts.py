"""What ``hpo status`` counts, as numbers: the study's standing without its trials.

Per scientific value: the design slots by their final attempt's state, the attempts retried,
the seed re-runs by state and the best design trial; for the study: the slots done against
the budget, the budget laid out, and what the ETA needs. Two sources give the same record:

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

from hpo.attrs import DIVERGED, ERROR, OOM, SLOT
from hpo.tally import Counts, slots_done, tally

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.study import Study
    from hpo.tally import ValueTally


# The user attributes that say how a FAIL ended (what its kind and message are read from):
# the aggregate queries count FAIL trials grouped by them.
OUTCOME_KEYS = (ERROR, OOM, DIVERGED)


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
class StudyCounts:
    """The study's standing: per scientific value (in the study's order), and overall."""

    values: tuple[ValueCounts, ...]
    budget: int    # the one counted against: as given, else as laid out, else the design's
    done: int      # design slots below the budget whose final attempt has finished
    planned: int   # the budget laid out so far: distinct slots
    first_start: dt.datetime | None  # the earliest start of any trial
    any_finished: bool  # some trial has finished, with its completion time


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
    )


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
