"""The trial queue on PostgreSQL: a trial changes hands in one statement each way.

Through Optuna's ORM, starting a trial and finishing it takes about thirty statements and
nine transactions (read the trial, lock it, update it, read it back, once per parameter...).
A worker's hot path needs two:

* **claim**: lock the lowest WAITING trial inside the budget (``FOR UPDATE SKIP LOCKED``, so
  workers never wait on each other), mark it RUNNING, write whose it is (provenance) and its
  first heartbeat, and read the whole trial back;
* **finish**: mark it COMPLETE and store its value, only if it is still RUNNING (a reaper
  may have failed it meanwhile).

Both write Optuna's own tables exactly as its RDBStorage would, so Optuna, optuna-dashboard
and every other reader see ordinary trials. Everything else (failures, pruning, reports,
attributes) still goes through Optuna.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from optuna import distributions
from optuna.trial import FrozenTrial

from hpo import attrs
from hpo.store.optuna_internals import TRIAL_COLUMNS, frozen_trial, trial_id_of

_CLAIM = """
WITH claimed AS (
    UPDATE trials SET state = 'RUNNING', datetime_start = :now
    WHERE trial_id = (
        SELECT t.trial_id FROM trials t
        WHERE t.study_id = :study_id AND t.state = 'WAITING'
          -- Slots laid out by an earlier, larger budget wait for a run that asks for them;
          -- seed re-runs are extra evaluations and run whatever the budget (hpo.store.budget).
          AND NOT EXISTS (SELECT 1 FROM trial_user_attributes a
                          WHERE a.trial_id = t.trial_id AND a.key = :slot_key
                            AND CAST(a.value_json AS numeric) >= :budget
                            AND NOT EXISTS (SELECT 1 FROM trial_user_attributes r
                                            WHERE r.trial_id = t.trial_id AND r.key = :rerun_key))
        ORDER BY t.number LIMIT 1
        FOR UPDATE OF t SKIP LOCKED)
    RETURNING *
), attrs AS (
    INSERT INTO trial_user_attributes (trial_id, key, value_json)
    SELECT c.trial_id, u.key, u.value_json
    FROM claimed c, unnest(CAST(:keys AS varchar[]), CAST(:values AS text[])) AS u(key, value_json)
    ON CONFLICT (trial_id, key) DO UPDATE SET value_json = EXCLUDED.value_json
), beat AS (
    INSERT INTO trial_heartbeats (trial_id, heartbeat)
    SELECT trial_id, CURRENT_TIMESTAMP FROM claimed
    ON CONFLICT (trial_id) DO UPDATE SET heartbeat = EXCLUDED.heartbeat
)
-- The subqueries read the trial as it was before this statement: the attributes just
-- written are merged in by the caller.
SELECT """ + TRIAL_COLUMNS.format(t="c") + """ FROM claimed c
"""

# The trials TPE needs that the caller does not hold yet: the finished ones it has not seen,
# and every running one (they change).
_TPE_TRIALS = """
SELECT """ + TRIAL_COLUMNS.format(t="t") + """ FROM trials t
WHERE t.study_id = :study_id AND t.state IN :states
  AND (t.state = 'RUNNING' OR NOT (t.trial_id = ANY(:known)))
"""

_FINISH = """
WITH done AS (
    UPDATE trials SET state = 'COMPLETE', datetime_complete = :now
    WHERE trial_id = :trial_id AND state = 'RUNNING'
    RETURNING trial_id
)
INSERT INTO trial_values (trial_id, objective, value, value_type)
SELECT trial_id, 0, :value, 'FINITE' FROM done
RETURNING trial_id
"""


class QueueStatements:
    """Mixed into hpo's RDBStorage for PostgreSQL (it needs ``self.engine``)."""

    engine: Any

    def ensure_queue_index(self) -> None:
        """A partial index of the WAITING trials (only queued rows, so it stays small), which
        makes the head of the queue an index lookup however many trials the study holds.
        Optuna never sees it. Without the right to create it, hpo works, only slower."""
        import logging

        import sqlalchemy

        try:
            with self.engine.begin() as conn:
                conn.execute(sqlalchemy.text(
                    "CREATE INDEX IF NOT EXISTS ix_hpo_waiting_trials ON trials (study_id, number)"
                    " WHERE state = 'WAITING'"))
        except sqlalchemy.exc.ProgrammingError as e:
            logging.getLogger("hpo.storage").info(
                "no index for the trial queue (%s); taking trials will scan the study",
                type(e).__name__)

    def claim_trial(self, study_id: int, budget: int,
                    owner: dict[str, Any]) -> FrozenTrial | None:
        """Claim the next WAITING trial inside the budget for this worker, or None.

        ``owner`` (provenance: host, pid...) are written with the claim, so the reaper can
        judge the trial from the moment it is RUNNING, and so is its first heartbeat.
        """
        import sqlalchemy

        keys, values = list(owner), [json.dumps(v) for v in owner.values()]
        with self.engine.begin() as conn:
            row = conn.execute(sqlalchemy.text(_CLAIM), {
                "now": datetime.now(),  # Optuna's own clock for start and end: local, naive
                "study_id": study_id, "budget": budget, "slot_key": attrs.SLOT,
                "rerun_key": attrs.SEED_RERUN_OF,
                "keys": keys, "values": values,
            }).first()
        if row is None:
            return None
        trial = frozen_trial(row)
        trial.user_attrs.update(owner)
        # The claim's answer is the trial as it stands: the next read of it (optuna.Trial's
        # constructor) is served from here instead of six more queries.
        self._claimed = trial
        return trial

    def finish_trial(self, trial_id: int, value: float) -> bool:
        """COMPLETE with a finite value; False if the trial was no longer RUNNING."""
        import sqlalchemy

        with self.engine.begin() as conn:
            done = conn.execute(sqlalchemy.text(_FINISH), {
                "now": datetime.now(), "trial_id": trial_id, "value": float(value)}).first()
        return done is not None

    def set_trial_params(self, trial_id: int, params: dict[str, Any],
                         dists: dict[str, distributions.BaseDistribution]) -> None:
        """All of a claimed trial's parameters in one statement. Optuna writes each in a
        transaction of its own after checking it against the study's earlier trials; the
        study's fingerprint already guarantees that (hpo.study)."""
        import sqlalchemy

        rows = [{"trial_id": trial_id, "name": name,
                 "value": dists[name].to_internal_repr(value),
                 "dist": distributions.distribution_to_json(dists[name])}
                for name, value in params.items()]
        if not rows:
            return
        with self.engine.begin() as conn:
            conn.execute(sqlalchemy.text(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)"
                " VALUES (:trial_id, :name, :value, :dist)"), rows)

    def tpe_trials(self, study_id: int, known: dict[int, FrozenTrial],
                   running: bool) -> list[FrozenTrial]:
        """The study's finished trials (and running ones, if asked), for TPE, in one query.

        ``known`` keeps the finished ones between calls (a finished trial never changes), so
        only new and running trials are read. Optuna's cache re-reads every unfinished trial
        on each read, and a laid-out budget is thousands of WAITING trials."""
        import sqlalchemy

        states = ("COMPLETE", "PRUNED", "RUNNING")[:3 if running else 2]
        with self.engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(_TPE_TRIALS), {
                "study_id": study_id, "states": states, "known": list(known)}).all()
        fetched = [frozen_trial(row) for row in rows]
        known.update((trial_id_of(t), t) for t in fetched if t.state.is_finished())
        return [*known.values(), *(t for t in fetched if not t.state.is_finished())]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        claimed = getattr(self, "_claimed", None)
        if claimed is not None and trial_id_of(claimed) == trial_id:
            self._claimed = None
            return claimed
        return super().get_trial(trial_id)  # type: ignore[misc]

