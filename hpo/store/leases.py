"""Leases: heartbeats while a trial runs, and a reaper that retries what dead workers left.

A worker killed with SIGKILL, or a machine that vanishes, leaves its trial RUNNING forever
as far as the database knows. A trial is reaped only when its worker is known to be dead:

* it ran on this host, and its process is gone, or the pid now names another process (its
  start time differs: pids are reused, by the host and inside containers' PID namespaces);
* or its heartbeat (PostgreSQL) has not changed for the grace period *as seen by this
  reaper while it could reach the database*. A reaper that could not look for a while (the
  database was down, the reaper was paused) forgets what it saw and starts the grace period
  afresh: an outage never makes a healthy trial look dead, and so never spends a retry;
* or it has no owner at all (taken by a client that is not an hpo worker, e.g. a plain
  Optuna ``study.optimize`` joining the study): it never beats, so it is judged the same
  way, after the grace period.

The reaper fails such a trial (saying why on the trial) and queues the next attempt at its
slot, with the same parameters and seed, so it resumes from its checkpoint. After
``max_retry`` retries the last attempt stays FAIL, its reason counting the deaths. Optuna
reaps stale trials only when some worker happens to start a new trial; every hpo worker
reaps before taking a trial and while it waits, so nothing stays RUNNING.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING, Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState

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


def _same_process_gone(pid: int, started: int | None) -> bool:
    """The process that ran the trial is gone: no such pid, or the pid is another process."""
    from hpo.provenance import process_started

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # it exists, owned by someone else
    if started is None or not _proc_is_ours():
        return False
    return process_started(pid) not in (None, started)


def _proc_is_ours() -> bool:
    """Whether /proc numbers processes as this process does. In a PID namespace that
    kept the host's /proc, /proc/<pid> is the host's process of that number, not ours: there
    the start time cannot tell processes apart, and only the pid's existence is judged."""
    from hpo.provenance import process_started

    return process_started(os.getpid()) == process_started("self")


class Reaper:
    """One worker's judge of its study's leases; see the module docstring.

    It keeps what it has seen of each RUNNING trial's heartbeat and since when (on its own
    clock), so staleness is measured only while it could look.
    """

    def __init__(self, queue: TrialQueue, *, max_retry: int, grace: float | None = None):
        self.queue = queue
        self.max_retry = max_retry
        self.grace = float(grace if grace is not None else env.heartbeat_grace())
        self._seen: dict[int, tuple[Any, float]] = {}  # trial id -> (heartbeat, first seen)
        self._looked: float | None = None

    @property
    def interval(self) -> float:
        """How often to look: often enough that a gap between looks means an outage."""
        return min(5.0, self.grace / 4)

    def dead(self) -> list[optuna.trial.FrozenTrial]:
        """RUNNING trials whose worker is known to be dead."""
        running = self.queue.running()
        beats = self.queue.heartbeats()
        now = time.monotonic()
        if self._looked is None or now - self._looked > self.grace / 2:
            self._seen.clear()  # could not look for a while: a fresh grace period for all
        self._looked = now
        host, me = env.host(), os.getpid()
        dead, seen = [], {}
        for t in running:
            trial_id = trial_id_of(t)
            pid = t.user_attrs.get(attrs.WORKER_PID)
            started = t.user_attrs.get(attrs.WORKER_STARTED)
            local = t.user_attrs.get(attrs.HOST) == host and isinstance(pid, int)
            if local and pid == me:
                continue
            if local and isinstance(pid, int) and _same_process_gone(
                    pid, started if isinstance(started, int) else None):
                dead.append(t)
                continue
            if not self.queue.heartbeat_interval and isinstance(pid, int):
                continue  # no heartbeats here (journal): a live owner's word is its process
            beat = beats.get(trial_id)
            before = self._seen.get(trial_id)
            seen[trial_id] = before if before is not None and before[0] == beat else (beat, now)
            if now - seen[trial_id][1] > self.grace:
                dead.append(t)
        self._seen = seen
        return dead

    def reap(self) -> int:
        """Fail the trials of dead workers and queue their retries; returns how many."""
        return sum(self._reap(t) for t in self.dead())

    def _reap(self, trial: optuna.trial.FrozenTrial) -> bool:
        storage = self.queue.storage
        trial_id = trial_id_of(trial)
        deaths = len(trial.system_attrs.get(attrs.RETRY_HISTORY, [])) + 1
        retry = deaths <= self.max_retry
        if attrs.WORKER_PID in trial.user_attrs:
            who = (f"worker died ({trial.user_attrs.get(attrs.HOST, '?')} "
                   f"pid {trial.user_attrs.get(attrs.WORKER_PID, '?')})")
        else:
            who = ("taken by a client that is not an hpo worker (no owner, no heartbeat for "
                   f"{self.grace:.0f}s)")
        reason = (f"{who}; retried as a new trial, attempt {deaths + 1}" if retry else
                  f"{who}; its worker died {deaths} times running this trial, not retried "
                  f"again (limit {self.max_retry} retries, HPO_MAX_RETRY)")
        try:
            storage.set_trial_user_attr(trial_id, attrs.ERROR, reason)
            storage.set_trial_user_attr(trial_id, attrs.FAILURE_KIND, "infrastructure")
            if not storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
                return False
        except UpdateFinishedTrialError:
            return False  # another reaper got there first, or its worker finished it
        log.warning("trial %d: %s", trial.number, reason)
        if retry:
            self.queue.add_retry(storage.get_trial(trial_id))
        return True


def dead_trials(queue: TrialQueue) -> list[optuna.trial.FrozenTrial]:
    """For ``hpo status``, which looks once: RUNNING trials whose worker is gone from this
    host, or whose heartbeat is older than the grace period by the database's clock (a
    worker's reaper judges those over time, see :class:`Reaper`)."""
    running = queue.running()
    ages = queue.heartbeat_ages([trial_id_of(t) for t in running])
    host, grace = env.host(), env.heartbeat_grace()
    out = []
    for t in running:
        pid, started = t.user_attrs.get(attrs.WORKER_PID), t.user_attrs.get(attrs.WORKER_STARTED)
        local = t.user_attrs.get(attrs.HOST) == host and isinstance(pid, int)
        age = ages.get(trial_id_of(t))
        if local and isinstance(pid, int) and pid != os.getpid() and _same_process_gone(
                pid, started if isinstance(started, int) else None):
            out.append(t)
        elif age is not None and age > grace or not isinstance(pid, int):
            out.append(t)
    return out
