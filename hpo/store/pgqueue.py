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

import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from optuna import distributions
from optuna.trial import FrozenTrial

from hpo import attrs
from hpo.store.optuna_internals import TRIAL_COLUMNS, frozen_trial, frozen_trials, trial_id_of

if TYPE_CHECKING:
    from hpo.tally import Counts

_SCHEMA = """
CREATE TABLE IF NOT EXISTS hpo_slots (
    study_id integer NOT NULL REFERENCES studies (study_id) ON DELETE CASCADE,
    slot integer NOT NULL,
    attempt integer NOT NULL,
    trial_id integer NOT NULL UNIQUE REFERENCES trials (trial_id) ON DELETE CASCADE,
    PRIMARY KEY (study_id, slot, attempt)
);
CREATE INDEX IF NOT EXISTS ix_hpo_waiting_trials ON trials (study_id, number)
    WHERE state = 'WAITING';
CREATE INDEX IF NOT EXISTS ix_hpo_running_trials ON trials (study_id)
    WHERE state = 'RUNNING';
"""

# A study laid out before hpo_slots existed: its slots become attempts in trial order.
_ADOPT = """
INSERT INTO hpo_slots (study_id, slot, attempt, trial_id)
SELECT t.study_id, CAST(a.value_json AS integer),
       row_number() OVER (PARTITION BY a.value_json ORDER BY t.number) - 1, t.trial_id
FROM trials t JOIN trial_user_attributes a ON a.trial_id = t.trial_id AND a.key = :slot_key
WHERE t.study_id = :s
  AND NOT EXISTS (SELECT 1 FROM hpo_slots WHERE study_id = :s)
  AND NOT EXISTS (SELECT 1 FROM trial_user_attributes r
                  WHERE r.trial_id = t.trial_id AND r.key = :rerun_key)
"""

_SLOTS_DONE = """
SELECT count(*) FROM (
    SELECT DISTINCT ON (h.slot) t.state FROM hpo_slots h JOIN trials t ON t.trial_id = h.trial_id
    WHERE h.study_id = :s AND h.slot < :b ORDER BY h.slot, h.attempt DESC) latest
WHERE latest.state NOT IN ('WAITING', 'RUNNING')
"""

# How the design slots stand, by their latest attempt: state, failure kind (hpo.failures;
# trials from before kinds existed are read by their oom / diverged flags and the reaper's
# message, as failures.kind_of does), how many, and the range of complete values.
_OUTCOMES = """
SELECT latest.state,
       COALESCE(k.value_json, CASE WHEN o.value_json = 'true' THEN '"oom"'
                                   WHEN d.value_json = 'true' THEN '"diverged"'
                                   WHEN e.value_json LIKE '"worker died%' THEN '"infrastructure"'
                                   ELSE '"error"' END),
       count(*), min(v.value), max(v.value)
FROM (SELECT DISTINCT ON (h.slot) t.trial_id, t.state FROM hpo_slots h
      JOIN trials t ON t.trial_id = h.trial_id
      WHERE h.study_id = :s AND h.slot < :b ORDER BY h.slot, h.attempt DESC) latest
LEFT JOIN trial_user_attributes k ON k.trial_id = latest.trial_id AND k.key = :kind
LEFT JOIN trial_user_attributes o ON o.trial_id = latest.trial_id AND o.key = :oom
LEFT JOIN trial_user_attributes d ON d.trial_id = latest.trial_id AND d.key = :diverged
LEFT JOIN trial_user_attributes e ON e.trial_id = latest.trial_id AND e.key = :error
LEFT JOIN trial_values v ON v.trial_id = latest.trial_id AND v.objective = 0
                         AND v.value_type = 'FINITE'
GROUP BY 1, 2
"""

_CLAIM = """
WITH claimed AS (
    UPDATE trials SET state = 'RUNNING', datetime_start = :now
    WHERE trial_id = (
        SELECT t.trial_id FROM trials t
        WHERE t.study_id = :study_id AND t.state = 'WAITING'
          -- A design slot inside the budget (slots laid out by an earlier, larger budget wait
          -- for a run that asks for them), or a seed re-run, an extra evaluation that runs
          -- whatever the budget (hpo.store.budget). Nothing else: a trial enqueued by hand
          -- or by another client is not hpo's to run. OFFSET 0 keeps each test a lookup
          -- by the head's trial id: without it, PostgreSQL hashes every slot of the table
          -- to test the first few WAITING trials (200 ms a claim at 100,000 slots).
          AND (EXISTS (SELECT 1 FROM hpo_slots h WHERE h.trial_id = t.trial_id
                       AND h.slot < :budget OFFSET 0)
               OR EXISTS (SELECT 1 FROM trial_user_attributes r
                          WHERE r.trial_id = t.trial_id AND r.key = :rerun_key OFFSET 0))
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

# WAITING trials neither a design slot nor a seed re-run; each looked up by its id (OFFSET
# 0), not by hashing every slot of the table.
_FOREIGN_WAITING = """
SELECT t.trial_id FROM trials t WHERE t.study_id = :s AND t.state = 'WAITING'
  AND NOT EXISTS (SELECT 1 FROM hpo_slots h WHERE h.trial_id = t.trial_id OFFSET 0)
  AND NOT EXISTS (SELECT 1 FROM trial_user_attributes r
                  WHERE r.trial_id = t.trial_id AND r.key = :rerun_key OFFSET 0)
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

# What hpo.tally counts, per scientific value (g = slot mod V), without loading a trial. A
# trial's slot is its hpo_slots row (every design attempt hpo lays out or retries has one,
# and no seed re-run does), else its slot attribute, else (a seed re-run) its number; a trial
# hpo_slots does not know is a seed re-run if it has a seed_rerun_of attribute, chained to its
# retries by failed_trial, and no design trial at all if it has no slot attribute either. A
# slot's, or a re-run chain's, final attempt is its latest trial; the others were retried.
# Final attempts are counted by state and, for a FAIL, by the attributes that say how it
# ended (:outcome_keys: its kind and message), design slots below the budget apart from the
# others; with each group, its first few FAIL trial numbers and its lowest slot. With every
# row: the best complete design trial of its value, the budget (as given, else the slots laid
# out, else the design's), the slots laid out, the first start, and whether any trial has
# finished. The attributes are looked up only for the few trials hpo_slots does not know.
_COUNTS = """
WITH base AS MATERIALIZED (
    SELECT t.trial_id, t.number, t.state, t.datetime_start, t.datetime_complete, h.slot,
           CASE WHEN h.slot IS NULL THEN
               (SELECT CAST(a.value_json AS integer) FROM trial_user_attributes a
                WHERE a.trial_id = t.trial_id AND a.key = :slot_key) END AS slot_attr,
           CASE WHEN h.slot IS NULL THEN EXISTS (
               SELECT 1 FROM trial_user_attributes r
               WHERE r.trial_id = t.trial_id AND r.key = :rerun_key) ELSE false END AS rerun
    FROM trials t LEFT JOIN hpo_slots h ON h.trial_id = t.trial_id AND h.study_id = :s
    WHERE t.study_id = :s
), slotted AS (
    SELECT b.trial_id, b.number, b.state, b.rerun,
           COALESCE(b.slot, b.slot_attr, b.number) AS slot,
           CASE WHEN b.rerun THEN COALESCE(
                    (SELECT CAST(f.value_json AS integer) FROM trial_system_attributes f
                     WHERE f.trial_id = b.trial_id AND f.key = :failed_key), b.number)
                ELSE COALESCE(b.slot, b.slot_attr, b.number) END AS chain
    FROM base b
    -- A trial with no slot that is not a seed re-run was never laid out (enqueued by hand
    -- or by another client): not the design's, and hpo refuses to run it.
    WHERE b.rerun OR b.slot IS NOT NULL OR b.slot_attr IS NOT NULL
), ranked AS (
    SELECT c.*, ((c.slot % :v) + :v) % :v AS g, count(*) OVER w AS tries,
           row_number() OVER (w ORDER BY c.number DESC) AS nth
    FROM slotted c WINDOW w AS (PARTITION BY c.rerun, ((c.slot % :v) + :v) % :v, c.chain)
), final AS MATERIALIZED (
    SELECT r.*, CASE WHEN r.state = 'FAIL' THEN CAST(
               (SELECT json_object_agg(a.key, a.value_json ORDER BY a.key)
                FROM trial_user_attributes a
                WHERE a.trial_id = r.trial_id AND a.key = ANY(CAST(:outcome_keys AS varchar[])))
               AS text) END AS outcome
    FROM ranked r WHERE r.nth = 1
), study AS (
    SELECT COALESCE(CAST(:budget AS integer),
                    NULLIF(count(DISTINCT COALESCE(slot, slot_attr)), 0), :fallback) AS budget,
           count(DISTINCT COALESCE(slot, slot_attr)) AS planned,
           min(datetime_start) AS first_start,
           COALESCE(bool_or(state IN ('COMPLETE', 'PRUNED', 'FAIL')
                            AND datetime_complete IS NOT NULL), false) AS any_finished
    FROM base
), best AS MATERIALIZED (
    SELECT DISTINCT ON (f.g) f.g, f.trial_id FROM final f
    JOIN trial_values v ON v.trial_id = f.trial_id AND v.objective = 0
    WHERE NOT f.rerun AND f.state = 'COMPLETE' AND v.value_type = 'FINITE'
    ORDER BY f.g, :sign * v.value, f.number
)
SELECT f.g, f.rerun, CAST(f.state AS text), f.outcome, NOT f.rerun AND f.slot < s.budget,
       count(*), sum(f.tries - 1),
       (array_agg(f.number ORDER BY f.number)
        FILTER (WHERE f.state = 'FAIL'))[1:CAST(:first AS integer)],
       b.trial_id, s.budget, s.planned, s.first_start, s.any_finished, min(f.slot)
FROM final f CROSS JOIN study s LEFT JOIN best b ON b.g = f.g
GROUP BY f.g, f.rerun, f.state, f.outcome, NOT f.rerun AND f.slot < s.budget, b.trial_id,
         s.budget, s.planned, s.first_start, s.any_finished
"""

_ALL_TRIALS = """
SELECT """ + TRIAL_COLUMNS.format(t="t") + """ FROM trials t
WHERE t.study_id = :study_id ORDER BY t.number
"""

_TRIALS_BY_ID = """
SELECT """ + TRIAL_COLUMNS.format(t="t") + """ FROM trials t
WHERE t.trial_id = ANY(:ids) ORDER BY t.number
"""


class QueueStatements:
    """Mixed into hpo's RDBStorage for PostgreSQL (it needs ``self.engine``)."""

    engine: Any
    _claimed: FrozenTrial | None  # the trial claim_trial just returned, until it is read

    def ensure_hpo_schema(self) -> None:
        """hpo's own table and index, next to Optuna's (which never sees them).

        * ``hpo_slots``: which trial is which attempt at which design slot. Its primary key
          is what enforces the budget: a slot's first attempt can exist once, whatever
          happens to the locks of the processes that lay the budget out, and each retry is
          attempt n+1 of its slot, once.
        * a partial index of the WAITING trials (only queued rows, so it stays small), which
          makes the head of the queue an index lookup however many trials the study holds;
        * and one of the RUNNING trials, which every worker's reaper reads every few seconds
          (through the study's index, that read scans every trial of the study: 20 ms at
          100,000 trials, for each of a hundred workers).

        Called at every open: ``IF NOT EXISTS`` makes it one cheap statement when they are
        there. Two processes creating them at once may collide; the caller retries.
        """
        import sqlalchemy

        with self.engine.begin() as conn:
            conn.execute(sqlalchemy.text(_SCHEMA))

    def lay_out_slots(self, study_id: int, budget: int,
                      plan: Callable[[list[int]], list[Slot]],
                      slots: Iterable[int] | None = None) -> int:
        """Make sure slots 0..budget-1 (or only ``slots``, when given) exist as WAITING
        trials; returns how many were added.

        One transaction, a handful of statements, whatever the budget: it takes a lock of
        its own (transaction-scoped, so it dies with the connection and survives PgBouncer's
        transaction pooling), then Optuna's lock on the study row (what Optuna's own trial
        creation takes, so trial numbers stay dense and ordered), reads which slots exist,
        and writes the missing ones: trials, slots, attributes, parameters. If the
        connection is lost halfway, nothing is written; if a second process lays out the
        same slots anyway, the slots' primary key refuses its transaction as a whole.
        """
        import sqlalchemy

        text = sqlalchemy.text
        wanted: Sequence[int] = range(budget) if slots is None else sorted(set(slots))
        with self.engine.connect() as conn:
            # Laid out already (every worker but the first finds it so): a count on the
            # slots' primary key, no lock, nothing read slot by slot.
            which = "slot < :b" if slots is None else "slot = ANY(:wanted)"
            laid = conn.execute(text(
                f"SELECT count(*) FROM hpo_slots WHERE study_id = :s AND attempt = 0 AND {which}"),
                {"s": study_id, "b": budget, "wanted": [] if slots is None else wanted}
            ).scalar_one()
        if laid >= len(wanted):
            return 0
        with self.engine.begin() as conn:
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _lock_key(study_id)})
            conn.execute(text("SELECT 1 FROM studies WHERE study_id = :s FOR UPDATE"),
                         {"s": study_id})
            conn.execute(text(_ADOPT), {"s": study_id, "slot_key": attrs.SLOT,
                                        "rerun_key": attrs.SEED_RERUN_OF})
            if slots is None:
                have = set(conn.execute(text(
                    "SELECT slot FROM hpo_slots WHERE study_id = :s AND attempt = 0 "
                    "AND slot < :b"), {"s": study_id, "b": budget}).scalars())
            else:
                have = set(conn.execute(text(
                    "SELECT slot FROM hpo_slots WHERE study_id = :s AND attempt = 0 "
                    "AND slot = ANY(:wanted)"), {"s": study_id, "wanted": wanted}).scalars())
            missing = [s for s in wanted if s not in have]
            if not missing:
                return 0
            planned = plan(missing)
            rows = conn.execute(text(
                "INSERT INTO trials (number, study_id, state) "
                "SELECT (SELECT count(*) FROM trials WHERE study_id = :s) + i - 1, :s, 'WAITING'"
                " FROM generate_series(1, :n) AS i RETURNING trial_id, number"),
                {"s": study_id, "n": len(planned)}).all()
            ids = [trial_id for trial_id, _ in sorted(rows, key=lambda r: r[1])]
            conn.execute(text(
                "INSERT INTO hpo_slots (study_id, slot, attempt, trial_id) "
                "SELECT :s, u.slot, 0, u.trial_id "
                "FROM unnest(CAST(:slots AS integer[]), CAST(:ids AS integer[])) "
                "AS u(slot, trial_id)"),
                {"s": study_id, "slots": [x.slot for x in planned], "ids": ids})
            _insert_rows(conn, "trial_user_attributes", ("trial_id", "key", "value_json"),
                         [(i, k, json.dumps(v)) for i, x in zip(ids, planned, strict=True)
                          for k, v in ((attrs.SLOT, x.slot), (attrs.SEED, x.seed))])
            _insert_rows(conn, "trial_system_attributes", ("trial_id", "key", "value_json"),
                         [(i, attrs.FIXED_PARAMS, "{}") for i in ids])
            _insert_rows(conn, "trial_params",
                         ("trial_id", "param_name", "param_value", "distribution_json"),
                         [(i, name, x.dists[name].to_internal_repr(value),
                           distributions.distribution_to_json(x.dists[name]))
                          for i, x in zip(ids, planned, strict=True)
                          for name, value in x.params.items()])
        return len(planned)

    def retry_slot(self, study_id: int, failed: FrozenTrial, slot: int,
                   drop: tuple[str, ...]) -> bool:
        """Add attempt n+1 at the slot whose attempt n (``failed``) just failed: a WAITING
        copy with its parameters, attributes (but ``drop``) and reported steps, and Optuna's
        ``failed_trial`` / ``retry_history`` system attributes. False if that attempt was
        already retried (by another reaper) or is not the slot's latest."""
        import sqlalchemy

        text = sqlalchemy.text
        old = trial_id_of(failed)
        history = [*failed.system_attrs.get(attrs.RETRY_HISTORY, []), failed.number]
        first = failed.system_attrs.get(attrs.FAILED_TRIAL, failed.number)
        with self.engine.begin() as conn:
            conn.execute(text("SELECT 1 FROM studies WHERE study_id = :s FOR UPDATE"),
                         {"s": study_id})
            latest = conn.execute(text(
                "SELECT attempt, trial_id FROM hpo_slots WHERE study_id = :s AND slot = :slot "
                "ORDER BY attempt DESC LIMIT 1"), {"s": study_id, "slot": slot}).first()
            if latest is None or latest[1] != old:
                return False
            new = conn.execute(text(
                "INSERT INTO trials (number, study_id, state) VALUES "
                "((SELECT count(*) FROM trials WHERE study_id = :s), :s, 'WAITING') "
                "RETURNING trial_id"), {"s": study_id}).scalar_one()
            conn.execute(text(
                "INSERT INTO hpo_slots (study_id, slot, attempt, trial_id) "
                "VALUES (:s, :slot, :attempt, :new)"),
                {"s": study_id, "slot": slot, "attempt": latest[0] + 1, "new": new})
            copy = {"old": old, "new": new}
            conn.execute(text(
                "INSERT INTO trial_params (trial_id, param_name, param_value, distribution_json)"
                " SELECT :new, param_name, param_value, distribution_json FROM trial_params"
                " WHERE trial_id = :old"), copy)
            conn.execute(text(
                "INSERT INTO trial_user_attributes (trial_id, key, value_json)"
                " SELECT :new, key, value_json FROM trial_user_attributes"
                " WHERE trial_id = :old AND NOT (key = ANY(CAST(:drop AS varchar[])))"),
                {**copy, "drop": list(drop)})
            conn.execute(text(
                "INSERT INTO trial_system_attributes (trial_id, key, value_json)"
                " SELECT :new, key, value_json FROM trial_system_attributes"
                " WHERE trial_id = :old AND NOT (key = ANY(CAST(:mine AS varchar[])))"),
                {**copy, "mine": [attrs.FAILED_TRIAL, attrs.RETRY_HISTORY]})
            _insert_rows(conn, "trial_system_attributes", ("trial_id", "key", "value_json"),
                         [(new, attrs.FAILED_TRIAL, json.dumps(first)),
                          (new, attrs.RETRY_HISTORY, json.dumps(history))])
            conn.execute(text(
                "INSERT INTO trial_intermediate_values"
                " (trial_id, step, intermediate_value, intermediate_value_type)"
                " SELECT :new, step, intermediate_value, intermediate_value_type"
                " FROM trial_intermediate_values WHERE trial_id = :old"), copy)
        return True

    def heartbeats(self, study_id: int) -> dict[int, Any]:
        """Each RUNNING trial's last heartbeat (None: it never beat, e.g. another client's)."""
        import sqlalchemy

        with self.engine.connect() as conn:
            return dict(conn.execute(sqlalchemy.text(
                "SELECT t.trial_id, h.heartbeat FROM trials t LEFT JOIN trial_heartbeats h"
                " ON h.trial_id = t.trial_id WHERE t.study_id = :s AND t.state = 'RUNNING'"),
                {"s": study_id}).all())

    def slots_done(self, study_id: int, budget: int) -> int:
        """Slots below the budget whose latest attempt has finished: one aggregate query,
        however many trials the study holds."""
        import sqlalchemy

        with self.engine.connect() as conn:
            return int(conn.execute(sqlalchemy.text(_SLOTS_DONE),
                                    {"s": study_id, "b": budget}).scalar_one())

    def outcomes(self, study_id: int, budget: int) -> Outcomes:
        """How the design slots below the budget stand (_OUTCOMES): one aggregate query."""
        import sqlalchemy

        from hpo.tally import Counts

        with self.engine.connect() as conn:
            rows = conn.execute(sqlalchemy.text(_OUTCOMES), {
                "s": study_id, "b": budget, "kind": attrs.FAILURE_KIND, "oom": attrs.OOM,
                "diverged": attrs.DIVERGED, "error": attrs.ERROR}).all()
        counts: dict[str, int] = {}
        low = high = None
        for state, kind, n, lowest, highest in rows:
            field = {"WAITING": "waiting", "RUNNING": "running", "COMPLETE": "complete",
                     "PRUNED": "pruned"}.get(state) or json.loads(kind)
            counts[field] = counts.get(field, 0) + int(n)
            if state == "COMPLETE" and lowest is not None:
                low = lowest if low is None else min(low, lowest)
                high = highest if high is None else max(high, highest)
        return Outcomes(Counts(**counts), low, high)

    def reruns_pending(self, study_id: int) -> bool:
        import sqlalchemy

        with self.engine.connect() as conn:
            return bool(conn.execute(sqlalchemy.text(
                "SELECT EXISTS (SELECT 1 FROM trials t JOIN trial_user_attributes a"
                " ON a.trial_id = t.trial_id AND a.key = :rerun_key"
                " WHERE t.study_id = :s AND t.state IN ('WAITING', 'RUNNING'))"),
                {"s": study_id, "rerun_key": attrs.SEED_RERUN_OF}).scalar_one())

    def foreign_waiting(self, study_id: int) -> list[int]:
        """WAITING trials that are neither a design slot nor a seed re-run (enqueued by hand
        or by another client): their trial ids."""
        import sqlalchemy

        with self.engine.connect() as conn:
            return list(conn.execute(sqlalchemy.text(_FOREIGN_WAITING),
                                     {"s": study_id, "rerun_key": attrs.SEED_RERUN_OF}).scalars())

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
                "study_id": study_id, "budget": budget, "rerun_key": attrs.SEED_RERUN_OF,
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

    def study_counts(self, study_id: int, *, values: int, sign: float, budget: int | None,
                     fallback: int, outcome_keys: Sequence[str], first: int) -> list[CountRow]:
        """The rows of ``_COUNTS``: what :mod:`hpo.tally` counts, in one aggregate query
        (see :meth:`hpo.store.queue.PostgresQueue.counts`, which assembles them)."""
        import sqlalchemy

        with self.engine.begin() as conn:
            # Compiling this plan just in time costs more than running it.
            conn.execute(sqlalchemy.text("SET LOCAL jit = off"))
            rows = conn.execute(sqlalchemy.text(_COUNTS), {
                "s": study_id, "v": values, "sign": sign, "budget": budget,
                "fallback": fallback, "outcome_keys": list(outcome_keys), "first": first,
                "slot_key": attrs.SLOT, "rerun_key": attrs.SEED_RERUN_OF,
                "failed_key": attrs.FAILED_TRIAL}).all()
        return [CountRow(*row) for row in rows]

    def all_trials(self, study_id: int) -> list[FrozenTrial]:
        """Every trial of the study, in number order, in one query (Optuna's read builds
        each trial from six ORM queries' rows and re-reads the unfinished ones)."""
        import sqlalchemy

        with self.engine.connect() as conn:
            result = conn.execute(sqlalchemy.text(_ALL_TRIALS), {"study_id": study_id})
            return frozen_trials(result)

    def trials_by_id(self, trial_ids: Sequence[int]) -> list[FrozenTrial]:
        """These trials, in number order, in one query."""
        import sqlalchemy

        if not trial_ids:
            return []
        with self.engine.connect() as conn:
            result = conn.execute(sqlalchemy.text(_TRIALS_BY_ID), {"ids": list(trial_ids)})
            return frozen_trials(result)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        claimed = getattr(self, "_claimed", None)
        if claimed is not None and trial_id_of(claimed) == trial_id:
            self._claimed = None
            return claimed
        return super().get_trial(trial_id)  # type: ignore[misc]


@dataclass(frozen=True)
class CountRow:
    """One row of ``_COUNTS``: final attempts of one value, kind, state and outcome."""

    group: int              # the scientific value's index (slot mod V)
    rerun: bool             # seed re-runs, else design slots
    state: str
    outcome: str | None     # FAIL: {key: value_json} of the outcome attributes, as JSON
    in_budget: bool         # design slots below the budget
    n: int
    retried: int            # earlier attempts of these slots (or re-run chains)
    failed_numbers: list[int] | None  # the first few FAIL trial numbers
    best_id: int | None     # the value's best complete design trial
    budget: int
    planned: int
    first_start: datetime | None
    any_finished: bool
    first_slot: int         # the lowest slot of these


@dataclass(frozen=True)
class Outcomes:
    """How a study's design slots stand (TrialQueue.outcomes): counts by their latest
    attempt's state and failure kind, and the range of complete values."""

    counts: Counts
    low: float | None
    high: float | None


@dataclass(frozen=True)
class Slot:
    """A design slot to lay out: its point (empty in the exploit phase) and seed."""

    slot: int
    seed: int
    params: dict[str, Any]
    dists: dict[str, distributions.BaseDistribution]


def _lock_key(study_id: int) -> int:
    digest = hashlib.sha256(f"hpo-layout:{study_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _insert_rows(conn: Any, table: str, columns: Sequence[str], rows: list[tuple]) -> None:
    """Many rows in one statement: one array per column, unnested by the server."""
    import sqlalchemy

    if not rows:
        return
    types = {"trial_id": "integer", "key": "varchar", "value_json": "text",
             "param_name": "varchar", "param_value": "double precision",
             "distribution_json": "text"}
    arrays = ", ".join(f"CAST(:c{i} AS {types[c]}[])" for i, c in enumerate(columns))
    conn.execute(sqlalchemy.text(
        f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({arrays})"),
        {f"c{i}": list(col) for i, col in enumerate(zip(*rows, strict=True))})
