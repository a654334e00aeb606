"""Dead workers: heartbeats while a trial runs, and a reaper that retries what they left.

A worker killed with SIGKILL, or a machine that vanishes, leaves its trial RUNNING forever
as far as the database knows. Two signals tell us it is dead:

* its heartbeat (PostgreSQL) is older than the grace period;
* it ran on this host and its process no longer exists. This works on every storage,
  including the journal file, which has no heartbeats, and it is immediate.

The reaper fails such a trial (saying why on the trial) and adds a WAITING copy with the same
parameters, slot and seed, so it is retried (and resumes from its checkpoint, which is keyed
by study and slot). After ``max_retry`` retries the last attempt stays FAIL, its reason counting the
deaths. Optuna reaps stale trials only when some worker happens to start a new trial; every
hpo worker reaps before taking a trial and while it waits, so nothing stays RUNNING.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from hpo import attrs, env
from hpo.store.optuna_internals import trial_id_of

if TYPE_CHECKING:
    import optuna

    from hpo.store.queue import TrialQueue

log = logging.getLogger("hpo.leases")


class Heartbeat:
    """While a trial runs, record a heartbeat every interval in a background thread.

    Failures are logged and retried on the next beat, never raised: a database restart must
    not kill the thread, or the trial would look dead while the worker is fine.
    """

    def __init__(self, queue: TrialQueue, trial_id: int):
        self._queue = queue
        self._trial_id = trial_id
        self._interval = queue.heartbeat_interval
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
        # No beat at once: the claim recorded the first one (hpo.store.pgqueue), so even a
        # worker killed right after taking its trial leaves a heartbeat for the reaper.
        assert self._interval
        while not self._stop.wait(self._interval):
            self._beat()

    def _beat(self) -> None:
        try:
            self._queue.record_heartbeat(self._trial_id)
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


def dead_trials(queue: TrialQueue) -> list[optuna.trial.FrozenTrial]:
    """RUNNING trials whose worker is dead: stale heartbeat, or a gone process on this host."""
    stale = queue.stale_trial_ids()
    running = queue.running()
    host = env.host()
    for t in running:
        pid = t.user_attrs.get(attrs.WORKER_PID)
        if t.user_attrs.get(attrs.HOST) == host and isinstance(pid, int) \
                and pid != os.getpid() and _process_gone(pid):
            stale.add(trial_id_of(t))
    return [t for t in running if trial_id_of(t) in stale]


def reap(queue: TrialQueue, *, max_retry: int) -> int:
    """Fail the trials of dead workers and queue their retries; returns how many were reaped."""
    storage = queue.storage
    reaped = 0
    for trial in dead_trials(queue):
        trial_id = trial_id_of(trial)
        history = list(trial.system_attrs.get(attrs.RETRY_HISTORY, []))
        deaths = len(history) + 1
        retry = deaths <= max_retry
        where = (f"{trial.user_attrs.get(attrs.HOST, '?')} "
                 f"pid {trial.user_attrs.get(attrs.WORKER_PID, '?')}")
        reason = (f"worker died ({where}); retried as a new trial, attempt {deaths + 1}"
                  if retry else
                  f"worker died {deaths} times running this trial; not retried again "
                  f"(limit {max_retry} retries, HPO_MAX_RETRY)")
        try:
            storage.set_trial_user_attr(trial_id, attrs.ERROR, reason)
            storage.set_trial_user_attr(trial_id, attrs.FAILURE_KIND, "infrastructure")
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                continue
        except UpdateFinishedTrialError:
            continue  # another reaper got there first
        reaped += 1
        log.warning("trial %d: %s", trial.number, reason)
        if retry:
            queue_retry(queue.study, storage.get_trial(trial_id))
    return reaped


def queue_retry(study: optuna.Study, failed: optuna.trial.FrozenTrial) -> None:
    """A WAITING copy: same parameters, slot, seed and intermediate values (Optuna's
    ``failed_trial`` / ``retry_history`` system attributes, so its tools understand it)."""
    system_attrs = {
        **failed.system_attrs,
        attrs.FAILED_TRIAL: failed.system_attrs.get(attrs.FAILED_TRIAL, failed.number),
        attrs.RETRY_HISTORY: [*failed.system_attrs.get(attrs.RETRY_HISTORY, []), failed.number],
    }
    study.add_trial(create_trial(
        state=TrialState.WAITING,
        params=failed.params,
        distributions=failed.distributions,
        user_attrs={k: v for k, v in failed.user_attrs.items() if k not in attrs.ATTEMPT},
        system_attrs=system_attrs,
        intermediate_values=failed.intermediate_values,
    ))
