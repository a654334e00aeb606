"""hpo's pruners compare a trial only with trials of its own scientific value."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

import hpo
from hpo import SpaceError, Study, choice, nuisance, scientific, uniform
from hpo.pruners import UnboundPruner

optuna.logging.set_verbosity(optuna.logging.WARNING)

SPACE = {"optimizer": scientific(choice("sgd", "adam")), "x": nuisance(uniform(0.0, 1.0))}
STEPS = 10


def _definition(pruner):
    return Study(name="prune-v1", goal="Is pruning fair?", metric="loss", space=SPACE,
                 objective=lambda config, ctx: 0.0, pruner=pruner)


def _curve(slot, step):
    """sgd (even slots) starts slow and ends well; adam (odd slots) starts fast."""
    quality = ((slot * 7919) % 13) / 13  # a fixed, shuffled order of good and bad trials
    if slot % 2 == 0:
        return 0.2 + 0.1 * quality + 0.7 * (1 - step / STEPS) ** 3 + 0.3
    return 0.3 + 0.1 * quality + 0.1 * (1 - step / STEPS)


def _run(pruner, slots):
    """Run the slots in order through an in-memory study; {slot: step pruned at or None}."""
    study = optuna.create_study(pruner=pruner)
    pruned = {}
    for slot in slots:
        study.enqueue_trial({"optimizer": ("sgd", "adam")[slot % 2], "x": 0.5},
                            user_attrs={"slot": slot})
        trial = study.ask()
        trial.suggest_categorical("optimizer", ["sgd", "adam"])
        trial.suggest_float("x", 0.0, 1.0)
        pruned[slot] = None
        for step in range(STEPS):
            trial.report(_curve(slot, step), step)
            if trial.should_prune():
                pruned[slot] = step
                study.tell(trial, state=TrialState.PRUNED)
                break
        else:
            study.tell(trial, _curve(slot, STEPS))
    return pruned


FAIR = {
    "median": lambda: hpo.MedianPruner(n_startup_trials=2),
    "successive halving": lambda: hpo.SuccessiveHalvingPruner(min_resource=1,
                                                              reduction_factor=2),
    "hyperband": lambda: hpo.HyperbandPruner(min_resource=1, max_resource=STEPS,
                                             reduction_factor=2),
    "any optuna pruner": lambda: optuna.pruners.PercentilePruner(50.0, n_startup_trials=2),
}


@pytest.mark.parametrize("name", FAIR)
def test_a_trial_of_one_value_is_never_pruned_because_of_another_values_curves(name):
    sgd = list(range(0, 40, 2))
    pruner = _definition(FAIR[name]()).pruner
    alone = _run(pruner, sgd)
    together = _run(_definition(FAIR[name]()).pruner, range(40))
    # Exactly the same decisions for every sgd trial, with or without adam's fast starts.
    assert {s: together[s] for s in sgd} == alone
    assert any(step is not None for step in alone.values())  # it does prune, within sgd


def test_optunas_own_pruner_given_directly_prunes_the_slow_starter_against_the_other():
    sgd = list(range(0, 40, 2))
    alone = _run(optuna.pruners.MedianPruner(n_startup_trials=2), sgd)
    together = _run(optuna.pruners.MedianPruner(n_startup_trials=2), range(40))
    assert sum(together[s] is not None for s in sgd) > sum(v is not None for v in alone.values())


def test_a_seed_rerun_is_never_pruned():
    pruner = _definition(hpo.MedianPruner(n_startup_trials=1)).pruner
    study = optuna.create_study(pruner=pruner)
    for slot, value in ((0, 0.1), (2, 0.1)):
        study.add_trial(optuna.trial.create_trial(
            value=value, params={"optimizer": "sgd"},
            distributions={"optimizer": optuna.distributions.CategoricalDistribution(
                ["sgd", "adam"])},
            user_attrs={"slot": slot}, intermediate_values={0: value}))
    frozen = optuna.trial.create_trial(state=TrialState.RUNNING, params={"optimizer": "sgd"},
                                       distributions=study.trials[0].distributions,
                                       intermediate_values={0: 5.0},
                                       user_attrs={"slot": 0, "seed_rerun_of": 0})
    assert not pruner.prune(study, frozen)
    plain = optuna.trial.create_trial(state=TrialState.RUNNING, params={"optimizer": "sgd"},
                                      distributions=study.trials[0].distributions,
                                      intermediate_values={0: 5.0}, user_attrs={"slot": 4})
    assert pruner.prune(study, plain)


def test_a_pruner_must_be_given_to_a_study_and_optunas_hyperband_is_refused():
    with pytest.raises(UnboundPruner, match="give it to hpo.Study"):
        hpo.MedianPruner().prune(optuna.create_study(), optuna.trial.create_trial(value=1.0))
    with pytest.raises(SpaceError, match="use hpo.HyperbandPruner"):
        _definition(optuna.pruners.HyperbandPruner())
    assert isinstance(_definition(optuna.pruners.MedianPruner()).pruner, hpo.PerValuePruner)
    assert "PerValuePruner" in repr(_definition(optuna.pruners.MedianPruner()).pruner)
