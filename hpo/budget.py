"""The study's budget, counted for the whole study rather than per worker.

Optuna's ``n_trials`` counts per process, so four workers asked for 24 trials run 96, or,
with a shared counter, a few more than 24 when they check at the same moment. Here the
budget is laid out in storage up front as WAITING trials, one per *slot* (0, 1, 2, ...),
each tagged with its slot number. Workers claim them atomically (a locking statement on
PostgreSQL, see :mod:`hpo.pgqueue`; Optuna's state change, ordered by the log, in a journal
file), so exactly ``budget`` trials run, however many workers ask. A retried trial is a new WAITING copy of the same slot, so a worker that
died does not shrink the budget either.

The layout is idempotent and happens under :func:`hpo.storage.exclusive`, so any number of
workers may start at once, and ``--trials`` may later grow the budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from hpo.sampling import RERUN_ATTR, SLOT_ATTR

if TYPE_CHECKING:
    import optuna

    from hpo.sampling import PlaybookSampler

PENDING = (TrialState.WAITING, TrialState.RUNNING)


def lay_out(study: optuna.Study, budget: int) -> int:
    """Make sure slots 0..budget-1 exist; returns how many were added.

    In the explore phase each slot is laid out with its point and its seed: the design is
    in storage before any trial runs (and visible in the dashboard), and a worker reads its
    parameters with the trial instead of writing them one by one.

    Call under :func:`hpo.storage.exclusive`: two callers at once would add a slot twice.
    """
    sampler: PlaybookSampler = study.sampler
    planned = {t.user_attrs[SLOT_ATTR] for t in study.get_trials(deepcopy=False)
               if SLOT_ATTR in t.user_attrs}
    missing = [s for s in range(budget) if s not in planned]
    study.add_trials([_waiting(sampler, s) for s in missing])
    return len(missing)


def _waiting(sampler: PlaybookSampler, slot: int) -> optuna.trial.FrozenTrial:
    params, dists = sampler.planned(slot) or ({}, {})
    return create_trial(state=TrialState.WAITING, params=params, distributions=dists,
                        user_attrs={SLOT_ATTR: slot, "seed": sampler.trial_seed(slot)},
                        system_attrs={"fixed_params": {}})


def take(study: optuna.Study, budget: int, attrs: dict[str, Any]) -> optuna.trial.FrozenTrial | None:
    """Claim the lowest WAITING trial inside the budget, or None if none is left.

    The claimed trial is RUNNING with ``attrs`` (whose it is) written on it; it is returned
    as it stands in storage. Unlike ``Study.ask``, this never creates a trial, which is what
    keeps the total exact.
    """
    storage = study._storage  # the same private handle Study.ask uses to pop a trial
    backend = getattr(storage, "_backend", storage)
    if hasattr(backend, "claim_trial"):
        # PostgreSQL: one statement (hpo.pgqueue). Study.ask reads every WAITING trial with
        # all its attributes to pop one, which would grow with the budget on every take.
        trial = backend.claim_trial(study._study_id, budget, attrs)
        if trial is not None and not trial.params:
            # Not laid out with its point (exploit phase, a seed re-run): choose it now and
            # write it at once. Written one by one while the trial runs, each would go
            # through Optuna's cache, which knows only the trials it has read, and reading
            # the study for it re-reads every WAITING trial of the budget.
            params, dists = study.sampler.point(study, trial)
            backend.set_trial_params(trial._trial_id, params, dists)
            trial.params.update(params)
            trial.distributions.update(dists)
        return trial
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if _beyond(trial.user_attrs, budget):
            continue
        try:
            # False when another worker popped it first: try the next one.
            if not storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                continue
        except UpdateFinishedTrialError:  # it finished meanwhile
            continue
        for key, value in attrs.items():
            storage.set_trial_user_attr(trial._trial_id, key, value)
        return storage.get_trial(trial._trial_id)
    return None


def _beyond(user_attrs: dict[str, Any], budget: int) -> bool:
    # Slots laid out by an earlier, larger budget wait for a run that asks for them. Seed
    # re-runs are extra evaluations of finished slots: whatever the budget, they run.
    return user_attrs.get(SLOT_ATTR, -1) >= budget and RERUN_ATTR not in user_attrs


def finish(study: optuna.Study, trial: optuna.trial.FrozenTrial, value: float) -> None:
    """Record a taken trial as COMPLETE with its value: ``study.tell``, in one statement on
    PostgreSQL.

    Raises UpdateFinishedTrialError, as ``study.tell`` does, when the trial is no longer
    RUNNING (a reaper failed it meanwhile, or a retried write had already finished it).
    """
    backend = getattr(study._storage, "_backend", study._storage)
    if not hasattr(backend, "finish_trial"):
        study.tell(trial.number, value)
        return
    study.sampler.after_trial(study, trial, TrialState.COMPLETE, [value])
    if not backend.finish_trial(trial._trial_id, value):
        raise UpdateFinishedTrialError(f"trial {trial.number} is no longer RUNNING")


def progress(study: optuna.Study, budget: int) -> tuple[int, int]:
    """(slots done, budget): a slot is done when no trial for it is waiting or running."""
    pending = set()
    planned = set()
    for t in study.get_trials(deepcopy=False):
        slot = t.user_attrs.get(SLOT_ATTR)
        if slot is None or slot >= budget:
            continue
        planned.add(slot)
        if t.state in PENDING:
            pending.add(slot)
    return len(planned - pending), budget


def finished(study: optuna.Study, budget: int) -> bool:
    """Every slot of the budget done, and no seed re-run waiting or running."""
    if progress(study, budget)[0] < budget:
        return False
    return not any(RERUN_ATTR in t.user_attrs
                   for t in study.get_trials(deepcopy=False, states=PENDING))
