"""The playbook sampler: balanced scientific values, paired quasi-random nuisance, Bayesian exploit.

The design itself (slot -> scientific value, pair, quasi-random point, seed) is
:mod:`hpo.design`; this module makes it an Optuna sampler. In the explore phase every trial
gets its slot's point. In the exploit phase, once a scientific value has
``n_startup_trials`` finished trials, its nuisance hyperparameters come from TPE fitted to
that value's trials alone: Bayesian optimization inside each scientific value, still
assigned in balance.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any, cast

from optuna.samplers import BaseSampler, TPESampler
from optuna.trial import TrialState

from hpo import attrs
from hpo.design import SAMPLER_SETTINGS, Design, slot_of
from hpo.store.optuna_internals import ScientificSlice

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.study import Study as OptunaStudy
    from optuna.trial import FrozenTrial

    from hpo.space import Space

# How the store reads finished and running trials in one query (TrialQueue.value_trials):
# given the finished trials already known (id -> trial), the rest; None: no such read.
TrialReader = Callable[[dict[int, "FrozenTrial"]], "list[FrozenTrial] | None"]

_FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
_TPE_STATES = {*_FINISHED, TrialState.RUNNING}


class PlaybookSampler(BaseSampler):
    """An Optuna sampler for one :class:`hpo.Study`'s space; see the module docstring."""

    def __init__(
        self, space: Space, *, phase: str = "explore", seed: int = 0,
        n_startup_trials: int = SAMPLER_SETTINGS["exploit"]["n_startup_trials"],
    ):
        self.design = Design(space, seed)
        self._space = space
        self._phase = phase
        self._n_startup_trials = n_startup_trials
        self._tpe = TPESampler(seed=seed, n_startup_trials=0,
                               multivariate=SAMPLER_SETTINGS["exploit"]["multivariate"])
        # Attached when the study is opened (hpo.store): where the store can read a study's
        # trials in one query, TPE reads through it.
        self.read_trials: TrialReader | None = None
        self._finished: dict[int, FrozenTrial] = {}  # trial id -> finished trial
        self._reads: dict[int, list] = {}  # group -> its trials, for one point

    # --- the design, from the slot (hpo.design) --------------------------------------------

    def scientific_value(self, slot: int) -> dict[str, Any]:
        return self.design.scientific_value(slot)

    def explore_params(self, slot: int) -> dict[str, Any]:
        return self.design.explore_params(slot)

    def trial_seed(self, slot: int) -> int:
        return self.design.trial_seed(slot)

    def planned(self, slot: int) -> tuple[dict[str, Any], dict[str, BaseDistribution]] | None:
        """The slot's point and its distributions, known before any trial runs; None in the
        exploit phase, where the point depends on the results so far."""
        if self._phase == "exploit":
            return None
        params = self.design.explore_params(slot)
        return params, {n: self._space.distribution(n).to_optuna() for n in params}

    def planned_many(self, slots: Sequence[int]
                     ) -> list[tuple[dict[str, Any], dict[str, BaseDistribution]] | None]:
        """:meth:`planned` for many slots (a budget's layout), their points drawn together."""
        if self._phase == "exploit":
            return [None] * len(slots)
        dists: dict[str, BaseDistribution] = {}  # one object per hyperparameter, shared
        out: list[tuple[dict[str, Any], dict[str, BaseDistribution]] | None] = []
        for params in self.design.explore_params_many(slots):
            for n in params:
                if n not in dists:
                    dists[n] = self._space.distribution(n).to_optuna()
            out.append((params, {n: dists[n] for n in params}))
        return out

    def point(self, study: OptunaStudy, trial: FrozenTrial) -> tuple[dict[str, Any], dict]:
        """Every parameter of a trial that has none yet, and their distributions: what
        Optuna's Trial would ask for one by one, in its order (fixed, relative, independent).
        """
        slot = slot_of(trial)
        dists = self.design.distributions(slot)
        fixed = trial.system_attrs.get(attrs.FIXED_PARAMS) or {}
        relative = self.sample_relative(study, trial,
                                        self.infer_relative_search_space(study, trial))
        explore = self.design.explore_params(slot)
        params = {n: fixed[n] if n in fixed else relative.get(n, explore[n]) for n in dists}
        return params, dists

    def stored_trials(self, states: Collection[TrialState], group: int) -> list | None:
        """One scientific value's finished and running trials through the queue, the finished
        ones read incrementally; None where Optuna's own read is the way (a queue without a
        read of its own, other states). TPE reads running trials too: its "constant liar"
        avoids proposing what another worker is trying right now."""
        if self.read_trials is None or not set(states) <= _TPE_STATES:
            return None
        # Choosing one point reads three times (here, TPE, TPE's constant liar): read once,
        # finished and running, and let the caller keep the states it asked for.
        if group not in self._reads:
            trials = self.read_trials(self._finished)
            if trials is None:
                return None
            self._reads[group] = sorted(
                (t for t in trials if self.design.group_index(slot_of(t)) == group),
                key=lambda t: t.number)
        return self._reads[group]

    # --- Optuna's sampler interface --------------------------------------------------------

    def infer_relative_search_space(
        self, study: OptunaStudy, trial: FrozenTrial
    ) -> dict[str, BaseDistribution]:
        if self._phase != "exploit":
            return {}
        value = self.design.scientific_value(slot_of(trial))
        return {n: d.to_optuna() for n, d in self._space.active_nuisance(value).items()}

    def sample_relative(
        self, study: OptunaStudy, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        group_index = self.design.group_index(slot_of(trial))
        group = ScientificSlice(
            study, belongs=lambda t: self.design.group_index(slot_of(t)) == group_index,
            stored=lambda states: self.stored_trials(states, group_index))
        try:
            finished = group.get_trials(deepcopy=False, states=_FINISHED)
            if len(finished) < self._n_startup_trials:
                return {}  # Too few to model: the explore design's point (sample_independent).
            return self._tpe.sample_relative(cast("OptunaStudy", group), trial, search_space)
        finally:
            self._reads.clear()  # the next point reads afresh

    def sample_independent(
        self,
        study: OptunaStudy,
        trial: FrozenTrial,
        param_name: str,
        param_distribution: BaseDistribution,
    ) -> Any:
        params = self.design.explore_params(slot_of(trial))
        if param_name not in params:
            raise KeyError(
                f"{param_name!r} is not a hyperparameter of this study's space for "
                f"{self.design.scientific_value(slot_of(trial))}; known: {', '.join(params)}"
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
