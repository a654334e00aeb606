"""The verdict names a winner only when the gap beats the run-to-run variance of seed re-runs."""

from __future__ import annotations

from analysis_studies import add, definition, empty_study
from optuna.trial import TrialState

from hpo.analysis import collect, verdict

SGD = {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
ADAM = {"optimizer": "adam", "learning_rate": 0.001, "beta1": 0.9}


def _study(sgd_best, adam_best, *, sgd_reruns=(), adam_reruns=(), direction="minimize"):
    """Two values, four design trials each; re-runs of each value's best trial."""
    d = definition(direction=direction)
    study = empty_study(d)
    worse = 1 if direction == "minimize" else -1
    for k in range(4):
        add(study, d, {**SGD, "learning_rate": 0.01 * (k + 1)}, sgd_best + worse * 0.1 * k,
            user_attrs={"slot": 2 * k})
        add(study, d, {**ADAM, "learning_rate": 0.001 * (k + 1)}, adam_best + worse * 0.1 * k,
            user_attrs={"slot": 2 * k + 1})
    for of, params, values in ((0, SGD, sgd_reruns), (1, ADAM, adam_reruns)):
        for i, v in enumerate(values):
            add(study, d, params, v, user_attrs={"slot": of, "seed": 1000 + i, "seed_rerun_of": of})
    return d, study


def test_no_winner_when_the_gap_is_inside_the_seed_variance():
    # adam's best (0.50) beats sgd's (0.52) by 0.02, but re-runs of the same configuration
    # spread by about 0.03: the gap is noise.
    d, study = _study(0.52, 0.50, sgd_reruns=(0.55, 0.50, 0.53, 0.57, 0.49),
                      adam_reruns=(0.51, 0.56, 0.50, 0.54, 0.49))
    v = verdict(collect(d, study))
    assert v.winner is None
    assert v.noise is not None and 0.02 < v.noise < 0.05
    assert v.gap < 2 * v.noise
    assert "No winner" in v.text and "within the noise" in v.text
    assert "wins" not in v.text


def test_a_winner_is_named_when_the_gap_exceeds_the_seed_variance():
    d, study = _study(0.80, 0.50, sgd_reruns=(0.81, 0.80, 0.82, 0.79, 0.80),
                      adam_reruns=(0.51, 0.50, 0.49, 0.52, 0.50))
    v = verdict(collect(d, study))
    assert v.winner == "optimizer=adam"
    assert abs(v.gap - 0.30) < 0.01  # the means of the re-runs: 0.804 vs 0.504
    assert "**optimizer=adam wins** by 0.3" in v.text
    assert "mean of 5 seed re-runs of trial #1" in v.text


def test_without_seed_reruns_it_says_plainly_that_the_variance_is_unmeasured():
    d, study = _study(0.80, 0.50)  # a large gap, but nobody knows the noise
    v = verdict(collect(d, study), study_file="studies/x.py")
    assert v.winner is None and v.leader == "optimizer=adam" and v.noise is None
    assert "not measured" in v.text
    assert "hpo seeds studies/x.py --top 1 --repeats 5" in v.text


def test_one_rerun_is_too_few_to_measure_the_variance():
    d, study = _study(0.80, 0.50, adam_reruns=(0.51,))
    v = verdict(collect(d, study))
    assert v.winner is None and v.noise is None
    assert "too few" in v.text


def test_a_maximized_metric_ranks_the_other_way():
    d, study = _study(0.80, 0.50, sgd_reruns=(0.81, 0.80, 0.82), adam_reruns=(0.51, 0.50, 0.49),
                      direction="maximize")
    assert verdict(collect(d, study)).winner == "optimizer=sgd"


def test_failed_reruns_and_running_trials_do_not_break_the_verdict():
    d, study = _study(0.52, 0.50, adam_reruns=(0.51, 0.53, 0.52))
    add(study, d, ADAM, state=TrialState.FAIL,
        user_attrs={"slot": 1, "seed_rerun_of": 1, "seed": 7})
    add(study, d, SGD, state=TrialState.RUNNING, user_attrs={"slot": 8})
    v = verdict(collect(d, study))
    assert v.reruns == 3  # the failed one has no value to count
    assert v.winner is None


def test_nothing_to_compare_with_a_single_scientific_value_done():
    d = definition()
    study = empty_study(d)
    add(study, d, SGD, 0.5, user_attrs={"slot": 0})
    add(study, d, ADAM, state=TrialState.FAIL, user_attrs={"slot": 1})
    v = verdict(collect(d, study))
    assert v.winner is None and "nothing to compare" in v.text
