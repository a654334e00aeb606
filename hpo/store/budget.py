"""The study's budget, counted for the whole study rather than per worker.

Optuna's ``n_trials`` counts per process, so four workers asked for 24 trials run 96, or,
with a shared counter, a few more than 24 when they check at the same moment. Here the
budget is laid out in storage up front as WAITING trials, one per *slot* (0, 1, 2, ...),
each tagged with its slot number. Workers claim them atomically through the trial queue
(:mod:`hpo.store.queue`), so exactly ``budget`` trials run, however many workers ask. A
retried trial is a new WAITING copy of the same slot, so a worker that died does not shrink
the budget either.

The layout is idempotent and happens under :func:`hpo.store.opening.exclusive`, so any
number of workers may start at once, and ``--trials`` may later grow the budget.

A study run with ``hpo run --until-decided`` (:mod:`hpo.decide`) is laid out by its
controller instead, round by round, and only for the scientific values still in contention:
slots ``k * V + v`` for the chosen values v, so its layout has gaps. Such a study carries the
``until_decided`` study attribute; for it, the budget is the slots laid out so far (whatever
their numbers), and a worker's work is done only when the controller has stopped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from optuna.trial import TrialState

from hpo import attrs

if TYPE_CHECKING:
    import optuna

PENDING = (TrialState.WAITING, TrialState.RUNNING)
# Above every slot an --until-decided controller may lay out: its workers claim any of them.
SLOT_BOUND = 2**31 - 1


def until_decided(study: optuna.Study) -> dict | None:
    """The ``hpo run --until-decided`` state of a study run that way, else None."""
    state = study.user_attrs.get(attrs.STUDY_UNTIL_DECIDED)
    return state if isinstance(state, dict) else None


def design_bound(study: optuna.Study, budget: int) -> int:
    """The slot number a worker's claims stay under: the budget, or for a study run
    --until-decided every slot its controller laid out."""
    return SLOT_BOUND if until_decided(study) is not None else budget


def lay_out(study: optuna.Study, budget: int) -> int:
    """Make sure slots 0..budget-1 exist; returns how many were added.

    In the explore phase each slot is laid out with its point and its seed: the design is
    in storage before any trial runs (and visible in the dashboard), and a worker reads its
    parameters with the trial instead of writing them one by one.

    Call under :func:`hpo.store.opening.exclusive`: two callers at once would add a slot
    twice.
    """
    from hpo.store.queue import queue_for

    return queue_for(study).lay_out(budget)


def planned_budget(study: optuna.Study) -> int:
    """The budget laid out so far: the number of distinct slots."""
    return len({t.user_attrs[attrs.SLOT] for t in study.get_trials(deepcopy=False)
                if attrs.SLOT in t.user_attrs})


def progress(study: optuna.Study, budget: int) -> tuple[int, int]:
    """(slots done, budget): a slot is done when no trial for it is waiting or running.

    Seed re-runs share their original's slot but are not the design: a re-run waiting does
    not make its slot undone. For a study run --until-decided the budget is the number of
    slots laid out so far (below ``budget``).
    """
    from hpo.store.queue import queue_for

    done = queue_for(study).slots_done(budget)
    if until_decided(study) is not None:
        return done, planned_budget(study)
    return done, budget


def finished(study: optuna.Study, budget: int) -> bool:
    """Every slot of the budget done, and no seed re-run waiting or running; for a study run
    --until-decided, also its controller stopped (between rounds there is nothing to run,
    and the next round may bring more)."""
    from hpo.store.queue import queue_for

    done, total = progress(study, budget)
    if done < total:
        return False
    state = until_decided(study)
    if state is not None and not state.get("stopped"):
        return False
    return not queue_for(study).pending_reruns()
