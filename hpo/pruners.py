"""Pruners fair to every scientific value: a trial is compared only with trials of its own.

Optuna's pruners compare a trial's intermediate value with every other trial's at the same
step. In a study that compares scientific values, that is the unfair comparison the playbook
warns about: a value whose curves start slow (SGD against Adam, a deeper network, a smaller
learning rate schedule's warmup) is pruned against another value's fast starts, and loses
trials for it, however good it would have ended. The pruners here wrap Optuna's and hand them
a view of the study that holds only the trials of the pruned trial's own scientific value
(its slot's, :mod:`hpo.design`): the median, the rungs of successive halving and the brackets
of Hyperband are all per value. The design stays balanced: a pruned trial keeps its slot.

* :class:`MedianPruner`, :class:`SuccessiveHalvingPruner` (ASHA): Optuna's, per value.
* :class:`HyperbandPruner`: per value, its brackets chosen by the pair index, so the k-th
  trials of all values (same nuisance point, same seed) run in the same bracket.
* :class:`PerValuePruner` wraps any other Optuna pruner the same way; ``hpo.Study`` wraps a
  plain Optuna pruner in it by itself (Optuna's own ``HyperbandPruner`` is refused: it reads
  the whole study behind any view; use ``hpo.HyperbandPruner``).

A seed re-run (``hpo seeds``) is never pruned and is never a competitor: it exists to
measure the noise of a full run.
"""

from __future__ import annotations

import binascii
import copy
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import optuna
from optuna.pruners import BasePruner
from optuna.trial import TrialState

from hpo.design import is_seed_rerun, slot_of
from hpo.errors import HpoError
from hpo.store.optuna_internals import ScientificSlice

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.space import Space


class UnboundPruner(HpoError):
    """An hpo pruner used outside an hpo.Study: it does not know the scientific values."""


class UnfairPruner(HpoError, ValueError):
    """A pruner that cannot be made to compare within one scientific value."""

    exit_code = 2


class _ValueView(ScientificSlice):
    """The study as one scientific value's pruner sees it: that value's design trials only."""

    def __init__(self, study: optuna.Study, belongs: Callable[[FrozenTrial], bool]):
        super().__init__(study, belongs=belongs, stored=lambda states: None)

    @property
    def best_trial(self) -> FrozenTrial:  # WilcoxonPruner compares with the best trial
        done = [t for t in self.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.value is not None]
        if not done:
            raise ValueError("no complete trial of this scientific value yet")
        sign = 1 if self._study.direction == optuna.study.StudyDirection.MINIMIZE else -1
        return min(done, key=lambda t: (sign * t.value, t.number))


class PerValuePruner(BasePruner):
    """Any Optuna pruner, applied within each scientific value.

    Args:
        pruner: The Optuna pruner to apply, e.g. ``optuna.pruners.PercentilePruner(25.0)``.
            It sees, for each trial, only the trials of that trial's scientific value.

    Give it to a study (``hpo.Study(..., pruner=...)``): the study tells it how many
    scientific values there are.
    """

    def __init__(self, pruner: BasePruner):
        if isinstance(pruner, optuna.pruners.HyperbandPruner):
            raise UnfairPruner(
                "optuna.pruners.HyperbandPruner reads the whole study behind any view, so it "
                "would compare trials across scientific values; use hpo.HyperbandPruner(...) "
                "with the same arguments")
        self._pruner = pruner
        self._values: int | None = None

    def bound(self, space: Space) -> PerValuePruner:
        """A copy that knows the study's scientific values (``hpo.Study`` calls this)."""
        out = copy.deepcopy(self)
        out._values = len(space.scientific_values())
        return out

    @property
    def values(self) -> int:
        if self._values is None:
            raise UnboundPruner(
                f"{type(self).__name__} does not know the study's scientific values: give it "
                "to hpo.Study(..., pruner=...), not to an Optuna study directly")
        return self._values

    def group(self, trial: FrozenTrial) -> int:
        """The trial's scientific value, as the design's index: its slot % values."""
        return slot_of(trial) % self.values

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if is_seed_rerun(trial):
            return False
        group = self.group(trial)
        view = _ValueView(study, lambda t: not is_seed_rerun(t) and self.group(t) == group)
        return self._pruner.prune(view, trial)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._pruner!r})"


class MedianPruner(PerValuePruner):
    """Prune a trial whose best intermediate value is worse than the median of its own
    scientific value's trials at the same step (Optuna's ``MedianPruner``, per value).

    Args:
        n_startup_trials: No pruning until this many trials of the trial's scientific value
            are complete.
        n_warmup_steps: No pruning before this step.
        interval_steps: Check every this many steps after the warm-up.
        n_min_trials: Trials of the same value that must have reported at the step.
    """

    def __init__(self, n_startup_trials: int = 5, n_warmup_steps: int = 0,
                 interval_steps: int = 1, *, n_min_trials: int = 1):
        super().__init__(optuna.pruners.MedianPruner(
            n_startup_trials=n_startup_trials, n_warmup_steps=n_warmup_steps,
            interval_steps=interval_steps, n_min_trials=n_min_trials))


class SuccessiveHalvingPruner(PerValuePruner):
    """Asynchronous successive halving (ASHA) with rungs per scientific value: at each rung a
    trial goes on only if it is in the top ``1 / reduction_factor`` of its own value's trials
    that reached the rung (Optuna's ``SuccessiveHalvingPruner``, per value).

    Args:
        min_resource: Steps before the first rung; ``"auto"``: 1% of the longest complete
            trial's steps.
        reduction_factor: Keep the top 1 / this at each rung.
        min_early_stopping_rate: The first rung is at ``min_resource * reduction_factor **
            min_early_stopping_rate`` steps.
        bootstrap_count: Trials of the value that must reach a rung before any is promoted.
    """

    def __init__(self, min_resource: str | int = "auto", reduction_factor: int = 4,
                 min_early_stopping_rate: int = 0, bootstrap_count: int = 0):
        super().__init__(optuna.pruners.SuccessiveHalvingPruner(
            min_resource=min_resource, reduction_factor=reduction_factor,
            min_early_stopping_rate=min_early_stopping_rate, bootstrap_count=bootstrap_count))


class HyperbandPruner(PerValuePruner):
    """Hyperband: several successive-halving brackets, from aggressive to none, per scientific
    value. A trial's bracket follows from its pair index (the k-th trials of every value share
    it, as they share a nuisance point and a seed); within the bracket it competes only with
    its own value's trials. Brackets and their sizes are Optuna's (``HyperbandPruner``).

    Args:
        min_resource: Steps before the first rung of the most aggressive bracket.
        max_resource: A full run's steps; ``"auto"``: the longest complete trial's last step
            + 1, read once the first trial completes.
        reduction_factor: Keep the top 1 / this at each rung.
        bootstrap_count: Trials that must reach a rung before any is promoted.
    """

    def __init__(self, min_resource: int = 1, max_resource: int | Literal["auto"] = "auto",
                 reduction_factor: int = 3, bootstrap_count: int = 0):
        # Optuna's own validates the arguments; its brackets are rebuilt here per value.
        optuna.pruners.HyperbandPruner(min_resource=min_resource, max_resource=max_resource,
                                       reduction_factor=reduction_factor,
                                       bootstrap_count=bootstrap_count)
        self._settings: dict[str, Any] = {
            "min_resource": min_resource, "reduction_factor": reduction_factor,
            "bootstrap_count": bootstrap_count}
        self._max_resource = max_resource
        self._brackets: list[optuna.pruners.SuccessiveHalvingPruner] = []
        self._budgets: list[int] = []
        self._pruner = optuna.pruners.NopPruner()
        self._values = None

    def bracket(self, trial: FrozenTrial) -> int:
        """The trial's bracket, from its pair index (slot // values)."""
        n = binascii.crc32(str(slot_of(trial) // self.values).encode()) % sum(self._budgets)
        for bracket, budget in enumerate(self._budgets):
            n -= budget
            if n < 0:
                return bracket
        raise AssertionError("unreachable")

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        if is_seed_rerun(trial):
            return False
        if not self._brackets and not self._initialize(study):
            return False
        group, bracket = self.group(trial), self.bracket(trial)
        view = _ValueView(study, lambda t: not is_seed_rerun(t) and self.group(t) == group
                          and self.bracket(t) == bracket)
        return self._brackets[bracket].prune(view, trial)  # type: ignore[arg-type]

    def _initialize(self, study: optuna.Study) -> bool:
        """Optuna's bracket layout: floor(log_eta(max / min)) + 1 brackets, bracket s
        getting ceil(n * eta ** (n - 1 - s) / (n - s)) of every sum(budgets) pairs."""
        max_resource = self._max_resource
        if max_resource == "auto":
            steps = [t.last_step for t in study.get_trials(deepcopy=False,
                                                           states=(TrialState.COMPLETE,))
                     if t.last_step is not None and not is_seed_rerun(t)]
            if not steps:
                return False
            max_resource = max(steps) + 1
        eta, low = self._settings["reduction_factor"], self._settings["min_resource"]
        n = math.floor(math.log(max_resource / low, eta)) + 1
        self._budgets = [math.ceil(n * eta ** (n - 1 - s) / (n - s)) for s in range(n)]
        self._brackets = [optuna.pruners.SuccessiveHalvingPruner(
            min_resource=low, reduction_factor=eta, min_early_stopping_rate=s,
            bootstrap_count=self._settings["bootstrap_count"]) for s in range(n)]
        return True

    def __repr__(self) -> str:
        settings = ", ".join(f"{k}={v!r}" for k, v in self._settings.items())
        return f"HyperbandPruner({settings}, max_resource={self._max_resource!r})"


def per_value(pruner: BasePruner, space: Space) -> PerValuePruner:
    """The study's pruner, made fair: an hpo pruner bound to the space, or an Optuna pruner
    wrapped in :class:`PerValuePruner`."""
    if not isinstance(pruner, PerValuePruner):
        pruner = PerValuePruner(pruner)
    return pruner.bound(space)
