"""Ride out a lost database: retry storage calls until PostgreSQL is back.

When the server restarts, every call in flight fails with a connection error, and Optuna
passes that straight up: the worker would crash and its trial would sit RUNNING until a
heartbeat reaper noticed. Instead, each storage call here is retried with exponential
backoff (and one log line per outage, not per attempt) for up to ``HPO_DB_PATIENCE``
seconds; ``pool_pre_ping`` in the engine then hands out fresh connections.

A write whose acknowledgement was lost may have been applied. Retrying it is safe for the
calls a worker makes: a repeated state change to RUNNING reports "taken" and the trial is
recovered by the reaper; a repeated finish raises UpdateFinishedTrialError, which the worker
treats as written (see :func:`hpo.worker._tell`).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.storages import RDBStorage
from optuna.trial import TrialState

log = logging.getLogger("hpo.storage")
F = TypeVar("F", bound=Callable[..., Any])
PATIENCE_ENV = "HPO_DB_PATIENCE"
DEFAULT_PATIENCE = 600.0


def _is_connection_error(error: BaseException | None) -> bool:
    """A lost connection, also when Optuna wrapped it (StorageInternalError from e)."""
    import sqlalchemy.exc

    while error is not None:
        if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
            return True
        if isinstance(error, (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError)):
            return True
        error = error.__cause__ or error.__context__
    return False


def _retrying(method: F) -> F:
    @functools.wraps(method)
    def call(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        patience = float(os.environ.get(PATIENCE_ENV, DEFAULT_PATIENCE))
        deadline = time.monotonic() + patience
        delay, warned = 0.5, False
        while True:
            try:
                result = method(self, *args, **kwargs)
            except Exception as e:
                if not _is_connection_error(e) or time.monotonic() + delay > deadline:
                    raise
                if not warned:
                    log.warning("lost the database connection (%s); reconnecting with backoff "
                                "for up to %.0fs", type(e).__name__, patience)
                    warned = True
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            if warned:
                log.warning("database connection is back; continuing")
            return result

    return call  # type: ignore[return-value]


class ReconnectingRDBStorage(RDBStorage):
    """Optuna's RDBStorage whose calls survive a database restart, plus two queries a
    worker makes on every trial, each one round trip instead of many."""

    def ensure_queue_index(self) -> None:
        """A partial index of the WAITING trials (only queued rows, so it stays small), which
        makes the head of the queue an index lookup however many trials the study holds.
        Optuna never sees it. Without the right to create it, hpo works, only slower."""
        import sqlalchemy

        try:
            with self.engine.begin() as conn:
                conn.execute(sqlalchemy.text(
                    "CREATE INDEX IF NOT EXISTS ix_hpo_waiting_trials ON trials (study_id, number)"
                    " WHERE state = 'WAITING'"))
        except sqlalchemy.exc.ProgrammingError as e:
            log.info("no index for the trial queue (%s); taking trials will scan the study",
                     type(e).__name__)

    def waiting_trial_ids(self, study_id: int, limit: int) -> list[tuple[int, Any, Any]]:
        """(trial id, slot, seed) of the lowest-numbered WAITING trials, in one query.

        Study.ask reads every WAITING trial with all its attributes to pop one; with a whole
        budget laid out as WAITING trials, that read would grow with the budget. Here the
        head of the queue is chosen first and only its rows look up their attributes, so the
        cost stays bounded even before PostgreSQL has statistics on new tables (a plain join
        was planned as nested sequential scans: quadratic in the queue's length).
        """
        import sqlalchemy

        query = sqlalchemy.text(
            "SELECT h.trial_id,"
            " (SELECT value_json FROM trial_user_attributes a"
            "   WHERE a.trial_id = h.trial_id AND a.key = 'slot'),"
            " (SELECT value_json FROM trial_user_attributes a"
            "   WHERE a.trial_id = h.trial_id AND a.key = 'seed')"
            " FROM (SELECT trial_id, number FROM trials"
            "   WHERE study_id = :study_id AND state = 'WAITING'"
            "   ORDER BY number LIMIT :limit) AS h"
            " ORDER BY h.number")
        with self.engine.connect() as conn:
            rows = conn.execute(query, {"study_id": study_id, "limit": limit})
            return [(tid, *(None if v is None else json.loads(v) for v in (slot, seed)))
                    for tid, slot, seed in rows]

    def set_trial_user_attrs(self, trial_id: int, attrs: dict[str, Any]) -> None:
        """Several user attributes of a running trial in one statement (provenance is ten);
        Optuna writes each one in a transaction of its own."""
        from optuna.storages._rdb import models
        from sqlalchemy.dialects.postgresql import insert

        rows = [{"trial_id": trial_id, "key": k, "value_json": json.dumps(v)}
                for k, v in attrs.items()]
        statement = insert(models.TrialUserAttributeModel).values(rows)
        statement = statement.on_conflict_do_update(
            index_elements=["trial_id", "key"],
            set_={"value_json": statement.excluded.value_json})
        with self.engine.begin() as conn:
            conn.execute(statement)


# Every call a worker, the sampler or the reaper makes, including the private ones Optuna's
# own caching layer (_CachedStorage) calls on its backend. Table creation in __init__ is
# not here: a worker that cannot reach the database at start-up should say so and stop.
for _name in (
    "_create_new_trial", "_get_best_trial_id", "_get_trials", "_set_trial_param",
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
    "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
    "get_study_user_attrs", "get_study_system_attrs", "get_all_studies",
    "create_new_trial", "set_trial_param", "get_trial_param", "set_trial_state_values",
    "set_trial_intermediate_value", "set_trial_user_attr", "set_trial_system_attr",
    "get_trial_id_from_study_id_trial_number", "get_trial", "get_all_trials",
    "get_trial_user_attrs", "get_trial_system_attrs", "get_best_trial", "get_n_trials",
    "record_heartbeat", "_get_stale_trial_ids", "waiting_trial_ids", "set_trial_user_attrs",
):
    setattr(ReconnectingRDBStorage, _name, _retrying(getattr(ReconnectingRDBStorage, _name)))
