"""How a trial failed, in the playbook's terms: infeasible, or a failure to fix and retry.

Every FAIL attempt records its *kind* (the trial attribute ``failure_kind``):

============== ============================================================ ===========
kind           what happened                                                retried by
============== ============================================================ ===========
diverged       the metric was NaN or infinite                               never
oom            the objective ran out of (GPU) memory                        never
error          the objective raised, or returned something not a number     hpo retry
timeout        the trial ran past its time limit (``--trial-timeout``)      hpo retry
infrastructure its worker died, or storage / checkpoint I/O failed          the reaper,
                                                                            hpo retry
============== ============================================================ ===========

*Infeasible* (diverged, oom) is a property of the hyperparameters: the playbook's
infeasibility analysis reads those, and a run whose every slot ended complete, pruned or
infeasible has succeeded. The other three say nothing about the hyperparameters: they are
shown with their messages, make ``hpo run`` exit 1, and ``hpo retry`` queues them again.

Pure: it reads trials, never storage.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from optuna.trial import TrialState

from hpo import attrs

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

DIVERGED = "diverged"
OOM = "oom"
ERROR = "error"
TIMEOUT = "timeout"
INFRASTRUCTURE = "infrastructure"

KINDS = (DIVERGED, OOM, ERROR, TIMEOUT, INFRASTRUCTURE)
INFEASIBLE = (DIVERGED, OOM)
RETRYABLE = (ERROR, TIMEOUT, INFRASTRUCTURE)


class TrialTimeout(BaseException):
    """Raised inside the objective when its trial runs past the time limit.

    A BaseException, like KeyboardInterrupt, so an objective's ``except Exception`` does not
    swallow it and train on.
    """


def kind_of(trial: FrozenTrial) -> str | None:
    """The failure kind of a FAIL trial (None for any other state).

    Trials recorded before kinds existed carry only the older attributes: ``oom`` and
    ``diverged`` flags, and the reaper's "worker died" message.
    """
    if trial.state != TrialState.FAIL:
        return None
    kind = trial.user_attrs.get(attrs.FAILURE_KIND)
    if kind in KINDS:
        return str(kind)
    if trial.user_attrs.get(attrs.OOM):
        return OOM
    if trial.user_attrs.get(attrs.DIVERGED):
        return DIVERGED
    if str(trial.user_attrs.get(attrs.ERROR, "")).startswith("worker died"):
        return INFRASTRUCTURE
    return ERROR


def is_infeasible(trial: FrozenTrial) -> bool:
    """Diverged or out of memory: the hyperparameters cannot be trained, a result in itself."""
    return kind_of(trial) in INFEASIBLE


def is_failure(trial: FrozenTrial) -> bool:
    """Failed for a reason that says nothing about the hyperparameters (error, timeout,
    infrastructure): to fix, and retry."""
    return kind_of(trial) in RETRYABLE


def count_kinds(trials: Iterable[FrozenTrial]) -> dict[str, int]:
    """How many of the trials failed with each kind, every kind present (0 if none)."""
    counts = dict.fromkeys(KINDS, 0)
    for t in trials:
        kind = kind_of(t)
        if kind is not None:
            counts[kind] += 1
    return counts


def message_of(trial: FrozenTrial) -> str:
    """The failure's one-line message as recorded (the error attribute)."""
    return str(trial.user_attrs.get(attrs.ERROR) or "(no message recorded)").splitlines()[0]
