"""The study's budget, counted for the whole study rather than per worker.

Optuna's ``n_trials`` counts per process, so four workers asked for 24 trials run 96, or,
with a shared counter, a few more than 24 when they check at the same moment. Here the
budget is laid out in storage up front as WAITING trials, one per *slot* (0, 1, 2, ...),
each tagged with its slot number. Workers take them with Optuna's own atomic pop (a row lock
in PostgreSQL, the log order in a journal file), so exactly ``budget`` trials run, however
many workers ask. A retried trial is a new WAITING copy of the same slot, so a worker that
died does not shrink the budget either.

The layout is idempotent and happens under :func:`hpo.storage.exclusive`, so any number of
workers may start at once, and ``--trials`` may later grow the budget.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.exceptions import UpdateFinishedTrialError
from optuna.trial import TrialState, create_trial

from hpo.sampling import SLOT_ATTR

if TYPE_CHECKING:
    import optuna

PENDING = (TrialState.WAITING, TrialState.RUNNING)


def lay_out(study: optuna.Study, budget: int) -> int:
    """Make sure slots 0..budget-1 exist; returns how many were added.

    Call under :func:`hpo.storage.exclusive`: two callers at once would add a slot twice.
    """
    planned = {t.user_attrs[SLOT_ATTR] for t in study.get_trials(deepcopy=False)
               if SLOT_ATTR in t.user_attrs}
    missing = [s for s in range(budget) if s not in planned]
    study.add_trials(
        [create_trial(state=TrialState.WAITING, user_attrs={SLOT_ATTR: s},
                      system_attrs={"fixed_params": {}}) for s in missing]
    )
    return len(missing)


def take(study: optuna.Study, budget: int) -> int | None:
    """Atomically claim the lowest WAITING trial inside the budget; its id, or None if none.

    Unlike ``Study.ask``, this never creates a trial, which is what keeps the total exact.
    """
    storage = study._storage  # the same private handle Study.ask uses to pop a trial
    for trial in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
        if trial.user_attrs.get(SLOT_ATTR, 0) >= budget:
            continue
        try:
            # False (or an error) when another worker popped it first: try the next one.
            if storage.set_trial_state_values(trial._trial_id, state=TrialState.RUNNING):
                return trial._trial_id
        except UpdateFinishedTrialError:  # it finished meanwhile
            continue
    return None


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
