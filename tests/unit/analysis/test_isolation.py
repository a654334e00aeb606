"""Isolation plot: the best trial per scientific value, its bootstrap band, and slices."""

from __future__ import annotations

import optuna
import pytest
from analysis_studies import add, definition, design_study, empty_study
from optuna.trial import TrialState

from hpo import fixed, integer, log_uniform, nuisance, scientific
from hpo.analysis import collect, isolation_plot

SGD = {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
ADAM = {"optimizer": "adam", "learning_rate": 0.001, "beta1": 0.9}


def test_the_best_trial_of_each_value_with_a_band_that_contains_it():
    d = definition()
    study = empty_study(d)
    for k, v in enumerate([0.9, 0.3, 0.5, 0.7]):
        add(study, d, {**SGD, "learning_rate": 0.01 * (k + 1)}, v, user_attrs={"slot": 2 * k})
        add(study, d, {**ADAM, "learning_rate": 0.001 * (k + 1)}, v - 0.2,
            user_attrs={"slot": 2 * k + 1})
    points = {p.group.label: p for p in isolation_plot(collect(d, study))}
    sgd, adam = points["optimizer=sgd"], points["optimizer=adam"]
    assert (sgd.best.number, sgd.best.value) == (2, 0.3)
    assert adam.best.value == pytest.approx(0.1) and adam.trials == 4
    # A resample of 4 from 4 finds the best most of the time, the worst almost never.
    better, worse = sgd.band
    assert better == 0.3 and 0.3 < worse < 0.9


def test_seed_reruns_do_not_win_the_isolation_plot_or_count_as_trials():
    d = definition()
    study = empty_study(d)
    add(study, d, SGD, 0.5, user_attrs={"slot": 0})
    add(study, d, ADAM, 0.6, user_attrs={"slot": 1})
    add(study, d, ADAM, 0.1, user_attrs={"slot": 1, "seed": 9, "seed_rerun_of": 1})  # lucky seed
    points = {p.group.label: p for p in isolation_plot(collect(d, study))}
    assert points["optimizer=adam"].best.value == 0.6
    assert points["optimizer=adam"].trials == 1
    assert len(points["optimizer=adam"].group.reruns) == 1


def test_infeasible_pruned_running_and_waiting_trials_are_handled():
    d = definition()
    study = empty_study(d)
    add(study, d, SGD, 0.5, user_attrs={"slot": 0})
    add(study, d, SGD, state=TrialState.FAIL, user_attrs={"slot": 2, "diverged": True})
    add(study, d, SGD, state=TrialState.PRUNED, user_attrs={"slot": 4})
    add(study, d, ADAM, state=TrialState.RUNNING, user_attrs={"slot": 1})
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, user_attrs={"slot": 3}))  # laid out, no params yet
    results = collect(d, study)
    points = {p.group.label: p for p in isolation_plot(results)}
    assert points["optimizer=sgd"].trials == 2  # complete + infeasible; pruned was not measured
    assert points["optimizer=sgd"].band[0] == 0.5
    assert points["optimizer=adam"].best is None and points["optimizer=adam"].band is None
    # The WAITING trial's slot (3) already says it is adam's.
    assert len(next(g for g in results.groups if g.label == "optimizer=adam").trials) == 2


def test_a_scientific_integer_with_many_values_is_sliced_and_the_best_taken_per_slice():
    d = definition(space={
        "width": scientific(integer(16, 512, log=True)),
        "learning_rate": nuisance(log_uniform(1e-3, 1.0)),
        "steps": fixed(10),
    }, trials_per_value=1)
    # Wider is better, up to 256.
    study = design_study(d, lambda p: abs(p["width"] - 256) / 256 + p["learning_rate"])
    points = isolation_plot(collect(d, study))
    assert 2 <= len(points) <= 8  # slices, not 497 single values
    assert points[0].group.label.startswith("width in [16, ")
    assert points[-1].group.label.endswith(", 512]")
    assert sum(p.trials for p in points) == d.budget
    best = min((p for p in points if p.best), key=lambda p: p.best.value)
    lo, hi = best.group.value["width"]
    assert lo <= 256 <= hi


def test_a_study_without_scientific_hyperparameters_has_one_group():
    d = definition(space={"learning_rate": nuisance(log_uniform(1e-3, 1.0)),
                          "optimizer": fixed("adam")}, trials_per_value=4)
    points = isolation_plot(collect(d, design_study(d, lambda p: p["learning_rate"])))
    assert [p.group.label for p in points] == ["(all trials)"]
    assert points[0].trials == 4
