"""Seed re-runs: enqueued with the same params and new seeds, topped up, kept out of the design."""

from __future__ import annotations

import pytest
from analysis_studies import add, definition, empty_study
from optuna.trial import TrialState

from hpo.analysis import collect, enqueue_seed_reruns, isolation_plot
from hpo.analysis.seeds import NothingToRerun


def _study():
    d = definition()
    study = empty_study(d)
    for k, (s, a) in enumerate([(0.5, 0.4), (0.3, 0.6), (0.7, 0.2)]):
        add(study, d, {"optimizer": "sgd", "learning_rate": 0.01 * (k + 1), "momentum": 0.9}, s,
            user_attrs={"slot": 2 * k, "seed": 100 + k})
        add(study, d, {"optimizer": "adam", "learning_rate": 0.001 * (k + 1), "beta1": 0.9}, a,
            user_attrs={"slot": 2 * k + 1, "seed": 100 + k})
    return d, study


def test_the_best_trial_of_each_value_is_enqueued_with_its_params_slot_and_new_seeds():
    d, study = _study()
    added = enqueue_seed_reruns(d, study, top=1, repeats=3)
    assert sorted({r.of for r in added}) == [2, 5]  # sgd's best is #2 (0.3), adam's #5 (0.2)
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 6
    by_number = {t.number: t for t in study.trials}
    seeds = set()
    for t in waiting:
        original = by_number[t.user_attrs["seed_rerun_of"]]
        assert t.user_attrs["slot"] == original.user_attrs["slot"]
        # the worker's suggest() returns these
        assert t.system_attrs["fixed_params"] == original.params
        assert t.user_attrs["seed"] != original.user_attrs["seed"]
        seeds.add(t.user_attrs["seed"])
    assert len(seeds) == 6


def test_asking_again_tops_up_instead_of_doubling():
    d, study = _study()
    enqueue_seed_reruns(d, study, top=1, repeats=3)
    assert enqueue_seed_reruns(d, study, top=1, repeats=3) == []
    more = enqueue_seed_reruns(d, study, top=2, repeats=4)
    # Two more trials (#0 and #1) get 4 each; the two already done get one more each.
    assert sorted(r.of for r in more) == [0] * 4 + [1] * 4 + [2, 5]
    rerun_seeds = {t.user_attrs["seed"] for t in study.trials if "seed_rerun_of" in t.user_attrs}
    assert len(rerun_seeds) == 16


def test_reruns_are_kept_out_of_the_design_even_when_they_win():
    d, study = _study()
    enqueue_seed_reruns(d, study, top=1, repeats=2)
    # A re-run of adam's best that got a lucky seed.
    lucky = {"optimizer": "adam", "learning_rate": 0.003, "beta1": 0.9}
    add(study, d, lucky, 0.01, user_attrs={"slot": 5, "seed": 1, "seed_rerun_of": 5})
    results = collect(d, study)
    adam = next(g for g in results.groups if g.label == "optimizer=adam")
    assert len(adam.trials) == 3 and len(adam.reruns) == 3  # two waiting, one complete
    point = next(p for p in isolation_plot(results) if p.group is adam)
    assert point.best.value == 0.2


def test_a_study_without_complete_trials_has_nothing_to_rerun():
    d = definition()
    study = empty_study(d)
    add(study, d, {"optimizer": "sgd", "learning_rate": 0.1, "momentum": 0.9},
        state=TrialState.FAIL, user_attrs={"slot": 0})
    with pytest.raises(NothingToRerun, match="no complete trial"):
        enqueue_seed_reruns(d, study)
    assert len(study.trials) == 1


def test_a_seed_rerun_keeps_its_own_checkpoints_apart_from_its_original(tmp_path):
    # Same slot, but a re-run must not resume (or delete) the original's checkpoints, nor a
    # sibling re-run's; a retry of the re-run, with the same attributes, finds its own.
    from types import SimpleNamespace

    from hpo.context import Context

    def folder(**attrs):
        trial = SimpleNamespace(number=len(attrs), user_attrs=attrs)
        return Context(trial, seed=0, checkpoint_root=tmp_path, study_name="s").checkpoint_dir

    original = folder(slot=3, seed=11)
    rerun = folder(slot=3, seed=12, seed_rerun_of=3)
    sibling = folder(slot=3, seed=13, seed_rerun_of=3)
    assert len({original, rerun, sibling}) == 3
    assert folder(slot=3, seed=12, seed_rerun_of=3) == rerun
    assert folder(slot=3, seed=99) == original  # a retry of the original: still slot 3's
