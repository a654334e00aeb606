"""Boundary warnings: an optimum at the edge of a nuisance range is found, one inside is not."""

from __future__ import annotations

import math

import pytest
from analysis_studies import definition, design_study

from hpo import choice, fixed, integer, log_uniform, nuisance, scientific, uniform
from hpo.analysis import boundary_warnings, collect
from hpo.analysis.boundaries import extended
from hpo.space import Float, Int


def _bowl(lr_optimum: float, momentum_optimum: float = 0.9):
    """Loss as a bowl in log(learning rate) around a chosen optimum; 'adam' is a bit better."""
    def value(p):
        lr = (math.log10(p["learning_rate"]) - math.log10(lr_optimum)) ** 2
        other = p.get("momentum", p.get("beta1"))
        penalty = 0.0 if p["optimizer"] == "adam" else 0.05
        return lr + 10 * (other - momentum_optimum) ** 2 + penalty
    return value


def test_a_learning_rate_optimum_at_the_top_edge_is_warned_with_the_extended_range():
    d = definition()
    results = collect(d, design_study(d, _bowl(lr_optimum=3.0)))  # optimum above the range
    warnings = [w for w in boundary_warnings(results) if w.hyperparameter == "learning_rate"]
    assert {w.group for w in warnings} == {"optimizer=sgd", "optimizer=adam"}
    for w in warnings:
        assert w.edge == "high"
        assert w.best_value > 10 ** -0.4  # in the top 10% of four decades
        assert w.proposed == Float(1e-4, 10.0, log=True)  # a decade further up
        assert "learning_rate" in w.message and "log_uniform(0.0001, 10.0)" in w.message
        assert "above" in w.message


def test_an_optimum_inside_the_range_gives_no_warning():
    d = definition()
    results = collect(d, design_study(d, _bowl(lr_optimum=1e-2, momentum_optimum=0.9)))
    assert boundary_warnings(results) == []


def test_the_low_edge_is_named_and_each_scientific_value_is_judged_on_its_own():
    # Only SGD's momentum wants to go below 0.8; Adam's beta1 optimum is inside.
    d = definition()

    def value(p):
        base = (math.log10(p["learning_rate"]) + 2) ** 2
        if p["optimizer"] == "sgd":
            return base + 10 * (p["momentum"] - 0.5) ** 2
        return base + 10 * (p["beta1"] - 0.9) ** 2

    warnings = boundary_warnings(collect(d, design_study(d, value)))
    assert [(w.group, w.hyperparameter, w.edge) for w in warnings] == [
        ("optimizer=sgd", "momentum", "low")]
    assert warnings[0].proposed == Float(0.705, 0.99)  # half the width further down


@pytest.mark.parametrize("dist, side, proposed", [
    (Float(1e-4, 1.0, log=True), "low", Float(1e-5, 1.0, log=True)),
    (Float(0.8, 0.99), "high", Float(0.8, 0.999)),  # momentum-like: 1 - x shrinks tenfold
    (Float(0.0, 0.5), "low", None),  # 0 is a natural limit
    (Float(0.0, 1.0), "high", None),  # so is 1 for a fraction
    (Int(16, 64), "high", Int(16, 88)),
    (Int(1, 8, log=True), "low", None),
])
def test_extended_ranges(dist, side, proposed):
    assert extended(dist, side) == proposed


def test_a_natural_limit_says_so_instead_of_proposing_a_range():
    d = definition(space={
        "optimizer": scientific(choice("sgd", "adam")),
        "weight_decay": nuisance(uniform(0.0, 0.1)),
        "layers": nuisance(integer(1, 4)),
        "batch_size": fixed(32),
    })

    def value(p):
        return p["weight_decay"] + 0.01 * abs(p["layers"] - 2)

    warnings = boundary_warnings(collect(d, design_study(d, value)))
    assert {(w.hyperparameter, w.edge) for w in warnings} == {("weight_decay", "low")}
    assert all(w.proposed is None and "natural limit" in w.message for w in warnings)


def test_choice_nuisance_hyperparameters_are_not_judged_for_edges():
    d = definition(space={
        "optimizer": scientific(choice("sgd", "adam")),
        "schedule": nuisance(choice("constant", "cosine", "linear")),
        "learning_rate": nuisance(log_uniform(1e-3, 1.0)),
    })

    def value(p):
        return (math.log10(p["learning_rate"]) + 1.5) ** 2 + (p["schedule"] == "linear")

    assert boundary_warnings(collect(d, design_study(d, value))) == []
