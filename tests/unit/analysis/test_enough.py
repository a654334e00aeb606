"""Enough trials? Best-of-N by bootstrap, and whether more trials could change the answer."""

from __future__ import annotations

import numpy as np
from analysis_studies import add, definition, empty_study

from hpo.analysis import answer_could_change, collect, enough_trials, isolation_plot

SGD = {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
ADAM = {"optimizer": "adam", "learning_rate": 0.001, "beta1": 0.9}


def _study(sgd_values, adam_values):
    d = definition()
    study = empty_study(d)
    for k, (s, a) in enumerate(zip(sgd_values, adam_values, strict=True)):
        add(study, d, SGD, s, user_attrs={"slot": 2 * k})
        add(study, d, ADAM, a, user_attrs={"slot": 2 * k + 1})
    return d, study


def test_a_rare_good_region_keeps_improving_and_could_change_the_answer():
    # sgd: one excellent trial among 16 mediocre ones, so best-of-N keeps falling with N;
    # adam: every trial about as good, so its best-of-N is flat and only slightly better.
    rng = np.random.default_rng(0)
    sgd = [0.9 + 0.05 * x for x in rng.random(16)]
    sgd[5] = 0.30
    adam = [0.29 + 0.002 * x for x in rng.random(16)]
    d, study = _study(sgd, adam)
    results = collect(d, study)
    enough = {e.group: e for e in enough_trials(results)}
    s, a = enough["optimizer=sgd"], enough["optimizer=adam"]
    assert s.still_improving and not a.still_improving
    assert s.curve[0].n == 1 and s.curve[-1].n == 16
    expected = [p.expected for p in s.curve]
    # best-of-N never worsens
    assert all(x >= y - 1e-12 for x, y in zip(expected, expected[1:], strict=False))
    assert s.good == 1 and a.good >= 8
    sentence = answer_could_change(results, list(enough.values()), isolation_plot(results))
    assert sentence.startswith("More trials could still change the answer: optimizer=sgd")


def test_flat_curves_far_apart_would_not_change_the_answer():
    d, study = _study([0.80 + 0.001 * k for k in range(12)], [0.30 + 0.001 * k for k in range(12)])
    results = collect(d, study)
    enough = enough_trials(results)
    assert not any(e.still_improving for e in enough)
    sentence = answer_could_change(results, enough, isolation_plot(results))
    assert sentence.startswith("More trials are unlikely to change the answer")


def test_too_few_trials_say_so():
    d, study = _study([0.5, 0.6], [0.4, 0.3])
    results = collect(d, study)
    enough = enough_trials(results)
    assert all(e.gain is None and "too few" in e.message for e in enough)
    assert "could still change" in answer_could_change(results, enough, isolation_plot(results))


def test_a_tie_whose_leader_still_improves_could_change():
    rng = np.random.default_rng(1)
    sgd = [0.9 + 0.05 * x for x in rng.random(12)]
    sgd[3] = 0.30  # one lucky point: best-of-N still falling
    adam = [0.30] + [0.31 + 0.001 * k for k in range(11)]  # tied best, flat
    d, study = _study(sgd, adam)
    results = collect(d, study)
    enough = enough_trials(results)
    sentence = answer_could_change(results, enough, isolation_plot(results))
    assert sentence.startswith("More trials could still change the answer: optimizer=sgd shares")
