"""The playbook sampler: balanced scientific values, paired quasi-random nuisance, Bayesian exploit.

Every trial has a *slot*, its position in the study's design. It is the storage-assigned
trial number, or the ``slot`` user attribute that :mod:`hpo.budget` gives each trial it lays
out (kept by retries, so a retried trial keeps its place). From the slot alone, with no
read-then-write counter that two workers could race on:

* scientific value = ``values[slot % V]``, so after n slots the counts per value differ by
  at most one, whatever the number of workers;
* nuisance point    = point ``k = slot // V`` of a scrambled Halton sequence seeded by the
  study: the k-th trial of *every* scientific value gets the same k-th point (a paired
  design), mapped onto that value's own nuisance hyperparameters. Distinct slots give
  distinct points, so no point repeats within a scientific value.

In the exploit phase, once a scientific value has ``n_startup_trials`` finished trials, its
nuisance hyperparameters come from TPE fitted to that value's trials alone: Bayesian
optimization inside each scientific value, still assigned in balance.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Container, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import TrialState

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study as OptunaStudy
    from optuna.trial import FrozenTrial

    from hpo.space import Space

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_TPE_STATES = {*_FINISHED, TrialState.RUNNING}
SLOT_ATTR = "slot"
# A seed re-run (hpo seeds) of a finished trial: same slot and point, another seed. It is an
# extra evaluation, not part of the budget.
RERUN_ATTR = "seed_rerun_of"


def slot_of(trial: FrozenTrial) -> int:
    """The trial's position in the design: its laid-out slot, else its trial number."""
    return int(trial.user_attrs.get(SLOT_ATTR, trial.number))


class PlaybookSampler(BaseSampler):
    """An Optuna sampler for one :class:`hpo.Study`'s space; see the module docstring."""

    def __init__(
        self, space: Space, *, phase: str = "explore", seed: int = 0, n_startup_trials: int = 10
    ):
        self._space = space
        self._groups = space.scientific_values()
        # Coordinates of the quasi-random point, per scientific value: the nuisance names
        # every value shares come first, then the value's own (conditional) ones, so the
        # k-th trials of SGD and Adam get the same learning rate, and SGD's momentum the
        # same draw as Adam's beta1. Sorted, so reordering a study file's lines does not
        # move the points.
        shared = sorted(n for n, hp in space.hyperparameters.items()
                        if hp.role == "nuisance" and not hp.when)
        self._coordinates = [
            shared + sorted(n for n in space.active_nuisance(v) if n not in shared)
            for v in self._groups
        ]
        self._dims = max(len(c) for c in self._coordinates)
        self._phase = phase
        self._seed = seed
        self._n_startup_trials = n_startup_trials
        self._tpe = TPESampler(seed=seed, n_startup_trials=0, multivariate=True)
        self._finished: dict[int, dict[int, FrozenTrial]] = {}  # study id -> trial id -> trial
        self._reads: dict[tuple[int, int], list] = {}  # (study id, group): trials, for one point

    # --- the design, from the slot --------------------------------------------------------

    def group_index(self, slot: int) -> int:
        return slot % len(self._groups)

    def scientific_value(self, slot: int) -> dict[str, Any]:
        return self._groups[self.group_index(slot)]

    def pair_index(self, slot: int) -> int:
        """k: this trial is the k-th of its scientific value."""
        return slot // len(self._groups)

    def nuisance_point(self, k: int) -> tuple[float, ...]:
        """The k-th point of the study's scrambled Halton sequence, in [0, 1)^D."""
        return _halton_point(self._dims, self._seed, k) if self._dims else ()

    def explore_params(self, slot: int) -> dict[str, Any]:
        """Every active hyperparameter's value for a slot in the explore design."""
        group = self.group_index(slot)
        value = self._groups[group]
        active = self._space.active_nuisance(value)
        point = dict(zip(self._coordinates[group], self.nuisance_point(self.pair_index(slot))))
        return {**value, **{n: active[n].from_unit(u) for n, u in point.items()}}

    def planned(self, slot: int) -> tuple[dict[str, Any], dict[str, BaseDistribution]] | None:
        """The slot's point and its distributions, known before any trial runs; None in the
        exploit phase, where the point depends on the results so far."""
        if self._phase == "exploit":
            return None
        params = self.explore_params(slot)
        hyperparameters = self._space.hyperparameters
        return params, {n: hyperparameters[n].distribution.to_optuna() for n in params}

    def trial_seed(self, slot: int) -> int:
        """The k-th trial of every scientific value shares a seed, as it shares a point."""
        return np_seed(self._seed, self.pair_index(slot))

    def point(self, study: OptunaStudy, trial: FrozenTrial) -> tuple[dict[str, Any], dict]:
        """Every parameter of a trial that has none yet, and their distributions: what
        Optuna's Trial would ask for one by one, in its order (fixed, relative, independent).
        """
        slot = slot_of(trial)
        value = self.scientific_value(slot)
        dists = {n: hp.distribution.to_optuna() for n, hp in self._space.hyperparameters.items()
                 if n in value or n in self._space.active_nuisance(value)}
        fixed = trial.system_attrs.get("fixed_params") or {}
        relative = self.sample_relative(study, trial, self.infer_relative_search_space(study, trial))
        explore = self.explore_params(slot)
        params = {n: fixed[n] if n in fixed else relative.get(n, explore[n]) for n in dists}
        return params, dists

    def stored_trials(self, study: OptunaStudy, states: Container[TrialState],
                      group: int) -> list | None:
        """One scientific value's finished and running trials from PostgreSQL, the finished
        ones read incrementally; None where Optuna's own read is the way (other storages,
        other states). TPE reads running trials too: its "constant liar" avoids proposing
        what another worker is trying right now."""
        backend = getattr(study._storage, "_backend", None)
        if not hasattr(backend, "tpe_trials") or not set(states) <= _TPE_STATES:
            return None
        # Choosing one point reads three times (here, TPE, TPE's constant liar): read once,
        # finished and running, and let the caller keep the states it asked for.
        key = (study._study_id, group)
        if key not in self._reads:
            known = self._finished.setdefault(study._study_id, {})
            trials = backend.tpe_trials(study._study_id, known, running=True)
            self._reads[key] = sorted((t for t in trials if self.group_index(slot_of(t)) == group),
                                      key=lambda t: t.number)
        return self._reads[key]

    # --- Optuna's sampler interface --------------------------------------------------------

    def infer_relative_search_space(
        self, study: OptunaStudy, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._phase != "exploit":
            return {}
        value = self.scientific_value(slot_of(trial))
        return {n: d.to_optuna() for n, d in self._space.active_nuisance(value).items()}

    def sample_relative(
        self, study: OptunaStudy, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        group = _ScientificSlice(study, self, self.group_index(slot_of(trial)))
        try:
            finished = group._get_trials(deepcopy=False, states=_FINISHED)
            if len(finished) < self._n_startup_trials:
                return {}  # Too few to model: the explore design's point (sample_independent).
            return self._tpe.sample_relative(group, trial, search_space)
        finally:
            self._reads.clear()  # the next point reads afresh

    def sample_independent(
        self,
        study: OptunaStudy,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        params = self.explore_params(slot_of(trial))
        if param_name not in params:
            raise KeyError(
                f"{param_name!r} is not a hyperparameter of this study's space for "
                f"{self.scientific_value(slot_of(trial))}; known: {', '.join(params)}"
            )
        return params[param_name]

    def before_trial(self, study: OptunaStudy, trial: FrozenTrial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(
        self,
        study: OptunaStudy,
        trial: FrozenTrial,
        state: TrialState,
        values: Sequence[float] | None,
    ) -> None:
        self._tpe.after_trial(study, trial, state, values)


@functools.lru_cache(maxsize=4096)
def _halton_point(dims: int, seed: int, k: int) -> tuple[float, ...]:
    # The playbook's reference: "a shifted, scrambled Halton sequence". fast_forward is O(1)
    # for Halton, so the cost of a point does not grow with the study.
    return tuple(float(x) for x in _halton(dims, seed).fast_forward(k).random(1)[0])


def _halton(dims: int, seed: int) -> Any:
    # Built once per process: scrambling draws the permutations, which costs milliseconds.
    engine = _engines.get((dims, seed))
    if engine is None:
        from scipy.stats import qmc

        engine = _engines[(dims, seed)] = qmc.Halton(d=dims, scramble=True, seed=seed)
    return engine.reset()


_engines: dict[tuple[int, int], Any] = {}


class _ScientificSlice:
    """A read-only view of a study holding only the trials of one scientific value.

    TPE reads trials through ``study._get_trials``; handing it this view fits its model to one
    scientific value's trials, which is what "nuisance optimized separately per value" means.
    """

    def __init__(self, study: OptunaStudy, sampler: PlaybookSampler, group: int):
        self._study = study
        self._sampler = sampler
        self._group = group

    def _get_trials(self, deepcopy: bool = True, states: Any = None, use_cache: bool = False) -> list:
        mine = None if states is None else self._sampler.stored_trials(self._study, states,
                                                                        self._group)
        if mine is None:
            trials = self._study._get_trials(deepcopy=False, states=states, use_cache=use_cache)
            mine = [t for t in trials if self._sampler.group_index(slot_of(t)) == self._group]
        mine = [t for t in mine if states is None or t.state in states]
        return copy.deepcopy(mine) if deepcopy else mine

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list:
        return self._get_trials(deepcopy=deepcopy, states=states)

    @property
    def trials(self) -> list:
        return self._get_trials()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._study, name)


def np_seed(*parts: int) -> int:
    """A 31-bit seed derived from integers, stable across processes and machines."""
    return int(np.random.SeedSequence(list(parts)).generate_state(1)[0] & 0x7FFF_FFFF)
