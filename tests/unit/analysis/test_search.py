"""Search uncertainty: Tang et al.'s unbiased expected best of n, and what raises it."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from analysis_studies import add, definition, empty_study
from optuna.trial import TrialState

from hpo.analysis import collect
from hpo.analysis.search import expected_best, search_uncertainty, trials_to_reach


def test_expected_best_is_the_mean_best_over_every_subset_of_n():
    scores = [*np.random.default_rng(3).normal(size=7), math.inf]  # inf: an infeasible draw
    for n in range(1, len(scores) + 1):
        bests = [min(c) for c in itertools.combinations(scores, n)]
        finite = [b for b in bests if math.isfinite(b)]
        assert expected_best(scores, n) == pytest.approx(float(np.mean(finite)))
    assert expected_best(scores, len(scores)) == min(scores)  # all of them: the best found


def test_expected_best_of_only_failed_draws_is_inf():
    assert expected_best([math.inf, math.inf], 1) == math.inf


def _value(d, study, label, lrs, values, first_slot, *, pruned=0):
    for k, (lr, v) in enumerate(zip(lrs, values, strict=True)):
        params = ({"optimizer": "sgd", "learning_rate": lr, "momentum": 0.9} if label == "sgd"
                  else {"optimizer": "adam", "learning_rate": lr, "beta1": 0.9})
        add(study, d, params, v, user_attrs={"slot": first_slot + 2 * k})
    for j in range(pruned):
        add(study, d, params, state=TrialState.PRUNED,
            user_attrs={"slot": first_slot + 2 * (len(lrs) + j)})


def test_a_flat_value_is_converged_a_still_improving_one_is_not():
    d = definition()
    study = empty_study(d)
    _value(d, study, "sgd", [0.001, 0.002, 0.003, 0.004], [0.5, 0.5, 0.5, 0.5], 0)
    _value(d, study, "adam", [0.001, 0.002, 0.003, 0.004], [0.9, 0.7, 0.5, 0.3], 1)
    r = collect(d, study)
    flat, improving = (search_uncertainty(r, g) for g in r.groups)
    assert flat.amount == 0 and flat.gain == 0
    # best of 2 of [0.3, 0.5, 0.7, 0.9]: (3 * 0.3 + 2 * 0.5 + 1 * 0.7) / 6 = 0.4333
    assert improving.half == pytest.approx(0.43333, abs=1e-4)
    assert improving.amount == pytest.approx(0.13333, abs=1e-4) and not improving.edges


def test_too_few_trials_is_unknown_and_pruned_trials_count_as_draws_that_found_nothing():
    d = definition()
    study = empty_study(d)
    _value(d, study, "sgd", [0.001, 0.002, 0.003], [0.5, 0.6, 0.7], 0)
    _value(d, study, "adam", [0.001, 0.002, 0.003], [0.5, 0.6, 0.7], 1, pruned=3)
    r = collect(d, study)
    few, with_pruned = (search_uncertainty(r, g) for g in r.groups)
    assert few.amount == math.inf and few.gain is None and "too few" in few.basis
    assert with_pruned.trials == 6
    # Six draws, three of which found nothing: the best of 3 is worse than without them.
    assert with_pruned.half == pytest.approx(expected_best([0.5, 0.6, 0.7, *[math.inf] * 3], 3))
    assert trials_to_reach(few, 0.1) is None


def test_a_best_trial_at_a_range_edge_doubles_the_uncertainty():
    d = definition()
    study = empty_study(d)
    # learning_rate is log-uniform 1e-4..1: 0.6 is in its top tenth, 0.01 in the middle.
    _value(d, study, "sgd", [0.01, 0.02, 0.05, 0.6], [0.9, 0.7, 0.5, 0.3], 0)
    _value(d, study, "adam", [0.6, 0.05, 0.02, 0.01], [0.9, 0.7, 0.5, 0.3], 1)
    r = collect(d, study)
    at_edge, inside = (search_uncertainty(r, g) for g in r.groups)
    assert [w.hyperparameter for w in at_edge.edges] == ["learning_rate"]
    assert not inside.edges
    assert at_edge.amount == pytest.approx(2 * inside.amount)
    assert "edge of learning_rate: x2" in at_edge.basis
    # n ** -1: 4 trials with 0.267 to go reach 0.1 after 4 * (0.267 / 0.1 - 1) = 6.7 more.
    assert trials_to_reach(at_edge, 0.1) == 7
