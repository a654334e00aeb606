"""One worker: take a trial within the budget, run the objective, record the result, repeat.

Workers share nothing but the storage, so any number of them, on any number of machines,
can work on one study. A worker survives its objective's failures (the trial is recorded as
FAIL with the reason, and the worker goes on), and when it is stopped (SIGTERM, Ctrl-C) it
hands its running trial back to the queue instead of leaving it RUNNING.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import signal
import threading
import time
import traceback
from typing import TYPE_CHECKING, Any

from hpo import attrs, failures
from hpo.context import Config, Context, check_checkpoint_root
from hpo.deadline import in_storage_code
from hpo.design import Design
from hpo.errors import HpoError, InfrastructureError
from hpo.failures import TrialTimeout
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
MAX_ERRORS = 3  # hpo run --max-errors: errors, and nothing else yet, that stop a study


def _raise_stop(signum: int, frame: Any) -> None:
    if in_storage_code(frame):
        # Inside a storage call: ask again in a moment, once it has returned.
        threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
        return
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
    trial_timeout: float | None = None,
    max_errors: int = MAX_ERRORS,
    replace_process: bool = False,
) -> int:
    """Run trials until the study's budget is done; returns how many this worker ran.

    When no trial is waiting but others are still running, the worker does not leave: it
    waits, reaping dead workers' trials, because one of those may come back as a retry.

    ``trial_timeout`` (seconds; default: the study's ``trial_timeout``) stops a trial that
    runs longer (:mod:`hpo.deadline`); ``replace_process`` lets a worker whose objective
    will not stop replace its own process (``hpo worker`` does; a library caller's process
    ends instead). ``max_errors``: when the study's first that many finished trials all
    failed with an error, the worker stops with :class:`StudyFailing` instead of spending
    the budget on the same mistake (0: never).
    """
    import optuna

    from hpo import env
    from hpo.provenance import collect
    from hpo.store import open_study
    from hpo.store.budget import design_bound, finished
    from hpo.store.leases import Reaper

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    previous = {s: signal.signal(s, _raise_stop) for s in STOP_SIGNALS}
    total = definition.budget if budget is None else budget
    check_checkpoint_root()  # a folder no trial could checkpoint in: exit 2, nothing written
    study, queue = open_study(definition, url, budget=total)
    total = design_bound(study, total)  # a study run --until-decided: what its controller laid
    provenance = collect(study_file)
    timeout = definition.trial_timeout if trial_timeout is None else trial_timeout
    fail_fast = FailFast(definition, queue, total, max_errors, study_file)
    reaping = _Reaping(Reaper(queue, max_retry=env.max_retry()))
    ran = 0
    try:
        fail_fast.check()  # a study already failing stops a worker joining it, before a trial
        while True:
            # A stop signal while a trial changes hands would leave it RUNNING with nobody
            # running it: hold signals until the trial is ours and marked as ours...
            signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
            # Whose trial this is goes in with the claim: the reaper judges a RUNNING trial
            # by host and pid.
            trial = queue.claim(total, provenance)
            if trial is None:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                with reaping.busy:  # not halfway through a retry of this worker's reaper
                    if finished(study, total):
                        return ran
                time.sleep(poll_seconds)  # a retry may be all that is left: wait for it
                continue
            try:
                # ...and deliver a pending one here, where the trial is handed back.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
                outcome = run_trial(definition, queue, trial, timeout=timeout,
                                    replace_process=replace_process, study_file=study_file)
            except WorkerStopped:
                _hand_back(queue, trial)
                raise
            ran += 1
            fail_fast.after(outcome)
    finally:
        reaping.stop()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        for s, handler in previous.items():
            signal.signal(s, handler)


class StudyFailing(HpoError):
    """The study's first finished trials all failed with an error: stop, say why (exit 1)."""


class FailFast:
    """Stop a study whose first ``max_errors`` finished trials all failed with an error.

    An objective with a typo fails every trial the same way; without this, the budget is
    spent (and its slots used up) before anyone reads the first message. The whole study
    counts, not this worker's trials: sixteen workers stop after three errors, not 48. Once
    any trial has ended otherwise (complete, pruned, infeasible), the objective works and the
    check is off for good. Each look is one aggregate query (TrialQueue.outcomes); only a
    study that is failing is read whole, for its first error's message.
    """

    def __init__(self, definition: Study, queue: TrialQueue, budget: int, max_errors: int,
                 study_file: str | None = None):
        self._definition = definition
        self._study_file = study_file or "<study file>"
        self._queue = queue
        self._budget = budget
        self._max = max_errors
        self._armed = max_errors > 0

    def after(self, outcome: str) -> None:
        if outcome == failures.ERROR:
            self.check()
        elif outcome != DROPPED:
            self._armed = False

    def check(self) -> None:
        if not self._armed:
            return
        counts = self._queue.outcomes(self._budget).counts
        if counts.finished > counts.error:
            self._armed = False  # the objective has worked (or failed otherwise): never again
        elif counts.error >= self._max:
            reason = fail_fast_reason(self._definition, self._queue.all_trials(), self._max,
                                      self._study_file)
            if reason is not None:
                raise StudyFailing(reason)


def fail_fast_reason(definition: Study, trials: list[optuna.trial.FrozenTrial],
                     max_errors: int, study_file: str = "<study file>") -> str | None:
    """Why the study stops (its first ``max_errors`` finished design trials, or more, all
    failed with an error and none ended otherwise), or None if it does not."""
    finished = _finished_design_trials(definition, trials)
    if max_errors <= 0 or len(finished) < max_errors or any(
            failures.kind_of(t) != failures.ERROR for t in finished):
        return None
    return _fail_fast_message(finished, study_file)


def _finished_design_trials(
        definition: Study, trials: list[optuna.trial.FrozenTrial],
) -> list[optuna.trial.FrozenTrial]:
    """Each design slot's final attempt, if finished, in the order they finished."""
    from hpo.tally import tally

    return sorted((s.final for v in tally(definition, trials) for s in v.slots
                   if s.done and attrs.SLOT in s.final.user_attrs),
                  key=lambda t: (t.datetime_complete is None, t.datetime_complete, t.number))


def _fail_fast_message(finished: list[optuna.trial.FrozenTrial], study_file: str) -> str:
    first = finished[0]
    return (f"stopped: the first {len(finished)} finished trials all failed with an error "
            f"and none completed; trial {first.number}: {failures.message_of(first)}; fix the "
            f"objective, then hpo retry {study_file} and run again (--max-errors N sets how "
            f"many errors stop a study, 0 never)")
class _Reaping:
    """The worker's reaper, looking at the study's leases every few seconds in a thread of
    its own, busy or idle: a dead worker's trial is retried while everyone else is busy
    with long trials too."""

    def __init__(self, reaper: Any):
        self._reaper = reaper
        self._stop = threading.Event()
        # Held while a look fails a dead trial and queues its retry: between the two its
        # slot looks done, and the main thread must not decide then that the study is.
        self.busy = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="hpo-reaper", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        # Stop signals belong to the main thread, which hands its trial back.
        signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        while True:
            try:
                with self.busy:
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


def run_trial(definition: Study, queue: TrialQueue, claimed: optuna.trial.FrozenTrial, *,
              timeout: float | None = None, replace_process: bool = False,
              study_file: str | None = None) -> str:
    """Run one trial the worker has taken (RUNNING, as :meth:`TrialQueue.claim` returned
    it), and record how it ended. With ``$HPO_PROCS_PER_TRIAL`` > 1 the objective runs in
    that many processes (:mod:`hpo.train.distributed`), which load ``study_file``.

    Returns how it ended: ``"complete"``, ``"pruned"``, a failure kind (:mod:`hpo.failures`),
    or ``"dropped"`` when another process (a reaper) finished the trial meanwhile: then
    nothing more is written, and the worker goes on.

    WorkerStopped propagates: the caller hands the trial back. An infrastructure failure
    (a checkpoint that cannot be written, a database gone for good) hands the trial back
    here and propagates as an :class:`~hpo.errors.InfrastructureError`: the worker stops,
    the trial is neither a result nor a failure of its hyperparameters.
    """
    import optuna
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    from hpo import env
    from hpo.deadline import Deadline
    from hpo.design import slot_of
    from hpo.store.leases import Heartbeat
    from hpo.train import distributed

    study = queue.study
    trial_id = queue.trial_id(claimed)
    with Heartbeat(queue, trial_id):
        trial = optuna.Trial(study, trial_id)
        grace = env.timeout_grace()
        deadline = Deadline(timeout, grace=grace, on_stuck=lambda: _stuck(
            queue, trial, timeout, grace, replace_process))
        try:
            with deadline:
                config = build_config(definition, trial)
                seed = trial.user_attrs.get(attrs.SEED)
                if seed is None:  # a trial enqueued by hand, outside the design's slots
                    seed = Design(definition.space, definition.seed).trial_seed(slot_of(claimed))
                    trial.set_user_attr(attrs.SEED, seed)
                ctx = Context(trial, seed=seed, metric=definition.metric)
                value = distributed.run(definition.objective, config, ctx,
                                        study_file=study_file)
        except optuna.TrialPruned:
            if not _record(queue, trial, state=TrialState.PRUNED):
                return DROPPED
            log.info("trial %d pruned", trial.number)
            return "pruned"
        except TrialTimeout as e:
            tb = traceback.format_exc(limit=-8)
            _release_gpu_memory()
            return _fail(queue, trial, failures.TIMEOUT,
                         f"timeout: {e}; stopped (--trial-timeout, Study(trial_timeout=))", tb)
        except distributed.RankDied as e:
            return _rank_died(queue, trial, e)
        except Exception as e:  # noqa: BLE001 - any objective error fails the trial, not the worker
            if _caused_by(e, UpdateFinishedTrialError):
                _dropped(queue, trial)
                return DROPPED
            infrastructure = _infrastructure(e, trial.number)
            if infrastructure is not None:
                _hand_back_after(queue, claimed, infrastructure)
                raise infrastructure from e
            if _is_out_of_memory(e):
                _release_gpu_memory()
                return _fail(queue, trial, failures.OOM,
                             f"out of memory: {type(e).__name__}: {e}")
            tb = traceback.format_exc(limit=-8)
            _release_gpu_memory()
            return _fail(queue, trial, failures.ERROR, f"{type(e).__name__}: {e}", tb)
    problem = _not_a_number(value, definition.metric)
    if problem is not None:
        return _fail(queue, trial, failures.ERROR, problem)
    value = float(value)
    if not math.isfinite(value):
        return _fail(queue, trial, failures.DIVERGED,
                     f"diverged: {definition.metric} is {value}")
    if not _record(queue, trial, value, claimed=claimed):
        return DROPPED
    if not getattr(definition.objective, "keeps_checkpoints", False):
        _remove_checkpoints(ctx)
    log.info("trial %d finished: %s=%g %s", trial.number, definition.metric, value,
             dict(trial.params))
    return "complete"


def _rank_died(queue: TrialQueue, trial: optuna.Trial, error: Exception) -> str:
    """One of the trial's processes died (hpo.train.distributed stopped the others): as
    when a worker dies, the attempt fails as infrastructure and, up to ``$HPO_MAX_RETRY``
    deaths, a retry resumes from its checkpoint. This worker is fine and goes on."""
    from hpo import env

    deaths = len(queue.storage.get_trial(queue.trial_id(trial)).system_attrs.get(
        attrs.RETRY_HISTORY, [])) + 1
    retry = deaths <= env.max_retry()
    reason = (f"{error}; retried as a new trial, attempt {deaths + 1}" if retry else
              f"{error}; the trial's processes died {deaths} times, not retried again "
              f"(limit {env.max_retry()} retries, HPO_MAX_RETRY)")
    kind = _fail(queue, trial, failures.INFRASTRUCTURE, reason)
    if retry and kind != DROPPED:
        queue.add_retry(queue.storage.get_trial(queue.trial_id(trial)))
    return kind


def _remove_checkpoints(ctx: Context) -> None:
    """A completed slot's checkpoints served their purpose (resuming its attempts): remove
    them, or a shared folder fills up over a study. An objective that keeps some on purpose
    says so with a ``keeps_checkpoints = True`` attribute (hpo.train does)."""
    import shutil

    folder = ctx.checkpoint_dir
    if folder.is_dir():
        shutil.rmtree(folder, ignore_errors=True)


DROPPED = "dropped"


def _not_a_number(value: Any, metric: str) -> str | None:
    """Why an objective's return is not a metric, or None if it is one.

    A real number only: ``float("0.5")`` would turn a string into a metric, and ``True``
    is an int to Python; both mean the objective returned something else than it meant to.
    NumPy's numbers are real numbers too (``numbers.Real``); a tensor is not.
    """
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        return None
    shown = repr(value)
    shown = shown if len(shown) <= 80 else shown[:77] + "..."
    hint = ("; did the objective forget to return it?" if value is None else
            "; return the number, not its text" if isinstance(value, (str, bytes)) else
            "; return a number, not a truth value" if isinstance(value, bool) else
            "; for a one-element tensor or array, return value.item()"
            if callable(getattr(value, "item", None)) else "")
    return (f"objective returned {shown} ({type(value).__name__}); it must return the "
            f"{metric} as a number (int or float){hint}")


def _caused_by(error: BaseException, kind: type[BaseException]) -> bool:
    """Whether ``error``, or one it was raised from or while handling, is a ``kind``."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kind):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _infrastructure(error: BaseException, number: int) -> InfrastructureError | None:
    """The infrastructure failure behind an objective's exception, or None if it is the
    objective's own: a checkpoint folder that cannot be written, a database connection
    lost for longer than ``$HPO_DB_PATIENCE``."""
    from hpo.store.reconnect import is_connection_loss

    current: BaseException | None = error
    seen: set[int] = set()
    while current is not None and id(current) not in seen:
        if isinstance(current, InfrastructureError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    if is_connection_loss(error):
        return InfrastructureError(
            f"trial {number}: lost the database connection for good ({type(error).__name__}: "
            f"{_first_line(error)}); the trial went back to the queue; start the worker again "
            f"once the database is reachable")
    return None


def _hand_back_after(queue: TrialQueue, trial: optuna.trial.FrozenTrial,
                     error: InfrastructureError) -> None:
    """Hand a trial back after an infrastructure failure; if even that fails (the database
    is what failed), its heartbeat stops with this worker and the reaper retries it."""
    try:
        queue.hand_back(trial)
    except Exception as e:  # noqa: BLE001 - the original failure is the one to report
        log.warning("trial %d could not be handed back (%s); the reaper will retry it",
                    trial.number, _first_line(e))
        return
    log.warning("trial %d handed back: %s", trial.number, error)


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [""])[0]


def _record(queue: TrialQueue, trial: optuna.Trial, value: float | None = None, *,
            state: Any = None, claimed: optuna.trial.FrozenTrial | None = None) -> bool:
    """``study.tell`` that tolerates a finish already written; False if the trial was
    finished by another process (a reaper), which has been said in one line.

    After a lost connection the storage retries the write; if the first attempt had been
    applied, the retry finds the trial finished as we wanted it: that is our own write.
    """
    from optuna.exceptions import UpdateFinishedTrialError

    try:
        if state is None and claimed is not None and value is not None:
            queue.finish(claimed, value)
        else:
            queue.study.tell(trial, value, state=state)
    except (UpdateFinishedTrialError, ValueError) as e:
        # Optuna says "finished" two ways: UpdateFinishedTrialError when the write finds it
        # so, ValueError ("Cannot tell a FAIL trial") when tell's own read already did.
        stored = queue.storage.get_trial(queue.trial_id(trial))
        if isinstance(e, ValueError) and not stored.state.is_finished():
            raise
        ours = stored.state == state if state is not None else (
            stored.state.name == "COMPLETE" and stored.value == value)
        if not ours:
            _dropped(queue, trial, stored)
            return False
    return True


def _dropped(queue: TrialQueue, trial: optuna.Trial,
             stored: optuna.trial.FrozenTrial | None = None) -> None:
    """The one line a worker says when its trial was finished by someone else meanwhile
    (a reaper that judged it dead while its heartbeat lapsed): it writes nothing more."""
    if stored is None:
        stored = queue.storage.get_trial(queue.trial_id(trial))
    why = stored.user_attrs.get(attrs.ERROR)
    log.warning("trial %d was finished by another process meanwhile (%s%s); this worker's "
                "result is dropped and it goes on%s", trial.number, stored.state.name,
                f": {why}" if why else "",
                "; its retry runs it again" if "retried" in str(why or "") else "")


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


def _fail(queue: TrialQueue, trial: optuna.Trial, kind: str, reason: str,
          tb: str | None = None) -> str:
    """Record the trial as FAIL with its kind and reason; returns the kind, or DROPPED."""
    from optuna.exceptions import UpdateFinishedTrialError
    from optuna.trial import TrialState

    try:
        trial.set_user_attr(attrs.FAILURE_KIND, kind)
        if kind in failures.INFEASIBLE:  # the flags older readers know (and the dashboard)
            trial.set_user_attr(attrs.DIVERGED if kind == failures.DIVERGED else attrs.OOM, True)
        trial.set_user_attr(attrs.ERROR, reason[:2000])
        if tb:
            trial.set_user_attr(attrs.TRACEBACK, tb[-4000:])
    except UpdateFinishedTrialError:
        _dropped(queue, trial)
        return DROPPED
    if not _record(queue, trial, state=TrialState.FAIL):
        return DROPPED
    log.warning("trial %d failed (%s): %s", trial.number, kind, reason)
    return kind


def _stuck(queue: TrialQueue, trial: optuna.Trial, timeout: float | None, grace: float,
           replace_process: bool) -> None:
    """The objective ignored its timeout for the grace period: record the trial as a
    timeout from the watchdog thread, then replace this process (see :mod:`hpo.deadline`)."""
    try:
        _fail(queue, trial, failures.TIMEOUT,
              f"timeout: the trial ran past its time limit of {timeout:g}s and did not stop "
              f"within {grace:g}s of being asked; its worker process was replaced")
    except Exception as e:  # noqa: BLE001 - the process is replaced whatever happens
        log.error("trial %d: could not record its timeout (%s)", trial.number, _first_line(e))
    _replace_process(replace_process)


def _replace_process(replace: bool) -> None:
    """A fresh worker in place of this one: ``exec`` of the same command line, same pid."""
    import sys

    if replace:
        log.warning("replacing this worker process: a fresh one takes the next trial")
    else:
        log.error("ending this process: a stuck objective cannot be stopped in it")
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    if not replace:
        # Called as a library (not from ``hpo worker``): there is no command line to start
        # again, and a stuck thread cannot be stopped; end the process, as a crash would.
        os._exit(1)
    signal.pthread_sigmask(signal.SIG_SETMASK, [])  # exec keeps the calling thread's mask
    os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])


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
