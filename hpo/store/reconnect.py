"""Ride out a lost database: retry storage calls until PostgreSQL is back.

When the server restarts, every call in flight fails with a connection error, and Optuna
passes that straight up: the worker would crash and its trial would sit RUNNING until a
heartbeat reaper noticed. Instead, each storage call here is retried with exponential
backoff (and one log line per outage, not per attempt) for up to ``HPO_DB_PATIENCE``
seconds; ``pool_pre_ping`` in the engine then hands out fresh connections.

A write whose acknowledgement was lost may have been applied. Retrying it is safe for the
calls a worker makes: a repeated claim takes another trial, and the first one, whose
heartbeat then never beats again, is reaped and retried; a repeated finish finds the trial
already finished, which the worker treats as written (see :func:`hpo.worker.record`).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from optuna.storages import RDBStorage

from hpo import env
from hpo.store.pgqueue import QueueStatements

log = logging.getLogger("hpo.storage")
F = TypeVar("F", bound=Callable[..., Any])


# SQLSTATEs of a lost or refused connection: class 08 (connection exception), the server
# shutting down or starting up (57P01-57P03).
_CONNECTION_STATES = ("57P01", "57P02", "57P03")
# A refused connection whose cause will not go away by waiting: bad input.
_PERMANENT = ("authentication failed", "does not exist", "could not translate host name",
              "no password supplied", "no pg_hba.conf entry", "invalid dsn",
              "invalid connection option", "password authentication",
              # No connection slots left: waiting would hide the sizing problem; say it.
              "too many clients", "remaining connection slots are reserved")


def is_connection_loss(error: BaseException | None) -> bool:
    """A lost (or not yet possible) connection, also when Optuna wrapped it
    (``StorageInternalError from e``): worth waiting for. A lock or statement timeout, a
    deadlock, a schema error, a refused login are not: retrying them for minutes would only
    hide the database's message.
    """
    import sqlalchemy.exc

    while error is not None:
        if isinstance(error, sqlalchemy.exc.DBAPIError):
            if error.connection_invalidated:
                return True
            code = getattr(error.orig, "pgcode", None)
            if code is not None:
                return code.startswith("08") or code in _CONNECTION_STATES
            if isinstance(error, (sqlalchemy.exc.OperationalError,
                                  sqlalchemy.exc.InterfaceError)):
                # No SQLSTATE: the client lost the server (refused, reset, closed).
                return not any(p in str(error.orig).lower() for p in _PERMANENT)
            return False
        error = error.__cause__ or error.__context__
    return False


_depth = threading.local()


def _retrying(method: F) -> F:
    @functools.wraps(method)
    def call(self: RDBStorage, *args: Any, **kwargs: Any) -> Any:
        if getattr(_depth, "inside", False):
            # A wrapped call made by another (Optuna's methods call each other): the
            # outermost one retries, once, as a whole.
            return method(self, *args, **kwargs)
        _depth.inside = True
        try:
            return retry_while_unreachable(lambda: method(self, *args, **kwargs))
        finally:
            _depth.inside = False

    return call  # type: ignore[return-value]


T = TypeVar("T")


def retry_while_unreachable(call: Callable[[], T],
                            what: str = "the database connection") -> T:
    """``call()``, retried with exponential backoff while the only trouble is a lost
    connection, for up to ``HPO_DB_PATIENCE`` seconds; one log line per outage."""
    patience = env.db_patience()
    deadline = time.monotonic() + patience
    delay, warned = 0.5, False
    while True:
        try:
            result = call()
        except Exception as e:
            if not is_connection_loss(e) or time.monotonic() + delay > deadline:
                raise
            if not warned:
                log.warning("lost %s (%s); reconnecting with backoff for up to %.0fs",
                            what, type(e).__name__, patience)
                warned = True
            time.sleep(delay)
            # Never back off longer than a quarter of the heartbeat grace: once the database
            # is back, every worker must be beating again before another worker's reaper,
            # back first, has watched a whole grace period go by.
            delay = min(delay * 2, 15.0, max(0.5, env.heartbeat_grace() / 4))
            continue
        if warned:
            log.warning("%s is back; continuing", what.removeprefix("the "))
        return result


class ReconnectingRDBStorage(QueueStatements, RDBStorage):
    """Optuna's RDBStorage whose calls survive a database restart, with the one-statement
    trial queue of :mod:`hpo.pgqueue`."""


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
    "record_heartbeat", "_get_stale_trial_ids", "claim_trial", "finish_trial", "set_trial_params",
    "tpe_trials", "lay_out_slots", "retry_slot", "foreign_waiting", "heartbeats", "slots_done",
    "reruns_pending",
):
    setattr(ReconnectingRDBStorage, _name, _retrying(getattr(ReconnectingRDBStorage, _name)))
