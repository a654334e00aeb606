"""One worker: take a trial within the budget, run the objective, record the result, repeat.

Workers share nothing but the storage, so any number of them, on any number of machines,
can work on one study. A worker survives its objective's failures (the trial is recorded as
FAIL with the reason, and the worker goes on), and when it is stopped (SIGTERM, Ctrl-C) it
hands its running trial back to the queue instead of leaving it RUNNING.
"""

from __future__ import annotations

import logging
import math
import os
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from hpo import attrs
from hpo.context import Config, Context, check_checkpoint_root
from hpo.design import Design
from hpo.space import suggest

if TYPE_CHECKING:
    import optuna

    from hpo.store.queue import TrialQueue
    from hpo.study import Study

log = logging.getLogger("hpo.worker")


class WorkerStopped(BaseException):
    """Raised inside the objective when the worker is told to stop (SIGTERM, SIGINT).

    A BaseException, like KeyboardInterrupt, so an objective's ``except Exception`` does not
    swallow it.
    """


STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


# Code that must not be interrupted halfway: a lock or a transaction could be left behind
# (a journal file's lock stalls every worker for 30 s until Optuna force-releases it).
_STORAGE_CODE = (f"{os.sep}optuna{os.sep}", f"{os.sep}sqlalchemy{os.sep}", f"{os.sep}psycopg2")


def _raise_stop(signum: int, frame: Any) -> None:
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _STORAGE_CODE):
            # Inside a storage call: ask again in a moment, once it has returned.
            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        frame = frame.f_back
    # Once is enough: a second signal must not interrupt the hand-back of the trial.
    for s in STOP_SIGNALS:
        signal.signal(s, signal.SIG_IGN)
    raise WorkerStopped(signal.Signals(signum).name)


def run_worker(
    definition: Study,
    url: str,
    *,
    budget: int | None = None,
    study_file: str | None = None,
    poll_seconds: float = 1.0,
) -> int:
    """Run trials until the study's budget is done; returns how many this worker ran.

    When no trial is waiting but others are still running, the worker does not leave: it
    waits, reaping dead workers' trials, because one of those may come back as a retry.
    """
    import optuna

    from hpo import env
    from hpo.provenance import collect
    from hpo.store import open_study
    from hpo.store.budget import finished
    from hpo.store.leases import Reaper

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    previous = {s: signal.signal(s, _raise_stop) for s in STOP_SIGNALS}
    total = definition.budget if budget is None else budget
    check_checkpoint_root()  # a folder no trial could checkpoint in: exit 2, nothing written
    study, queue = open_study(definition, url, budget=total)
    provenance = collect(study_file)
    reaping = _Reaping(Reaper(queue, max_retry=env.max_retry()))
    ran = 0
    try:
        while True:
            # A stop signal while a trial changes hands would leave it RUNNING with nobody
            # running it: hold signals until the trial is ours and marked as ours...
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            # Whose trial this is goes in with the claim: the reaper judges a RUNNING trial
            # by host and pid.
            trial = queue.claim(total, provenance)
            if trial is None:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                if finished(study, total):
                    return ran
                time.sleep(poll_seconds)  # a retry may be all that is left: wait for it
                continue
            try:
                # ...and deliver a pending one here, where the trial is handed back.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                run_trial(definition, queue, trial)
            except WorkerStopped:
                _hand_back(queue, trial)
                raise
            ran += 1
    finally:
        reaping.stop()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for s, handler in previous.items():
            signal.signal(s, handler)


class _Reaping:
    """The worker's reaper, looking at the study's leases every few seconds in a thread of
    its own, busy or idle: a dead worker's trial is retried while everyone else is busy
    with long trials too."""

    def __init__(self, reaper: Any):
        self._reaper = reaper
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hpo-reaper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Stop signals belong to the main thread, which hands its trial back.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        while True:
            try:
                self._reaper.reap()
            except Exception as e:  # noqa: BLE001 - a failed look is retried; never fatal
                log.warning("reaper: could not look at the study's trials: %s", e)
            if self._stop.wait(self._reaper.interval):
                return

    def stop(self) -> None:
        self._stop.set()


def _hand_back(queue: TrialQueue, trial: optuna.trial.FrozenTrial) -> None:
    """Put a trial back in the queue: a stopped worker is not a failed trial.

    Another worker (or this one, later) runs it with the same parameters, resuming from its
    checkpoint.
    """
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)  # a second Ctrl-C must not cut it
    queue.hand_back(trial)
    log.warning("trial %d handed back: worker stopped", trial.number)


def run_trial(definition: Study, queue: TrialQueue, claimed: optuna.trial.FrozenTrial) -> None:
    """Run one trial the worker has taken (RUNNING, as :meth:`TrialQueue.claim` returned
    it), and record how it ended.

    WorkerStopped propagates: the caller hands the trial back.
    """
    import optuna
    from optuna.trial import TrialState

    from hpo.design import slot_of
    from hpo.store.leases import Heartbeat

    study = queue.study
    trial_id = queue.trial_id(claimed)
    with Heartbeat(queue, trial_id):
        trial = optuna.Trial(study, trial_id)
        try:
            config = build_config(definition, trial)
            seed = trial.user_attrs.get(attrs.SEED)
            if seed is None:  # a trial enqueued by hand, outside the design's slots
                seed = Design(definition.space, definition.seed).trial_seed(slot_of(claimed))
                trial.set_user_attr(attrs.SEED, seed)
            value = definition.objective(config, Context(trial, seed=seed))
        except optuna.TrialPruned:
            _record(queue, trial, state=TrialState.PRUNED)
            log.info("trial %d pruned", trial.number)
            return
        except Exception as e:  # noqa: BLE001 - any objective error fails the trial, not the worker
            if _is_out_of_memory(e):
                trial.set_user_attr(attrs.OOM, True)
                _release_gpu_memory()
                _fail(queue, trial, f"out of memory: {type(e).__name__}: {e}")
            else:
                _fail(queue, trial, f"{type(e).__name__}: {e}", traceback.format_exc(limit=-8))
            return
    try:
        value = float(value)
    except (TypeError, ValueError):
        _fail(queue, trial, f"objective returned {value!r}; it must return the "
                            f"{definition.metric} as a float")
        return
    if not math.isfinite(value):
        trial.set_user_attr(attrs.DIVERGED, True)
        _fail(queue, trial, f"diverged: {definition.metric} is {value}")
        return
    _record(queue, trial, value, claimed=claimed)
    log.info("trial %d finished: %s=%g %s", trial.number, definition.metric, value,
             dict(trial.params))


def _record(queue: TrialQueue, trial: optuna.Trial, value: float | None = None, *,
            state: Any = None, claimed: optuna.trial.FrozenTrial | None = None) -> None:
    """``study.tell`` that tolerates a finish already written.

    After a lost connection the storage retries the write; if the first attempt had been
    applied, the retry finds the trial finished. If a reaper failed it meanwhile (our
    heartbeat lapsed during a long outage), its retry will redo the work: say so.
    """
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        if state is None and claimed is not None and value is not None:
            queue.finish(claimed, value)
        else:
            queue.study.tell(trial, value, state=state)
    except UpdateFinishedTrialError:
        stored = queue.storage.get_trial(queue.trial_id(trial))
        if state is not None and stored.state != state or state is None and stored.value != value:
            log.warning("trial %d was already finished as %s by another process; its retry "
                        "will run again", trial.number, stored.state.name)


def _is_out_of_memory(error: BaseException) -> bool:
    # torch.cuda.OutOfMemoryError, without importing torch for objectives that do not use it.
    return type(error).__name__ == "OutOfMemoryError" or "out of memory" in str(error).lower()


def _release_gpu_memory() -> None:
    """Hand a failed trial's GPU memory back to the device; called while its error is handled.

    That error's traceback holds the objective's frames, and with them every tensor the
    objective had: clear those frames first, or the tensors are still alive when the cache is
    emptied, and stay in PyTorch's cache (unusable by other processes) once they die.
    """
    import gc
    import sys

    error, seen = sys.exc_info()[1], set()
    while error is not None and id(error) not in seen:  # the error and what it was raised from
        seen.add(id(error))
        traceback.clear_frames(error.__traceback__)  # skips the frames still running (ours)
        error = error.__cause__ or error.__context__
    gc.collect()  # the failed objective's tensors, now unreachable
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


def _fail(queue: TrialQueue, trial: optuna.Trial, reason: str, tb: str | None = None) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr(attrs.ERROR, reason[:2000])
    if tb:
        trial.set_user_attr(attrs.TRACEBACK, tb[-4000:])
    _record(queue, trial, state=TrialState.FAIL)
    log.warning("trial %d failed: %s", trial.number, reason)


def build_config(definition: Study, trial: optuna.Trial) -> Config:
    """Every hyperparameter's value for this trial: suggested roles plus fixed values."""
    space = definition.space
    values: dict[str, Any] = {n: suggest(trial, n, d) for n, d in space.scientific.items()}
    scientific_value = dict(values)
    active = space.active_nuisance(scientific_value)
    values.update({n: suggest(trial, n, d) for n, d in active.items()})
    values.update(space.fixed)
    inactive = {
        n: "only when " + " and ".join(
            f"{c}{'=' + repr(v[0]) if len(v) == 1 else ' in ' + repr(list(v))}"
            for c, v in space.hyperparameters[n].when.items()
        )
        for n in space.nuisance if n not in active
    }
    return Config(values, inactive)
