"""One worker: take a trial within the budget, run the objective, record the result, repeat.

Workers share nothing but the storage, so any number of them, on any number of machines,
can work on one study. A worker survives its objective's failures (the trial is recorded as
FAIL with the reason, and the worker goes on), and when it is stopped (SIGTERM, Ctrl-C) it
hands its running trial back to the queue instead of leaving it RUNNING.
"""

from __future__ import annotations

import logging
import math
import signal
import traceback
from typing import TYPE_CHECKING, Any

from hpo.context import Config, Context
from hpo.space import suggest

if TYPE_CHECKING:
    import optuna

    from hpo.study import Study

log = logging.getLogger("hpo.worker")


class WorkerStopped(BaseException):
    """Raised inside the objective when the worker is told to stop.

    A BaseException, like KeyboardInterrupt, so an objective's ``except Exception`` does not
    swallow it.
    """


def _raise_stop(signum: int, frame: Any) -> None:
    raise WorkerStopped(signal.Signals(signum).name)


def run_worker(definition: Study, url: str, *, budget: int | None = None) -> int:
    """Run trials until the study's budget is taken; returns how many this worker ran."""
    import optuna

    from hpo.budget import take
    from hpo.study import open_in_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    total = definition.budget if budget is None else budget
    study = open_in_storage(definition, url, budget=total)
    previous = signal.signal(signal.SIGTERM, _raise_stop)
    ran = 0
    try:
        while (trial_id := take(study, total)) is not None:
            run_trial(definition, study, optuna.Trial(study, trial_id))
            ran += 1
    finally:
        signal.signal(signal.SIGTERM, previous)
    return ran


def run_trial(definition: Study, study: optuna.Study, trial: optuna.Trial) -> None:
    """Run one trial the worker has taken, and record how it ended."""
    import optuna
    from optuna.trial import TrialState

    from hpo.sampling import np_seed, slot_of

    try:
        config = build_config(definition, trial)
        # The k-th trial of every scientific value shares a seed, as it shares a nuisance
        # point; a retried trial keeps the seed it was given.
        seed = trial.user_attrs.get("seed")
        if seed is None:
            seed = np_seed(definition.seed, study.sampler.pair_index(slot_of(trial)))
            trial.set_user_attr("seed", seed)
        value = definition.objective(config, Context(trial, seed=seed))
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
        log.info("trial %d pruned", trial.number)
        return
    except (WorkerStopped, KeyboardInterrupt):
        # Not a failure of the trial: put it back so another worker (or this one, later)
        # runs it with the same parameters.
        study._storage.set_trial_state_values(trial._trial_id, state=TrialState.WAITING)
        log.warning("trial %d handed back: worker stopped", trial.number)
        raise
    except Exception as e:  # noqa: BLE001 - any objective error fails the trial, not the worker
        _fail(study, trial, f"{type(e).__name__}: {e}", traceback.format_exc(limit=-8))
        return
    try:
        value = float(value)
    except (TypeError, ValueError):
        _fail(study, trial, f"objective returned {value!r}; it must return the {definition.metric} as a float")
        return
    if not math.isfinite(value):
        trial.set_user_attr("diverged", True)
        _fail(study, trial, f"diverged: {definition.metric} is {value}")
        return
    study.tell(trial, value)
    log.info("trial %d finished: %s=%g %s", trial.number, definition.metric, value, dict(trial.params))


def _fail(study: optuna.Study, trial: optuna.Trial, reason: str, tb: str | None = None) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("error", reason[:2000])
    if tb:
        trial.set_user_attr("traceback", tb[-4000:])
    study.tell(trial, state=TrialState.FAIL)
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
