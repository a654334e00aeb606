"""The playbook sampler: balance, paired quasi-random design, exploit inside each value."""

from __future__ import annotations

from collections import Counter

import optuna
import pytest

from hpo import Study, choice, fixed, integer, log_uniform, nuisance, scientific, uniform
from hpo.sampling import PlaybookSampler
from hpo.worker import build_config

optuna.logging.set_verbosity(optuna.logging.WARNING)


def make_study(seed=0, phase="explore", per_value=8, objective=None):
    return Study(
        name="s", goal="g", metric="loss", seed=seed, phase=phase, trials_per_value=per_value,
        space={
            "optimizer": scientific(choice("sgd", "adam")),
            "depth": scientific(integer(1, 3)),
            "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
            "weight_decay": nuisance(log_uniform(1e-6, 1e-2)),
            "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd"}),
            "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
            "batch_size": fixed(128),
        },
        objective=objective or (lambda config, ctx: 0.0),
    )


def run_in_memory(definition, n, objective=None):
    """Plain Optuna ask/tell with our sampler: the slot is the trial number."""
    sampler = PlaybookSampler(definition.space, phase=definition.phase, seed=definition.seed)
    study = optuna.create_study(sampler=sampler)
    configs = []
    for _ in range(n):
        trial = study.ask()
        config = build_config(definition, trial)
        configs.append(dict(config))
        study.tell(trial, (objective or (lambda c: c["learning_rate"]))(config))
    return study, configs


def test_scientific_values_balanced_after_every_trial():
    definition = make_study()
    _, configs = run_in_memory(definition, 6 * 5 + 3)
    counts = Counter()
    for config in configs:
        counts[(config["optimizer"], config["depth"])] += 1
        assert max(counts.values()) - min(counts.get(k, 0) for k in
                                          [(o, d) for o in ("sgd", "adam") for d in (1, 2, 3)]) <= 1
    assert len(counts) == 6


def test_paired_design_kth_point_shared_by_every_scientific_value():
    definition = make_study(seed=7)
    _, configs = run_in_memory(definition, 6 * 4)
    for k in range(4):
        group = configs[6 * k: 6 * (k + 1)]
        # The same k-th point for every value: shared nuisance values are identical...
        assert len({(c["learning_rate"], c["weight_decay"]) for c in group}) == 1
        # ...and SGD's momentum takes the draw Adam's beta1 takes (same range here).
        momenta = {c["momentum"] for c in group if c["optimizer"] == "sgd"}
        betas = {c["beta1"] for c in group if c["optimizer"] == "adam"}
        assert momenta == betas and len(momenta) == 1
    # Different k, different point.
    assert len({c["learning_rate"] for c in configs}) == 4


def test_conditional_nuisance_only_where_it_applies():
    _, configs = run_in_memory(make_study(), 12)
    for config in configs:
        assert ("momentum" in config) == (config["optimizer"] == "sgd")
        assert ("beta1" in config) == (config["optimizer"] == "adam")
        assert config["batch_size"] == 128


def test_another_study_seed_gives_other_points_and_same_seed_the_same():
    _, a = run_in_memory(make_study(seed=1), 12)
    _, b = run_in_memory(make_study(seed=1), 12)
    _, c = run_in_memory(make_study(seed=2), 12)
    assert a == b
    assert {x["learning_rate"] for x in a}.isdisjoint({x["learning_rate"] for x in c})


def test_quasi_random_points_cover_the_range_evenly():
    # 64 Halton points in one dimension: every eighth of the (log) range gets 8 +- 2 points,
    # where independent uniform draws would often leave a bin with 3 or 14.
    definition = Study(name="s", goal="g", metric="m", objective=lambda c, x: 0.0,
                       space={"x": nuisance(uniform(0.0, 1.0))})
    _, configs = run_in_memory(definition, 64, objective=lambda c: c["x"])
    bins = Counter(min(7, int(c["x"] * 8)) for c in configs)
    assert all(6 <= bins[i] <= 10 for i in range(8)), bins


def test_no_duplicate_point_within_a_scientific_value():
    _, configs = run_in_memory(make_study(), 6 * 20)
    seen = set()
    for c in configs:
        key = tuple(sorted(c.items()))
        assert key not in seen
        seen.add(key)


def test_enqueued_trial_keeps_its_parameters():
    definition = make_study()
    sampler = PlaybookSampler(definition.space, seed=0)
    study = optuna.create_study(sampler=sampler)
    study.enqueue_trial({"optimizer": "adam", "depth": 3, "learning_rate": 0.123,
                         "weight_decay": 1e-3, "beta1": 0.9})
    config = build_config(definition, study.ask())
    assert config["learning_rate"] == 0.123 and config["beta1"] == 0.9 and config["depth"] == 3


def test_exploit_models_each_scientific_value_separately():
    """After the quasi-random start, TPE fitted to one value's trials concentrates its
    suggestions near that value's own optimum, not the other value's."""
    optima = {"sgd": 0.3, "adam": 0.003}
    definition = Study(
        name="s", goal="g", metric="loss", phase="exploit", trials_per_value=30, seed=3,
        space={"optimizer": scientific(choice("sgd", "adam")),
               "learning_rate": nuisance(log_uniform(1e-4, 1.0))},
        objective=lambda c, x: 0.0,
    )
    import math

    def loss(config):
        return abs(math.log10(config["learning_rate"]) - math.log10(optima[config["optimizer"]]))

    _, configs = run_in_memory(definition, 2 * 30, objective=loss)
    for name, optimum in optima.items():
        late = [c["learning_rate"] for c in configs[40:] if c["optimizer"] == name]
        median = sorted(late)[len(late) // 2]
        assert abs(math.log10(median) - math.log10(optimum)) < 0.5, (name, late)
    # The first 10 trials of each value are the explore design's paired points.
    assert configs[0]["learning_rate"] == configs[1]["learning_rate"]


@pytest.mark.parametrize("dist", [integer(1, 4), integer(1, 100, log=True), choice("a", "b", "c")])
def test_discrete_nuisance_values_stay_legal(dist):
    definition = Study(name="s", goal="g", metric="m", objective=lambda c, x: 0.0,
                       space={"x": nuisance(dist)})
    _, configs = run_in_memory(definition, 30, objective=lambda c: 0.0)
    values = {c["x"] for c in configs}
    legal = set(dist.values())
    assert values <= legal
    # 30 quasi-random points reach every value of a small set, and many of a large one.
    assert values == legal if len(legal) <= 4 else len(values) >= 15


def test_a_layout_draws_its_points_together_and_gets_the_same_ones():
    definition = make_study(seed=3)
    sampler = PlaybookSampler(definition.space, seed=3)
    # Consecutive runs, a gap, a lone slot far away, out of order and repeated.
    slots = [*range(40), *range(57, 90), 1000, 5, 41]
    assert sampler.planned_many(slots) == [sampler.planned(s) for s in slots]
    exploit = PlaybookSampler(definition.space, phase="exploit", seed=3)
    assert exploit.planned_many([0, 1]) == [None, None]
