"""Infeasible fractions per scientific value, and a best learning rate next to divergence."""

from __future__ import annotations

import math

from analysis_studies import add, definition, design_study, empty_study
from optuna.trial import TrialState

from hpo.analysis import collect, infeasible_trials
from hpo.analysis.infeasible import is_learning_rate


def test_fractions_by_kind_per_scientific_value():
    d = definition()
    study = empty_study(d)
    sgd = {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    adam = {"optimizer": "adam", "learning_rate": 0.01, "beta1": 0.9}
    add(study, d, sgd, 0.5, user_attrs={"slot": 0})
    add(study, d, sgd, state=TrialState.FAIL, user_attrs={"slot": 2, "diverged": True})
    add(study, d, sgd, state=TrialState.FAIL, user_attrs={"slot": 4, "oom": True})
    add(study, d, sgd, state=TrialState.FAIL, user_attrs={"slot": 6, "error": "ValueError: x"})
    add(study, d, sgd, state=TrialState.PRUNED, user_attrs={"slot": 8})
    add(study, d, adam, 0.4, user_attrs={"slot": 1})
    add(study, d, adam, state=TrialState.RUNNING, user_attrs={"slot": 3})
    add(study, d, adam, state=TrialState.FAIL,
        user_attrs={"slot": 3, "seed_rerun_of": 1})  # not design
    rows = {r.group: r for r in infeasible_trials(collect(d, study))}
    sgd_row, adam_row = rows["optimizer=sgd"], rows["optimizer=adam"]
    assert (sgd_row.finished, sgd_row.complete, sgd_row.pruned) == (5, 1, 1)
    assert (sgd_row.diverged, sgd_row.oom, sgd_row.failed) == (1, 1, 1)
    # The error says nothing about the hyperparameters: not infeasible, not in the fraction.
    assert sgd_row.infeasible == 2 and sgd_row.fraction == 2 / 4
    assert ("2 of 4 finished trials infeasible (50%): 1 diverged, 1 out of memory "
            "(1 failed trial(s) not counted: see Failures)") in sgd_row.message
    assert (adam_row.finished, adam_row.infeasible) == (1, 0)


def test_a_best_learning_rate_next_to_divergence_is_flagged():
    # Lower learning rates are better until 0.1, where training blows up: the best trial is
    # the largest stable one, right next to the divergent ones.
    d = definition()

    def value(p):
        if p["learning_rate"] > 0.1:
            return None  # diverged
        return -math.log10(p["learning_rate"])

    rows = {r.group: r for r in infeasible_trials(collect(d, design_study(d, value)))}
    for row in rows.values():
        assert row.diverged > 0
        assert len(row.edge_notes) == 1
        note = row.edge_notes[0]
        assert "learning_rate" in note and "next higher learning_rate" in note
        assert "diverged" in note


def test_a_best_learning_rate_far_from_divergence_is_not_flagged():
    d = definition()

    def value(p):
        if p["learning_rate"] > 0.3:
            return None
        return (math.log10(p["learning_rate"]) + 3) ** 2  # best at 1e-3, far below 0.3

    rows = infeasible_trials(collect(d, design_study(d, value)))
    assert all(r.diverged > 0 and r.edge_notes == [] for r in rows)


def test_learning_rate_names():
    assert all(map(is_learning_rate, ["learning_rate", "lr", "head_lr", "base_learning_rate"]))
    assert not any(map(is_learning_rate, ["lr_decay", "weight_decay", "learning_rate_warmup"]))
