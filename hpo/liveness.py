"""Dead workers: heartbeats while a trial runs, and a reaper that retries what they left.

A worker killed with SIGKILL, or a machine that vanishes, leaves its trial RUNNING forever
as far as the database knows. Two signals tell us it is dead:

* its heartbeat (PostgreSQL) is older than the grace period;
* it ran on this host and its process no longer exists. This works on every storage,
  including the journal file, which has no heartbeats, and it is immediate.

The reaper fails such a trial (saying why on the trial) and adds a WAITING copy with the same
parameters, slot and seed, so it is retried (and resumes from its checkpoint, which is keyed
by slot). After ``max_retry`` retries the last attempt stays FAIL, its reason counting the
deaths. Optuna reaps stale trials only when some worker happens to start a new trial; every
hpo worker reaps before taking a trial and while it waits, so nothing stays RUNNING.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import RDBStorage
from optuna.trial import TrialState, create_trial

if TYPE_CHECKING:
    import optuna
    from optuna.storages import BaseStorage

log = logging.getLogger("hpo.liveness")
HOST = os.environ.get("HPO_HOST") or socket.gethostname()
# Attributes that describe one attempt, not the trial: a retry must not inherit them.
ATTEMPT_ATTRS = ("host", "worker_pid", "gpu", "cuda_visible_devices", "error", "traceback",
                 "resumed_from_step")


def heartbeat_interval(storage: BaseStorage) -> int | None:
    getter = getattr(storage, "get_heartbeat_interval", None)
    return getter() if getter else None


class Heartbeat:
    """While a trial runs, record a heartbeat every interval in a background thread.

    Failures are logged and retried on the next beat, never raised: a database restart must
    not kill the thread, or the trial would look dead while the worker is fine.
    """

    def __init__(self, storage: BaseStorage, trial_id: int):
        self._storage = storage
        self._trial_id = trial_id
        self._interval = heartbeat_interval(storage)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Heartbeat:
        if self._interval:
            self._thread = threading.Thread(target=self._run, name="hpo-heartbeat", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        # No beat at once: the claim recorded the first one (hpo.pgqueue), so even a worker
        # killed right after taking its trial leaves a heartbeat for the reaper to judge.
        while not self._stop.wait(self._interval):
            self._beat()

    def _beat(self) -> None:
        try:
            self._storage.record_heartbeat(self._trial_id)
        except Exception as e:  # noqa: BLE001 - see the class docstring
            log.warning("heartbeat for trial id %d failed: %s", self._trial_id, e)


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists, owned by someone else
    return False


def dead_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials whose worker is dead: stale heartbeat, or a gone process on this host."""
    storage = study._storage
    stale: set[int] = set()
    if heartbeat_interval(storage):
        stale.update(storage._get_stale_trial_ids(study._study_id))
    # Only the RUNNING trials, straight from the database where there is one: through
    # Optuna's cache, this read would also fetch every WAITING trial of the budget.
    backend = getattr(storage, "_backend", None)
    source = backend if isinstance(backend, RDBStorage) else storage
    running = source.get_all_trials(study._study_id, deepcopy=False, states=(TrialState.RUNNING,))
    for t in running:
        pid = t.user_attrs.get("worker_pid")
        if t.user_attrs.get("host") == HOST and isinstance(pid, int) and pid != os.getpid() \
                and _process_gone(pid):
            stale.add(t._trial_id)
    return [t for t in running if t._trial_id in stale]


def reap(study: optuna.Study, *, max_retry: int) -> int:
    """Fail the trials of dead workers and queue their retries; returns how many were reaped."""
    storage = study._storage
    reaped = 0
    for trial in dead_trials(study):
        history = list(trial.system_attrs.get("retry_history", []))
        deaths = len(history) + 1
        retry = deaths <= max_retry
        where = f"{trial.user_attrs.get('host', '?')} pid {trial.user_attrs.get('worker_pid', '?')}"
        reason = (f"worker died ({where}); retried as a new trial, attempt {deaths + 1}"
                  if retry else
                  f"worker died {deaths} times running this trial; not retried again "
                  f"(limit {max_retry} retries, HPO_MAX_RETRY)")
        try:
            storage.set_trial_user_attr(trial._trial_id, "error", reason)
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another reaper got there first
        reaped += 1
        log.warning("trial %d: %s", trial.number, reason)
        if retry:
            _queue_retry(study, storage.get_trial(trial._trial_id))
    return reaped


def _queue_retry(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """A WAITING copy: same parameters, slot, seed and intermediate values (Optuna's
    ``failed_trial`` / ``retry_history`` system attributes, so its tools understand it)."""
    system_attrs = {
        **failed.system_attrs,
        "failed_trial": failed.system_attrs.get("failed_trial", failed.number),
        "retry_history": [*failed.system_attrs.get("retry_history", []), failed.number],
    }
    study.add_trial(create_trial(
        state=TrialState.WAITING,
        params=failed.params,
        distributions=failed.distributions,
        user_attrs={k: v for k, v in failed.user_attrs.items() if k not in ATTEMPT_ATTRS},
        system_attrs=system_attrs,
        intermediate_values=failed.intermediate_values,
    ))
