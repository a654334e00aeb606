"""Failure kinds, what counts as a metric, and the design's identity: pure, no storage."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from optuna.trial import TrialState, create_trial

from hpo import (
    SpaceError,
    Study,
    choice,
    failures,
    fixed,
    integer,
    log_uniform,
    nuisance,
    scientific,
)
from hpo.counts import failed_of
from hpo.tables import kinds_line
from hpo.tally import Counts, failed_slots, tally
from hpo.worker import _not_a_number


def _definition(**overrides):
    space = overrides.pop("space", {
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "batch_size": fixed(64),
    })
    return Study(name="identity-v1", goal="g", metric="loss", space=space,
                 objective=lambda config, ctx: 0.0, trials_per_value=2, **overrides)


def _trial(number, state=TrialState.COMPLETE, **user_attrs):
    trial = create_trial(state=state, value=0.5 if state == TrialState.COMPLETE else None,
                         user_attrs={"slot": number, **user_attrs})
    trial.number = number
    return trial


# --- kinds ---------------------------------------------------------------------------------


def test_every_fail_has_a_kind_and_older_trials_are_read_by_their_flags():
    assert failures.kind_of(_trial(0)) is None
    assert failures.kind_of(_trial(1, TrialState.FAIL, failure_kind="timeout")) == "timeout"
    # Written before kinds existed: the oom / diverged flags, the reaper's message.
    assert failures.kind_of(_trial(2, TrialState.FAIL, oom=True)) == "oom"
    assert failures.kind_of(_trial(3, TrialState.FAIL, diverged=True)) == "diverged"
    assert failures.kind_of(_trial(4, TrialState.FAIL, error="worker died (h pid 1); "
                                                             "retried")) == "infrastructure"
    assert failures.kind_of(_trial(5, TrialState.FAIL, error="ValueError: x")) == "error"
    assert failures.is_infeasible(_trial(6, TrialState.FAIL, failure_kind="diverged"))
    assert not failures.is_infeasible(_trial(7, TrialState.FAIL, failure_kind="error"))
    assert failures.is_failure(_trial(8, TrialState.FAIL, failure_kind="infrastructure"))


def test_counts_keep_infeasible_apart_from_failed_and_list_the_failed_trials():
    trials = [_trial(0), _trial(1, TrialState.FAIL, failure_kind="diverged"),
              _trial(2, TrialState.FAIL, failure_kind="oom"),
              _trial(3, TrialState.FAIL, failure_kind="error"),
              _trial(4, TrialState.FAIL, failure_kind="timeout"),
              _trial(5, TrialState.FAIL, failure_kind="error")]
    sgd, adam = tally(_definition(), trials)
    assert sgd.counts == Counts(complete=1, oom=1, timeout=1)
    assert adam.counts == Counts(diverged=1, error=2)
    assert (adam.counts.infeasible, adam.counts.failed, adam.counts.fail) == (1, 2, 3)
    assert [s.final.number for s in failed_slots((sgd, adam))] == [3, 4, 5]
    assert kinds_line(failed_of((sgd, adam))) == ("infeasible: 1 diverged, 1 oom; "
                                       "failed: 2 error (#3, #5), 1 timeout (#4)")
    assert kinds_line(failed_of(tally(_definition(), [_trial(0)]))) is None


# --- a metric is a real number -------------------------------------------------------------


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.25), np.float64(2.0), np.int64(3),
                                   math.nan, math.inf])
def test_real_numbers_are_metrics(value):
    assert _not_a_number(value, "loss") is None  # NaN and inf: diverged, decided later


@pytest.mark.parametrize("value, hint", [
    ("0.5", "not its text"), (True, "not a truth value"), (None, "forget to return"),
    (np.array([0.5]), ".item()"), ([0.5], ""), (np.bool_(True), "")])
def test_anything_else_is_an_error_that_says_what_was_returned(value, hint):
    problem = _not_a_number(value, "loss")
    assert problem.startswith(f"objective returned {value!r} ({type(value).__name__}); it must "
                              "return the loss as a number (int or float)")
    assert hint in problem


# --- definition-time holes -----------------------------------------------------------------


@pytest.mark.parametrize("value, kind", [
    (object(), "object"), (lambda x: x, "function"), (SpaceError, "type"),
    ({"layers": [64, object()]}, "object"), ({1: "a"}, "int")])
def test_fixed_values_must_be_json(value, kind):
    with pytest.raises(SpaceError) as raised:
        _definition(space={"learning_rate": nuisance(log_uniform(1e-4, 1.0)),
                           "thing": fixed(value)})
    message = str(raised.value)
    assert message.startswith("thing: fixed() values are recorded with every result")
    assert f"of type {kind};" in message and "\n" not in message


def test_plain_fixed_values_are_fine_and_the_whole_design_serializes():
    d = _definition(space={"learning_rate": nuisance(log_uniform(1e-4, 1.0)),
                           "layers": fixed([64, 32]), "act": fixed({"name": "relu"}),
                           "none": fixed(None), "ratio": fixed(0.5)})
    json.dumps(d.user_attrs(), allow_nan=False)


@pytest.mark.parametrize("bad", [0, -1, True, "5", math.inf, math.nan])
def test_trial_timeout_must_be_positive_seconds(bad):
    with pytest.raises(SpaceError, match="Study trial_timeout: got"):
        _definition(trial_timeout=bad)
    assert _definition(trial_timeout=5).trial_timeout == 5.0
    assert _definition().trial_timeout is None


# --- the design's identity -----------------------------------------------------------------


def _stored(d: Study) -> dict:
    return json.loads(json.dumps(d.user_attrs()))  # as storage gives it back


def test_the_same_design_has_the_same_fingerprint_whatever_else_changes():
    d = _definition()
    same = Study(name="identity-v1", goal="another goal", metric="loss", space=d.space,
                 objective=lambda c, x: 1.0, trials_per_value=50, trial_timeout=60)
    assert same.fingerprint() == d.fingerprint()
    assert same.changes_from(_stored(d)) == []


@pytest.mark.parametrize("changed, phrase", [
    (dict(seed=1), "a different seed (0 in storage, 1 now)"),
    (dict(phase="exploit"), "a different phase ('explore' in storage, 'exploit' now)"),
    (dict(space={"optimizer": scientific(choice("adam", "sgd")),
                 "learning_rate": nuisance(log_uniform(1e-4, 1.0)), "batch_size": fixed(64)}),
     "a different search space (optimizer: scientific(choice('sgd', 'adam')) in storage, "
     "scientific(choice('adam', 'sgd')) now)"),
    (dict(space={"optimizer": scientific(choice("sgd", "adam")),
                 "learning_rate": nuisance(log_uniform(1e-4, 1.0)), "batch_size": fixed(128)}),
     "a different search space (batch_size: fixed(64) in storage, fixed(128) now)"),
    (dict(space={"optimizer": scientific(choice("sgd", "adam")),
                 "learning_rate": nuisance(log_uniform(1e-4, 1.0))}),
     "a different search space (batch_size removed)"),
])
def test_a_changed_design_names_what_changed(changed, phrase):
    d = _definition()
    new = _definition(**changed)
    assert new.fingerprint() != d.fingerprint()
    assert new.changes_from(_stored(d)) == [phrase]


def test_the_order_of_two_scientific_hyperparameters_is_part_of_the_design():
    a = {"optimizer": scientific(choice("sgd", "adam")), "depth": scientific(integer(1, 2)),
         "learning_rate": nuisance(log_uniform(1e-4, 1.0))}
    b = {"depth": a["depth"], "optimizer": a["optimizer"], "learning_rate": a["learning_rate"]}
    first, second = _definition(space=a), _definition(space=b)
    # The same hyperparameters, but slot s gets another value: values[s % 4] differ.
    assert first.space.scientific_values() != second.space.scientific_values()
    (change,) = second.changes_from(_stored(first))
    assert change.startswith("the scientific values in another order "
                             "([optimizer=sgd, depth=1, optimizer=sgd, depth=2, ")


def test_sampler_settings_are_part_of_the_design(monkeypatch):
    d = _definition(phase="exploit")
    stored = _stored(d)
    from hpo import design

    monkeypatch.setitem(design.SAMPLER_SETTINGS, "exploit",
                        {**design.SAMPLER_SETTINGS["exploit"], "n_startup_trials": 20})
    (change,) = d.changes_from(stored)
    assert change.startswith("different sampler settings (") and "this hpo samples" in change


def test_a_study_stored_before_the_design_fingerprint_is_compared_by_space_seed_and_phase():
    d = _definition()
    legacy = {k: v for k, v in _stored(d).items()
              if k not in ("design", "design_fingerprint")}
    assert d.changes_from(legacy) == []
    assert _definition(seed=3).changes_from(legacy) == ["a different seed (0 in storage, 3 now)"]
    assert _definition(seed=3).changes_from({}) is None  # no design recorded at all
