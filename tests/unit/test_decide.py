"""hpo run --until-decided's rules (hpo.decide), played on in-memory studies: rounds, slots
that continue each value's sequence, re-runs, the looks, and when it stops."""

from __future__ import annotations

import math

import numpy as np
import pytest
from analysis_studies import add, definition, empty_study

from hpo.decide import (
    FIRST,
    UntilDecidedError,
    _bring_to,
    next_action,
    planned_looks,
    start_state,
)
from hpo.sampling import PlaybookSampler

NOISE = 0.01


def _value(params, seed, floors):
    """A bowl in log learning rate per optimizer (sgd best at 0.03, adam at 1e-3), seed noise."""
    lr = math.log10(params["learning_rate"])
    if params["optimizer"] == "sgd":
        base = floors[0] + 0.05 * (lr + 1.5) ** 2 + 0.2 * (params["momentum"] - 0.9) ** 2
    else:
        base = floors[1] + 0.05 * (lr + 3) ** 2 + 0.2 * (params["beta1"] - 0.9) ** 2
    return base + np.random.default_rng(seed).normal(0, NOISE)


def _play(floors, max_trials, seed=0):
    """Run the controller's actions as the workers would; (last action, study, actions)."""
    d = definition()
    study = empty_study(d)
    state = start_state(d, study, max_trials)
    sampler = PlaybookSampler(d.space, seed=d.seed)
    actions = []
    while True:
        action = next_action(d, study, state)
        actions.append(action)
        state = action.state
        study.set_user_attr("until_decided", state.to_attr())  # as hpo.decide.apply does
        if action.kind == "trials":
            for slot in action.slots:
                params = sampler.explore_params(slot)
                add(study, d, params, _value(params, 1000 * seed + slot // 2, floors),
                    user_attrs={"slot": slot, "seed": slot // 2})
        elif action.kind == "reruns":
            slot_of = {t.number: t.user_attrs["slot"] for t in study.trials}
            for r in action.reruns:
                add(study, d, r.params, _value(r.params, 10**6 + r.seed, floors),
                    user_attrs={"slot": slot_of[r.of], "seed": r.seed, "seed_rerun_of": r.of})
        else:
            return action, study, actions


def _design(study):
    return [t for t in study.trials if "seed_rerun_of" not in t.user_attrs]


def test_a_clear_winner_stops_early_and_is_named():
    action, study, _ = _play((0.10, 0.15), max_trials=64)
    assert action.state.winner == "optimizer=sgd"
    assert action.state.stopped.startswith("decided: optimizer=sgd wins")
    assert len(_design(study)) < 64


def test_a_null_study_stops_at_max_trials_with_no_winner():
    action, study, actions = _play((0.10, 0.10), max_trials=48)
    assert action.state.winner is None and action.verdict.winner is None
    assert "no winner" in action.state.stopped
    assert "48 design trials are spent" in action.state.stopped
    assert len(_design(study)) == 48
    assert action.state.looked <= action.state.looks


def test_added_trials_continue_each_values_own_sequence_and_pairing():
    _, study, actions = _play((0.10, 0.10), max_trials=48)
    d = definition()
    sampler = PlaybookSampler(d.space, seed=d.seed)
    slots = sorted(t.user_attrs["slot"] for t in _design(study))
    assert len(slots) == len(set(slots))
    for value in (0, 1):  # each value's slots are its first n: k * 2 + value for k < n
        mine = [s for s in slots if s % 2 == value]
        assert mine == [2 * k + value for k in range(len(mine))]
    for t in _design(study):  # the k-th trial has the k-th point of the design
        expected = sampler.explore_params(t.user_attrs["slot"])
        assert t.params == pytest.approx(expected)
    rounds = [a for a in actions if a.kind == "trials"]
    assert rounds[0].added == {"optimizer=sgd": FIRST, "optimizer=adam": FIRST}


def test_only_values_that_need_it_get_more_trials():
    chosen = _bring_to([8, 4, 4], [False, True, True], target=8, remaining=100)
    # Values 1 and 2 of 3, their 5th to 8th trials (k = 4..7): slots k * 3 + v.
    assert chosen == (13, 14, 16, 17, 19, 20, 22, 23)
    trimmed = _bring_to([4, 4], [True, True], target=8, remaining=3)
    assert trimmed == (8, 9, 10)  # the lowest counts first when trials run out


def test_the_planned_looks_bound_the_looks_taken():
    # 64 trials over 2 values: round 0 (16), then +8, +16, +32 (capped at 64) = 4 design
    # looks, and 2 more for the re-run doublings (5 -> 10 -> 20).
    assert planned_looks(64, 2) == 6
    assert planned_looks(16, 2) == 3
    assert planned_looks(96, 3) == 7


def test_a_cap_too_small_or_changed_is_refused():
    d = definition()
    study = empty_study(d)
    with pytest.raises(UntilDecidedError, match="too few"):
        start_state(d, study, 15)
    study.set_user_attr("until_decided", start_state(d, study, 32).to_attr())
    with pytest.raises(UntilDecidedError, match="with the same cap"):
        start_state(d, study, 40)
    assert start_state(d, study, None).max_trials == 32


def test_the_report_applies_the_runs_correction_for_its_looks():
    from hpo.analysis.analyze import analyze

    _, study, _ = _play((0.10, 0.15), max_trials=64)
    state = study.user_attrs["until_decided"]
    v = analyze(definition(), study).verdict
    assert v.looks == state["looks"] == planned_looks(64, 2)
    assert v.winner == "optimizer=sgd"
