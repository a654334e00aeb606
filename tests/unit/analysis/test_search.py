"""Search uncertainty: Tang et al.'s unbiased expected best of n, and what raises it."""

from __future__ import annotations

import itertools
import math
from fractions import Fraction

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


def test_expected_best_of_thousands_of_trials_is_the_exact_weighted_mean():
    # Beyond about a thousand trials the binomial weights no longer fit in a float.
    rng = np.random.default_rng(5)
    scores = [*rng.normal(size=2400), *[math.inf] * 300]
    for n in (1, 7, 1350, 2699, 2700):
        ordered = sorted(scores)
        weights = [math.comb(len(ordered) - 1 - i, n - 1) for i in range(len(ordered))]
        pairs = [(Fraction(x), w) for x, w in zip(ordered, weights, strict=True)
                 if math.isfinite(x)]
        exact = sum(x * w for x, w in pairs) / sum(w for _, w in pairs)
        assert expected_best(scores, n) == pytest.approx(float(exact), rel=1e-12, abs=1e-12)


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


LRS = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006, 0.007, 0.008]
IMPROVING = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]


def test_a_flat_value_is_converged_a_still_improving_one_is_not():
    d = definition()
    study = empty_study(d)
    _value(d, study, "sgd", LRS, [0.5] * 8, 0)
    _value(d, study, "adam", LRS, IMPROVING, 1)
    r = collect(d, study)
    flat, improving = (search_uncertainty(r, g) for g in r.groups)
    assert flat.amount == 0 and flat.gain == 0
    assert improving.half == pytest.approx(expected_best(IMPROVING, 4))
    assert improving.amount == pytest.approx(improving.half - 0.2) and not improving.edges
    assert "from 0.28 at 4 trials to 0.2 at 8" in improving.basis  # (7*.2+...)/70


def test_too_few_trials_is_unknown_and_pruned_trials_count_as_draws_that_found_nothing():
    d = definition()
    study = empty_study(d)
    _value(d, study, "sgd", LRS[:7], IMPROVING[:7], 0)
    _value(d, study, "adam", LRS[:5], IMPROVING[:5], 1, pruned=3)
    r = collect(d, study)
    few, with_pruned = (search_uncertainty(r, g) for g in r.groups)
    assert few.amount == math.inf and few.gain is None and "too few" in few.basis
    assert with_pruned.trials == 8
    # Three of the eight draws found nothing: they score as the study's worst trial (0.9).
    assert with_pruned.half == pytest.approx(expected_best([*IMPROVING[:5], 0.9, 0.9, 0.9], 4))
    assert trials_to_reach(few, 0.1) is None


def test_a_best_trial_at_a_range_edge_doubles_the_uncertainty():
    d = definition()
    study = empty_study(d)
    # learning_rate is log-uniform 1e-4..1: 0.6 is in its top tenth, 0.01 in the middle.
    edge = [0.01, 0.02, 0.03, 0.04, 0.05, 0.1, 0.2, 0.6]
    _value(d, study, "sgd", edge, IMPROVING, 0)
    _value(d, study, "adam", edge, IMPROVING[::-1], 1)
    r = collect(d, study)
    at_edge, inside = (search_uncertainty(r, g) for g in r.groups)
    assert [w.hyperparameter for w in at_edge.edges] == ["learning_rate"]
    assert not inside.edges
    assert at_edge.amount == pytest.approx(2 * inside.amount)
    assert "edge of learning_rate: x2" in at_edge.basis
    # n ** -1: 8 trials with 0.16 to go reach 0.05 after 8 * (0.16 / 0.05 - 1) = 17.6 more.
    assert at_edge.amount == pytest.approx(0.16)
    assert trials_to_reach(at_edge, 0.05) == 18
