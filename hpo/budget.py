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

from typing import TYPE_CHECKING, Any, NamedTuple

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


class Taken(NamedTuple):
    """A trial a worker claimed, with what it needs to know before reading the trial."""

    trial_id: int
    slot: int | None
    seed: int | None  # set in advance for seed re-runs (hpo seeds) and retries


def take(study: optuna.Study, budget: int) -> Taken | None:
    """Atomically claim the lowest WAITING trial inside the budget, or None if none is left.

    Unlike ``Study.ask``, this never creates a trial, which is what keeps the total exact.
    """
    storage = study._storage  # the same private handle Study.ask uses to pop a trial
    backend = getattr(storage, "_backend", storage)
    if hasattr(backend, "waiting_trial_ids"):
        # PostgreSQL: look at the next few only. Study.ask reads every WAITING trial with
        # all its attributes, which would grow with the budget on every take.
        head = [Taken(*row) for row in backend.waiting_trial_ids(study._study_id, limit=_HEAD)]
        claimed = _claim_first(storage, head, budget)
        if claimed is not None or len(head) < _HEAD:
            return claimed
        # The head is all beyond a budget that shrank since it was laid out: look further.
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return _claim_first(storage, [Taken(t._trial_id, t.user_attrs.get(SLOT_ATTR),
                                        t.user_attrs.get("seed")) for t in waiting], budget)


_HEAD = 16


def _claim_first(storage: Any, candidates: list[Taken], budget: int) -> Taken | None:
    for candidate in candidates:
        # Slots laid out by an earlier, larger budget wait for a run that asks for them.
        if candidate.slot is not None and candidate.slot >= budget:
            continue
        try:
            # False (or an error) when another worker popped it first: try the next one.
            if storage.set_trial_state_values(candidate.trial_id, state=TrialState.RUNNING):
                return candidate
        except UpdateFinishedTrialError:  # it finished meanwhile
            continue
    return None


def set_user_attrs(study: optuna.Study, trial_id: int, attrs: dict) -> None:
    """Write several user attributes, in one transaction where the storage allows it."""
    backend = getattr(study._storage, "_backend", study._storage)
    if hasattr(backend, "set_trial_user_attrs"):
        backend.set_trial_user_attrs(trial_id, attrs)
    else:
        for key, value in attrs.items():
            study._storage.set_trial_user_attr(trial_id, key, value)


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
