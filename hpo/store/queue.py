"""The trial queue: how a worker takes a trial, finishes it or hands it back.

One seam, chosen once when the study is opened (:func:`queue_for`): on PostgreSQL, hpo's
own statements (:mod:`hpo.store.pgqueue`), where a trial changes hands in one statement
each way; on any other Optuna storage (the journal file, SQLite), Optuna's public calls.
Nothing outside :mod:`hpo.store` asks which storage it is talking to.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Protocol, cast

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from hpo import attrs
from hpo.design import is_seed_rerun, slot_of
from hpo.store.optuna_internals import (
    heartbeat_interval,
    rdb_backend,
    stale_trial_ids,
    storage_of,
    study_id_of,
    trial_id_of,
)
from hpo.store.pgqueue import CountRow, Outcomes, Slot

if TYPE_CHECKING:
    import optuna
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

    from hpo.counts import StudyCounts
    from hpo.store.reconnect import ReconnectingRDBStorage
    from hpo.study import Study


def _like(state: str, outcome: str | None) -> FrozenTrial:
    """A trial in this state with these outcome attributes (``{key: value_json}`` as JSON):
    what a group of counted trials has in common."""
    from optuna.trial import FrozenTrial

    user_attrs = {k: json.loads(v) for k, v in json.loads(outcome).items()} if outcome else {}
    return FrozenTrial(number=-1, state=TrialState[state], value=None, datetime_start=None,
                       datetime_complete=None, params={}, distributions={},
                       user_attrs=user_attrs, system_attrs={}, intermediate_values={},
                       trial_id=-1)


class _Playbook(Protocol):
    """What the queue asks of the study's sampler (hpo.sampling.PlaybookSampler, which
    hpo.store.opening gives every study; not imported here: sampling imports the store)."""

    def trial_seed(self, slot: int) -> int: ...

    def planned(self, slot: int) -> tuple[dict[str, Any], dict[str, BaseDistribution]] | None:
        ...

    def planned_many(self, slots: Sequence[int]
                     ) -> list[tuple[dict[str, Any], dict[str, BaseDistribution]] | None]: ...

    def point(self, study: optuna.Study, trial: FrozenTrial) -> tuple[dict[str, Any], dict]: ...


def queue_for(study: optuna.Study) -> TrialQueue:
    """The queue for an opened study: PostgreSQL's statements where they apply."""
    from hpo.store.reconnect import ReconnectingRDBStorage

    backend = rdb_backend(storage_of(study))
    if isinstance(backend, ReconnectingRDBStorage) and backend.engine.dialect.name == "postgresql":
        return PostgresQueue(study, backend)
    return TrialQueue(study)


def beyond_budget(user_attrs: dict[str, Any], budget: int) -> bool:
    """A slot laid out by an earlier, larger budget: it waits for a run that asks for it.
    Seed re-runs are extra evaluations of finished slots: whatever the budget, they run."""
    return user_attrs.get(attrs.SLOT, -1) >= budget and attrs.SEED_RERUN_OF not in user_attrs


class TrialQueue:
    """The queue on any Optuna storage, through Optuna's public storage calls."""

    def __init__(self, study: optuna.Study):
        self.study = study
        self.storage = storage_of(study)
        self.study_id = study_id_of(study)

    # --- a trial changing hands ----------------------------------------------------------

    def claim(self, budget: int, owner: dict[str, Any]) -> FrozenTrial | None:
        """Claim the lowest WAITING trial inside the budget, or None if none is left.

        The claimed trial is RUNNING with ``owner`` (whose it is: host, pid...) written on
        it, and has its whole point. Unlike ``Study.ask``, this never creates a trial,
        which is what keeps the total exact.
        """
        storage = self.storage
        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
            if beyond_budget(trial.user_attrs, budget) or not (
                    attrs.SLOT in trial.user_attrs or is_seed_rerun(trial)):
                continue  # not the design's to run now (or at all: enqueued by hand)
            trial_id = trial_id_of(trial)
            try:
                # False when another worker popped it first: try the next one.
                if not storage.set_trial_state_values(trial_id, state=TrialState.RUNNING):
                    continue
            except UpdateFinishedTrialError:  # it finished meanwhile
                continue
            for key, value in owner.items():
                storage.set_trial_user_attr(trial_id, key, value)
            return storage.get_trial(trial_id)
        return None

    def finish(self, trial: FrozenTrial, value: float) -> None:
        """Record a claimed trial as COMPLETE with its value (``study.tell``).

        Raises UpdateFinishedTrialError, as ``study.tell`` does, when the trial is no longer
        RUNNING (a reaper failed it meanwhile, or a retried write had already finished it).
        """
        self.study.tell(trial.number, value)

    def hand_back(self, trial: FrozenTrial) -> None:
        """Put a RUNNING trial back in the queue, as WAITING, for any worker to take.

        The pid is cleared first, or the reaper could mistake the next worker's fresh
        attempt for this dead one.
        """
        trial_id = trial_id_of(trial)
        self.storage.set_trial_user_attr(trial_id, attrs.WORKER_PID, None)
        self.storage.set_trial_state_values(trial_id, state=TrialState.WAITING)

    def trial_id(self, trial: FrozenTrial | optuna.Trial) -> int:
        return trial_id_of(trial)

    # --- the design's slots --------------------------------------------------------------

    def lay_out(self, budget: int, slots: Iterable[int] | None = None) -> int:
        """Make sure slots 0..budget-1 exist, or only ``slots`` when given (``hpo run
        --until-decided`` adds trials to some scientific values only: slots k * V + v for
        the chosen v, so a layout may have gaps); returns how many were added. Call under
        :func:`hpo.store.opening.exclusive`: two callers at once would add a slot twice."""
        planned = {t.user_attrs[attrs.SLOT] for t in self.study.get_trials(deepcopy=False)
                   if attrs.SLOT in t.user_attrs}
        wanted = range(budget) if slots is None else sorted(set(slots))
        missing = [s for s in wanted if s not in planned]
        self.study.add_trials([
            create_trial(state=TrialState.WAITING, params=x.params, distributions=x.dists,
                         user_attrs={attrs.SLOT: x.slot, attrs.SEED: x.seed},
                         system_attrs={attrs.FIXED_PARAMS: {}})
            for x in self._plan(missing)])
        return len(missing)

    def _plan(self, slots: list[int]) -> list[Slot]:
        sampler = cast(_Playbook, self.study.sampler)
        return [Slot(slot, sampler.trial_seed(slot), *(planned or ({}, {})))
                for slot, planned in zip(slots, sampler.planned_many(slots), strict=True)]

    def add_retry(self, failed: FrozenTrial) -> bool:
        """Queue the next attempt at a failed trial's slot: a WAITING copy with the same
        parameters, slot, seed and reported steps (Optuna's ``failed_trial`` /
        ``retry_history`` system attributes, so its tools understand it)."""
        system_attrs = {
            **failed.system_attrs,
            attrs.FAILED_TRIAL: failed.system_attrs.get(attrs.FAILED_TRIAL, failed.number),
            attrs.RETRY_HISTORY: [*failed.system_attrs.get(attrs.RETRY_HISTORY, []),
                                  failed.number],
        }
        self.study.add_trial(create_trial(
            state=TrialState.WAITING,
            params=failed.params,
            distributions=failed.distributions,
            user_attrs={k: v for k, v in failed.user_attrs.items() if k not in attrs.ATTEMPT},
            system_attrs=system_attrs,
            intermediate_values=failed.intermediate_values,
        ))
        return True

    def foreign_waiting(self) -> list[FrozenTrial]:
        """WAITING trials that are neither a design slot nor a seed re-run: enqueued by
        hand or by another client."""
        return [t for t in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
                if attrs.SLOT not in t.user_attrs and not is_seed_rerun(t)]

    # --- reads ---------------------------------------------------------------------------

    def all_trials(self) -> list[FrozenTrial]:
        """Every trial of the study, in number order, not copied (``hpo report``, export)."""
        return self.study.get_trials(deepcopy=False)

    def counts(self, definition: Study, budget: int | None = None) -> StudyCounts:
        """The study's standing, per scientific value and overall (:mod:`hpo.counts`):
        here from the trials themselves, through the tally."""
        from hpo.counts import from_tally

        return from_tally(definition, self.study.get_trials(deepcopy=False), budget)

    def value_trials(self, known: dict[int, FrozenTrial]) -> list[FrozenTrial] | None:
        """Finished and running trials in one read, for TPE; None: use Optuna's own read."""
        return None

    def running(self) -> list[FrozenTrial]:
        """The RUNNING trials."""
        # Straight from the database where there is one: through Optuna's cache, this read
        # would also fetch every WAITING trial of the budget.
        source = rdb_backend(self.storage) or self.storage
        return source.get_all_trials(self.study_id, deepcopy=False, states=(TrialState.RUNNING,))

    def pending_reruns(self) -> bool:
        """A seed re-run still waiting or running."""
        return any(is_seed_rerun(t) for t in self.study.get_trials(
            deepcopy=False, states=(TrialState.WAITING, TrialState.RUNNING)))

    def outcomes(self, budget: int) -> Outcomes:
        """How the design slots below ``budget`` stand, by their latest attempt: counts by
        state and failure kind, and the lowest and highest complete value (the best, either
        way). For the progress bar and fail-fast, which ask often."""
        from hpo.tally import Counts, design_slots

        mine = [t for t in self.study.get_trials(deepcopy=False) if attrs.SLOT in t.user_attrs]
        finals = [s.final for s in design_slots(mine) if s.slot < budget]
        values = [t.value for t in finals if t.state == TrialState.COMPLETE
                  and t.value is not None]
        return Outcomes(Counts.of(finals), min(values, default=None), max(values, default=None))

    def slots_done(self, budget: int) -> int:
        """Design slots below ``budget`` whose latest attempt has finished; a seed re-run
        waiting does not make its slot undone."""
        pending, planned = set(), set()
        for t in self.study.get_trials(deepcopy=False):
            slot = t.user_attrs.get(attrs.SLOT)
            if slot is None or slot >= budget:
                continue
            planned.add(slot)
            if not t.state.is_finished() and not is_seed_rerun(t):
                pending.add(slot)
        return len(planned - pending)

    # --- heartbeats ----------------------------------------------------------------------

    @property
    def heartbeat_interval(self) -> int | None:
        """Seconds between heartbeats, or None where the storage keeps none (journal)."""
        return heartbeat_interval(self.storage)

    def record_heartbeat(self, trial_id: int) -> None:
        self.storage.record_heartbeat(trial_id)  # type: ignore[attr-defined]

    def stale_trial_ids(self) -> set[int]:
        """RUNNING trials whose heartbeat is older than the grace period."""
        if not self.heartbeat_interval:
            return set()
        return set(stale_trial_ids(self.storage, self.study_id))

    def heartbeat_ages(self, trial_ids: list[int]) -> dict[int, float]:
        """Seconds since each running trial's last heartbeat ({} where there are none)."""
        return {}

    def heartbeats(self) -> dict[int, Any]:
        """Each RUNNING trial's last heartbeat as stored ({} where there are none)."""
        return {}


class PostgresQueue(TrialQueue):
    """The queue on PostgreSQL: hpo's statements (:mod:`hpo.store.pgqueue`)."""

    def __init__(self, study: optuna.Study, backend: ReconnectingRDBStorage):
        super().__init__(study)
        self.backend = backend

    def claim(self, budget: int, owner: dict[str, Any]) -> FrozenTrial | None:
        # One statement. Study.ask reads every WAITING trial with all its attributes to pop
        # one, which would grow with the budget on every take.
        trial = self.backend.claim_trial(self.study_id, budget, owner)
        if trial is not None and not trial.params:
            # Not laid out with its point (exploit phase, a seed re-run): choose it now and
            # write it at once. Written one by one while the trial runs, each would go
            # through Optuna's cache, which knows only the trials it has read, and reading
            # the study for it re-reads every WAITING trial of the budget.
            params, dists = self._point(trial)
            self.backend.set_trial_params(trial_id_of(trial), params, dists)
            trial.params.update(params)
            trial.distributions.update(dists)
        return trial

    def _point(self, trial: FrozenTrial) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
        # The study's sampler is the playbook sampler: hpo.store.opening gives it.
        return cast(_Playbook, self.study.sampler).point(self.study, trial)

    def finish(self, trial: FrozenTrial, value: float) -> None:
        self.study.sampler.after_trial(self.study, trial, TrialState.COMPLETE, [value])
        if not self.backend.finish_trial(trial_id_of(trial), value):
            raise UpdateFinishedTrialError(f"trial {trial.number} is no longer RUNNING")

    def value_trials(self, known: dict[int, FrozenTrial]) -> list[FrozenTrial] | None:
        return self.backend.tpe_trials(self.study_id, known, running=True)

    def pending_reruns(self) -> bool:
        return self.backend.reruns_pending(self.study_id)

    def all_trials(self) -> list[FrozenTrial]:
        return self.backend.all_trials(self.study_id)

    def counts(self, definition: Study, budget: int | None = None) -> StudyCounts:
        # One aggregate query (hpo.store.pgqueue._COUNTS) and the few best trials: what the
        # tally would count, without loading the study. Its rows are counted back here as
        # the tally counts trials (hpo.counts.add_counts), each FAIL group through a trial
        # carrying the attributes that say how it ended, so hpo.failures reads its kind and
        # message as it reads any trial's.
        from hpo import failures
        from hpo.counts import (
            FIRST,
            OUTCOME_KEYS,
            Failed,
            StudyCounts,
            ValueCounts,
            add_counts,
            ordered,
        )

        values = definition.space.scientific_values()
        rows = self.backend.study_counts(
            self.study_id, values=len(values),
            sign=1.0 if definition.direction == "minimize" else -1.0,
            budget=budget, fallback=definition.budget, outcome_keys=OUTCOME_KEYS, first=FIRST)
        design: list[list[tuple[FrozenTrial, int]]] = [[] for _ in values]
        reruns: list[list[tuple[FrozenTrial, int]]] = [[] for _ in values]
        retried, best_ids, done = [0] * len(values), {}, 0
        failed: dict[tuple[str, str, bool], list[CountRow]] = {}
        for row in rows:
            like = _like(row.state, row.outcome)
            (reruns if row.rerun else design)[row.group].append((like, row.n))
            retried[row.group] += row.retried
            if row.in_budget and like.state.is_finished():
                done += row.n
            if row.best_id is not None:
                best_ids[row.group] = row.best_id
            kind = failures.kind_of(like)
            if kind is not None and not row.rerun:
                key = (kind, failures.message_of(like), row.in_budget)
                failed.setdefault(key, []).append(row)
        best = {trial_id_of(t): t for t in self.backend.trials_by_id(list(best_ids.values()))}
        first = rows[0] if rows else None
        return StudyCounts(
            values=tuple(ValueCounts(
                value=dict(value), counts=add_counts(design[g]),
                rerun_counts=add_counts(reruns[g]), retried=retried[g],
                best=best.get(best_ids[g]) if g in best_ids else None)
                for g, value in enumerate(values)),
            budget=first.budget if first else budget or definition.budget,
            done=done,
            planned=first.planned if first else 0,
            first_start=first.first_start if first else None,
            any_finished=first.any_finished if first else False,
            failed=ordered(Failed(
                kind, message, in_budget, sum(r.n for r in group),
                tuple(sorted(n for r in group for n in r.failed_numbers or ())[:FIRST]),
                min(r.first_slot for r in group))
                for (kind, message, in_budget), group in failed.items()),
        )

    def outcomes(self, budget: int) -> Outcomes:
        # One aggregate query: the bar asks every second, and a study may hold 10,000 trials.
        return self.backend.outcomes(self.study_id, budget)

    def slots_done(self, budget: int) -> int:
        return self.backend.slots_done(self.study_id, budget)

    def lay_out(self, budget: int, slots: Iterable[int] | None = None) -> int:
        # In bulk and under the database's own guard (hpo.store.pgqueue.lay_out_slots); no
        # cross-process lock is needed around it.
        return self.backend.lay_out_slots(self.study_id, budget, self._plan, slots)

    def add_retry(self, failed: FrozenTrial) -> bool:
        if is_seed_rerun(failed):  # not a design slot: Optuna's own copy
            return super().add_retry(failed)
        return self.backend.retry_slot(self.study_id, failed, slot_of(failed), attrs.ATTEMPT)

    def foreign_waiting(self) -> list[FrozenTrial]:
        return [self.storage.get_trial(i) for i in self.backend.foreign_waiting(self.study_id)]

    def heartbeats(self) -> dict[int, Any]:
        return self.backend.heartbeats(self.study_id)

    def heartbeat_ages(self, trial_ids: list[int]) -> dict[int, float]:
        if not trial_ids:
            return {}
        import sqlalchemy

        query = sqlalchemy.text(
            "SELECT trial_id, EXTRACT(EPOCH FROM (now() - heartbeat)) FROM trial_heartbeats "
            "WHERE trial_id = ANY(:ids)")
        with self.backend.engine.connect() as conn:
            return {row[0]: float(row[1]) for row in conn.execute(query, {"ids": trial_ids})}
