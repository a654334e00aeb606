"""Studies with known answers, built trial by trial, for the analysis tests.

Trials are placed where the real design would put them (the playbook sampler's quasi-random
points, slot by slot), with values from a formula whose optimum the test chooses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.trial import TrialState, create_trial

from hpo import Study, choice, fixed, log_uniform, nuisance, scientific, uniform
from hpo.sampling import PlaybookSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _objective(config, ctx):  # never called: these studies are built, not run
    raise AssertionError("not run")


def definition(name: str = "analysis-v1", *, direction: str = "minimize", space: dict | None = None,
               trials_per_value: int = 16) -> Study:
    return Study(
        name=name,
        goal="Which optimizer is better, on a formula with a known optimum?",
        metric="loss",
        direction=direction,
        space=space or {
            "optimizer": scientific(choice("sgd", "adam")),
            "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
            "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd"}),
            "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
            "max_train_steps": fixed(1000),
        },
        objective=_objective,
        trials_per_value=trials_per_value,
    )


def empty_study(d: Study, storage: Any = None) -> optuna.Study:
    study = optuna.create_study(study_name=d.name, direction=d.direction, storage=storage)
    for key, value in d.user_attrs().items():
        study.set_user_attr(key, value)
    return study


def distributions(d: Study, params: dict) -> dict:
    return {n: d.space.hyperparameters[n].distribution.to_optuna() for n in params}


def add(study: optuna.Study, d: Study, params: dict, value: float | None = None, *,
        state: TrialState = TrialState.COMPLETE, user_attrs: dict | None = None,
        intermediate: dict | None = None) -> None:
    study.add_trial(create_trial(
        state=state, value=value if state == TrialState.COMPLETE else None, params=params,
        distributions=distributions(d, params), user_attrs=user_attrs or {},
        intermediate_values=intermediate,
    ))


def design_study(d: Study, value: Callable[[dict], float | None], *, slots: int | None = None,
                 storage: Any = None) -> optuna.Study:
    """A study whose slot-th trial has the explore design's params and ``value(params)``.

    ``value`` returning None makes the trial infeasible (FAIL, user attribute diverged).
    """
    study = empty_study(d, storage)
    sampler = PlaybookSampler(d.space, phase="explore", seed=d.seed)
    for slot in range(d.budget if slots is None else slots):
        params = sampler.explore_params(slot)
        v = value(params)
        if v is None:
            add(study, d, params, state=TrialState.FAIL,
                user_attrs={"slot": slot, "diverged": True, "error": "diverged: loss is nan"})
        else:
            add(study, d, params, v, user_attrs={"slot": slot, "seed": slot})
    return study
