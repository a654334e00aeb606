"""The study-definition rules: every mistake fails when the study is defined, in one line.

Each rule's test checks that the message names the hyperparameter (or field), echoes the
value given and says what is allowed, and that it is a single line the CLI can print as is.
"""

from __future__ import annotations

import math
import re
import warnings
from collections import Counter

import optuna
import optuna.distributions as od
import pytest

from hpo import (
    SpaceError,
    SpaceWarning,
    Study,
    choice,
    fixed,
    integer,
    log_uniform,
    nuisance,
    scientific,
    uniform,
)
from hpo.pruners import PerValuePruner
from hpo.space import Hyperparameter, Space


def _pattern(*fragments: str) -> str:
    """A regex matching the fragments, literally and in this order."""
    return ".*".join(re.escape(f) for f in fragments)


def _assert_one_line(error: BaseException) -> None:
    message = str(error)
    assert message.strip(), "empty error message"
    assert "\n" not in message and "\r" not in message, f"multi-line message: {message!r}"


def rejects(space, *fragments: str) -> SpaceError:
    """Space(space) raises a one-line SpaceError containing the fragments in order."""
    with pytest.raises(SpaceError, match=_pattern(*fragments)) as info:
        Space(space)
    _assert_one_line(info.value)
    return info.value


def objective(config, ctx):
    return 0.0


def make_study(**overrides) -> Study:
    fields = dict(
        name="digits-optimizer-v1",
        goal="Does Adam beat SGD with momentum?",
        metric="val_error",
        direction="minimize",
        space={
            "optimizer": scientific(choice("sgd", "adam")),
            "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        },
        objective=objective,
        trials_per_value=4,
        phase="explore",
        seed=0,
    )
    fields.update(overrides)
    return Study(**fields)


# --- rules: the space as a whole -----------------------------------------------------------


@pytest.mark.parametrize("empty", [{}, []], ids=["dict", "list"])
def test_empty_space(empty):
    rejects(empty, "space is empty", "at least one scientific or nuisance hyperparameter")


def test_only_fixed_hyperparameters():
    rejects(
        {"batch_size": fixed(128), "epochs": fixed(10)},
        "only fixed hyperparameters (batch_size, epochs)",
        "at least one scientific or nuisance hyperparameter",
    )


def test_one_nuisance_is_enough():
    space = Space({"learning_rate": nuisance(log_uniform(1e-4, 1.0)), "epochs": fixed(10)})
    assert list(space.nuisance) == ["learning_rate"]
    assert space.fixed == {"epochs": 10}


def test_duplicate_name_in_list_of_pairs():
    rejects(
        [
            ("optimizer", scientific(choice("sgd", "adam"))),
            ("learning_rate", nuisance(log_uniform(1e-4, 1.0))),
            ("learning_rate", nuisance(log_uniform(1e-5, 1e-1))),
        ],
        "learning_rate: defined twice in the space",
        "each name must be unique",
    )


def test_list_of_pairs_keeps_definition_order():
    space = Space([
        ("depth", scientific(integer(2, 3))),
        ("optimizer", scientific(choice("sgd", "adam"))),
    ])
    assert list(space.hyperparameters) == ["depth", "optimizer"]


@pytest.mark.parametrize(
    "space, fragments",
    [
        ({"learning rate": nuisance(uniform(0, 1))}, ("identifiers", "got 'learning rate'")),
        ({3: nuisance(uniform(0, 1))}, ("identifiers", "got 3")),
        ([("lr", nuisance(uniform(0, 1)), "extra")], ("(name, role) pairs", "'extra'")),
    ],
    ids=["space-in-name", "int-name", "triple"],
)
def test_bad_names_and_entries(space, fragments):
    rejects(space, *fragments)


# --- rules: ranges -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, fragments",
    [
        (nuisance(uniform(1.0, 0.001)), ("lr: low <= high must hold", "low=1.0, high=0.001")),
        (nuisance(log_uniform(1.0, 1e-4)), ("lr: low <= high must hold", "low=1.0, high=0.0001")),
        (nuisance(integer(5, 2)), ("lr: low <= high must hold", "low=5, high=2")),
        (scientific(integer(8, 4)), ("lr: low <= high must hold", "low=8, high=4")),
    ],
    ids=["uniform", "log_uniform", "integer", "scientific-integer"],
)
def test_low_greater_than_high(spec, fragments):
    rejects({"lr": spec}, *fragments)


def test_low_equal_high_is_allowed():
    space = Space({"lr": nuisance(uniform(0.1, 0.1)), "depth": nuisance(integer(3, 3))})
    assert space.nuisance["lr"].from_unit(0.7) == 0.1
    assert space.nuisance["depth"].from_unit(0.7) == 3


@pytest.mark.parametrize(
    "spec, fragments",
    [
        (log_uniform(0, 1.0), ("lr:", "log-scale range needs low > 0", "got low=0")),
        (log_uniform(-1e-3, 1.0), ("lr:", "log-scale range needs low > 0", "got low=-0.001")),
        (integer(0, 8, log=True), ("lr:", "log-scale range needs low >= 1", "got low=0")),
        (integer(-2, 8, log=True), ("lr:", "log-scale range needs low >= 1", "got low=-2")),
    ],
    ids=["log_uniform-zero", "log_uniform-negative", "log-integer-zero", "log-integer-negative"],
)
def test_log_scale_needs_positive_low(spec, fragments):
    rejects({"lr": nuisance(spec)}, *fragments)


@pytest.mark.parametrize(
    "spec, given",
    [
        (integer(1.5, 3), "low=1.5"),
        (integer(1, 3.0), "high=3.0"),
        (integer(True, 3), "low=True"),
        (integer(0, False), "high=False"),
        (integer("1", 3), "low='1'"),
    ],
    ids=["float-low", "float-high", "bool-low", "bool-high", "str-low"],
)
@pytest.mark.parametrize("role", [scientific, nuisance])
def test_integer_bounds_must_be_integers(spec, given, role):
    rejects({"depth": role(spec)}, "depth: integer bounds must be integers", given, "uniform()")


@pytest.mark.parametrize(
    "spec, given",
    [(uniform("0", 1), "low must be a number, got '0'"),
     (uniform(0, float("nan")), "high must be a number, got nan"),
     (uniform(True, 2), "low must be a number, got True")],
    ids=["str", "nan", "bool"],
)
def test_float_bounds_must_be_numbers(spec, given):
    rejects({"dropout": nuisance(spec)}, f"dropout: {given}")


# --- rules: choices ------------------------------------------------------------------------


@pytest.mark.parametrize("role", [scientific, nuisance])
def test_empty_choice(role):
    rejects({"optimizer": role(choice())}, "optimizer: choice() needs at least one value",
            "got none")


@pytest.mark.parametrize(
    "values, twice",
    [(("sgd", "adam", "sgd"), "'sgd'"), ((1, 2, 1), "1"), ((True, False, True), "True"),
     ((None, None), "None")],
    ids=["str", "int", "bool", "none"],
)
def test_duplicate_choices(values, twice):
    rejects({"optimizer": scientific(choice(*values))}, "optimizer: choice values must be distinct",
            f"got {twice} twice in {list(values)!r}", "remove the duplicate")


@pytest.mark.parametrize("values, a, b", [((1, True), "1", "True"), ((0, False), "0", "False"),
                                          ((True, 1, 1.5), "True", "1"), ((2, 2.0), "2", "2.0")])
def test_equal_but_differently_typed_values_are_refused(values, a, b):
    # Optuna would store them as one choice, merging two scientific groups in storage.
    rejects({"x": scientific(choice(*values))}, f"x: choice values {a} and {b} are equal",
            "would be stored as one", "use distinct values such as strings")


def test_choice_value_must_be_a_plain_value():
    rejects({"optimizer": scientific(choice("sgd", ["adam", 0.9]))},
            "optimizer: choice values must be str, int, float, bool or None",
            "got ['adam', 0.9] of type list", "name the option with a string")


# --- rules: roles --------------------------------------------------------------------------


def test_fixed_value_that_is_a_distribution():
    rejects({"lr": nuisance(log_uniform(1e-4, 1)), "dropout": fixed(uniform(0, 1))},
            "dropout: fixed() takes a value, got the distribution uniform(0, 1)",
            "use nuisance() to search it or fixed(<one value>)")


def test_fixed_value_that_is_an_optuna_distribution():
    rejects({"lr": nuisance(log_uniform(1e-4, 1)),
             "dropout": fixed(od.FloatDistribution(0.0, 1.0))},
            "dropout: fixed() takes a value, got the distribution", "FloatDistribution")


def test_fixed_values_of_any_kind_are_kept():
    space = Space({"lr": nuisance(log_uniform(1e-4, 1)), "layers": fixed([64, 64]),
                   "act": fixed("relu"), "nothing": fixed(None)})
    assert space.fixed == {"layers": [64, 64], "act": "relu", "nothing": None}


@pytest.mark.parametrize(
    "spec, fragments",
    [
        (uniform(0, 1), ("lr: uniform(0, 1) has no role",
                         "wrap it in scientific(), nuisance() or fixed()")),
        (choice("sgd", "adam"), ("lr: choice('sgd', 'adam') has no role", "scientific()")),
        (od.FloatDistribution(0.0, 1.0), ("lr:", "FloatDistribution", "has no role",
                                          "scientific(), nuisance() or fixed()")),
        (128, ("lr: 128 has no role", "scientific(), nuisance() or fixed()",
               "a constant goes in fixed(128)")),
        ("relu", ("lr: 'relu' has no role", "a constant goes in fixed('relu')")),
    ],
    ids=["bare-uniform", "bare-choice", "bare-optuna", "bare-int", "bare-str"],
)
def test_missing_role(spec, fragments):
    rejects({"optimizer": scientific(choice("sgd", "adam")), "lr": spec}, *fragments)


def test_unknown_role():
    rejects({"lr": Hyperparameter(role="foo", distribution=uniform(0, 1))},
            "lr: unknown role 'foo'", "allowed roles are scientific, nuisance, fixed")


@pytest.mark.parametrize("role", [scientific, nuisance])
@pytest.mark.parametrize("dist", [od.FloatDistribution(0.0, 1.0), None, "uniform(0, 1)"],
                         ids=["optuna", "none", "str"])
def test_role_needs_an_hpo_distribution(role, dist):
    rejects({"lr": role(dist)}, f"lr: {role.__name__}() needs uniform(), log_uniform(), integer() "
            "or choice()", f"got {dist!r}")


# --- rules: scientific hyperparameters -----------------------------------------------------


@pytest.mark.parametrize("spec", [uniform(0, 1), log_uniform(1e-4, 1.0)],
                         ids=["uniform", "log_uniform"])
def test_continuous_scientific_is_an_error(spec):
    rejects({"lr": scientific(spec)}, "lr: a scientific hyperparameter needs a finite set",
            f"got {spec!r}", "choice(")


def test_too_many_scientific_values():
    rejects({"width": scientific(integer(1, 5000))}, "width: 5000 scientific values is too many",
            "at most 1000", "choice(")


def test_a_thousand_scientific_values_are_allowed():
    assert len(Space({"width": scientific(integer(1, 1000))}).scientific_values()) == 1000


@pytest.mark.parametrize(
    "spec, shown", [(choice("adam"), "'adam'"), (integer(3, 3), "3")], ids=["choice", "integer"]
)
def test_one_scientific_value_warns_but_is_accepted(spec, shown):
    with pytest.warns(SpaceWarning, match=_pattern(
            f"optimizer: scientific hyperparameter has one value {shown}",
            "nothing to compare", "fixed()")) as record:
        study = make_study(space={"optimizer": scientific(spec),
                                  "lr": nuisance(log_uniform(1e-4, 1.0))})
    assert study.budget == 4
    warning = next(w for w in record if issubclass(w.category, SpaceWarning))
    assert "\n" not in str(warning.message)
    # The warning points at the line that defined the study, not inside hpo.
    assert warning.filename == __file__


def test_two_scientific_values_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error", SpaceWarning)
        make_study()


# --- rules: conditions ---------------------------------------------------------------------


OPTIMIZERS = {
    "optimizer": scientific(choice("sgd", "adam")),
    "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
    "batch_size": fixed(128),
}


def test_condition_on_unknown_hyperparameter():
    rejects({**OPTIMIZERS, "momentum": nuisance(uniform(0.8, 0.99), when={"optimiser": "sgd"})},
            "momentum: condition names unknown hyperparameter 'optimiser'",
            "scientific hyperparameters are: optimizer")


@pytest.mark.parametrize("target, role", [("learning_rate", "nuisance"), ("batch_size", "fixed")])
def test_condition_on_non_scientific_hyperparameter(target, role):
    rejects({**OPTIMIZERS, "momentum": nuisance(uniform(0.8, 0.99), when={target: 128})},
            f"momentum: condition names '{target}', which is {role}",
            "only name scientific hyperparameters (optimizer)")


@pytest.mark.parametrize("when", [{"optimizer": "rmsprop"}, {"optimizer": ["sgd", "rmsprop"]}],
                         ids=["single", "in-list"])
def test_condition_on_unknown_value(when):
    rejects({**OPTIMIZERS, "momentum": nuisance(uniform(0.8, 0.99), when=when)},
            "momentum: condition optimizer='rmsprop' names an unknown value",
            "optimizer takes 'sgd', 'adam'")


def test_condition_without_scientific_hyperparameters():
    rejects({"lr": nuisance(log_uniform(1e-4, 1)), "momentum": nuisance(uniform(0, 1),
                                                                       when={"lr": 0.1})},
            "momentum: condition names 'lr', which is nuisance", "(none)")


# --- rules: Study fields -------------------------------------------------------------------


@pytest.mark.parametrize(
    "field, value, allowed",
    [
        ("name", "", "a non-empty string"),
        ("name", "   ", "a non-empty string"),
        ("name", None, "a non-empty string"),
        ("goal", "", "the question the study answers"),
        ("metric", "", "the name of the value the objective returns"),
        ("direction", "max", "minimize or maximize"),
        ("direction", "Minimize", "minimize or maximize"),
        ("phase", "tune", "'explore'"),
        ("trials_per_value", 0, "a positive integer"),
        ("trials_per_value", -3, "a positive integer"),
        ("trials_per_value", True, "a positive integer"),
        ("trials_per_value", 2.0, "a positive integer"),
        ("seed", -1, "a non-negative integer"),
        ("seed", True, "a non-negative integer"),
        ("seed", 1.5, "a non-negative integer"),
        ("objective", "train", "a function objective(config, ctx)"),
        ("objective", None, "a function objective(config, ctx)"),
        ("pruner", "median", "an Optuna pruner"),
        ("pruner", object, "an Optuna pruner"),
        ("pruner", optuna.samplers.TPESampler, "an Optuna pruner"),
    ],
)
def test_study_field_rules(field, value, allowed):
    with pytest.raises(SpaceError, match=_pattern(f"Study {field}: got {value!r}; expected",
                                                  allowed)) as info:
        make_study(**{field: value})
    _assert_one_line(info.value)


def test_study_rejects_a_pruner_class_instance_of_the_wrong_kind():
    with pytest.raises(SpaceError, match="Study pruner: got .*RandomSampler"):
        make_study(pruner=optuna.samplers.RandomSampler())


def test_study_accepts_valid_fields():
    pruner = optuna.pruners.MedianPruner()
    study = make_study(direction="maximize", phase="exploit", seed=7, pruner=pruner,
                       trials_per_value=1)
    assert (study.direction, study.phase, study.seed) == ("maximize", "exploit", 7)
    # A plain Optuna pruner is applied within each scientific value (hpo.pruners).
    assert isinstance(study.pruner, PerValuePruner) and "MedianPruner" in repr(study.pruner)
    assert study.budget == 2


def test_study_validates_its_space():
    with pytest.raises(SpaceError, match=_pattern("lr: low <= high must hold")) as info:
        make_study(space={"lr": nuisance(uniform(1, 0))})
    _assert_one_line(info.value)


def test_study_accepts_a_list_of_pairs():
    study = make_study(space=[("optimizer", scientific(choice("sgd", "adam"))),
                              ("lr", nuisance(log_uniform(1e-4, 1.0)))])
    assert list(study.space.hyperparameters) == ["optimizer", "lr"]


# --- behaviour: scientific values and budget -----------------------------------------------


def test_scientific_values_are_the_cartesian_product_in_definition_order():
    space = Space({
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "depth": scientific(integer(2, 4)),
        "epochs": fixed(3),
    })
    groups = space.scientific_values()
    assert groups == [
        {"optimizer": "sgd", "depth": 2}, {"optimizer": "sgd", "depth": 3},
        {"optimizer": "sgd", "depth": 4}, {"optimizer": "adam", "depth": 2},
        {"optimizer": "adam", "depth": 3}, {"optimizer": "adam", "depth": 4},
    ]
    assert all(list(g) == ["optimizer", "depth"] for g in groups)


def test_scientific_values_follow_definition_order_when_reversed():
    space = Space({
        "depth": scientific(integer(2, 3)),
        "optimizer": scientific(choice("sgd", "adam")),
    })
    assert space.scientific_values() == [
        {"depth": 2, "optimizer": "sgd"}, {"depth": 2, "optimizer": "adam"},
        {"depth": 3, "optimizer": "sgd"}, {"depth": 3, "optimizer": "adam"},
    ]


def test_no_scientific_hyperparameter_is_one_empty_group():
    space = Space({"learning_rate": nuisance(log_uniform(1e-4, 1.0)), "epochs": fixed(3)})
    assert space.scientific_values() == [{}]
    assert space.active_nuisance({}) == {"learning_rate": log_uniform(1e-4, 1.0)}


def test_budget_is_trials_per_value_times_scientific_values():
    study = make_study(space={
        "optimizer": scientific(choice("sgd", "adam")),
        "depth": scientific(integer(2, 4)),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
    }, trials_per_value=4)
    assert study.budget == 24


def test_budget_without_scientific_hyperparameter():
    study = make_study(space={"learning_rate": nuisance(log_uniform(1e-4, 1.0))},
                       trials_per_value=5)
    assert study.budget == 5


# --- behaviour: conditions -----------------------------------------------------------------


CONDITIONAL = {
    "optimizer": scientific(choice("sgd", "adam", "rmsprop")),
    "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
    "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd"}),
    "beta1": nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"}),
    "decay": nuisance(uniform(0.0, 0.1), when={"optimizer": ["sgd", "rmsprop"]}),
    "batch_size": fixed(128),
}


@pytest.mark.parametrize(
    "optimizer, active",
    [
        ("sgd", ["learning_rate", "momentum", "decay"]),
        ("adam", ["learning_rate", "beta1"]),
        ("rmsprop", ["learning_rate", "decay"]),
    ],
)
def test_active_nuisance_respects_when(optimizer, active):
    space = Space(CONDITIONAL)
    got = space.active_nuisance({"optimizer": optimizer})
    assert list(got) == active
    assert got["learning_rate"] == log_uniform(1e-4, 1.0)


def test_active_nuisance_with_conditions_on_two_scientific_hyperparameters():
    space = Space({
        "optimizer": scientific(choice("sgd", "adam")),
        "depth": scientific(integer(2, 4)),
        "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd"}),
        "skip": nuisance(choice(True, False), when={"depth": [3, 4]}),
        "both": nuisance(uniform(0, 1), when={"optimizer": "adam", "depth": 4}),
    })
    active = {tuple(g.values()): list(space.active_nuisance(g))
              for g in space.scientific_values()}
    assert active == {
        ("sgd", 2): ["momentum"], ("sgd", 3): ["momentum", "skip"],
        ("sgd", 4): ["momentum", "skip"], ("adam", 2): [], ("adam", 3): ["skip"],
        ("adam", 4): ["skip", "both"],
    }


def test_when_stores_values_as_a_tuple():
    assert nuisance(uniform(0, 1), when={"optimizer": "sgd"}).when == {"optimizer": ("sgd",)}
    assert nuisance(uniform(0, 1), when={"optimizer": ["sgd", "adam"]}).when == {
        "optimizer": ("sgd", "adam")}


# --- behaviour: fingerprint ----------------------------------------------------------------


def _base() -> dict:
    return {
        "optimizer": scientific(choice("sgd", "adam")),
        "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
        "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd"}),
        "batch_size": fixed(128),
    }


def test_fingerprint_is_stable():
    a, b = Space(_base()), Space(_base())
    assert a is not b
    assert a.fingerprint() == b.fingerprint() == a.fingerprint()
    assert re.fullmatch(r"[0-9a-f]{16}", a.fingerprint())


def test_fingerprint_ignores_line_order():
    base = _base()
    reordered = dict(reversed(list(base.items())))
    assert list(reordered) != list(base)
    assert Space(reordered).fingerprint() == Space(base).fingerprint()
    assert Space(list(reordered.items())).fingerprint() == Space(base).fingerprint()


@pytest.mark.parametrize(
    "name, spec",
    [
        ("learning_rate", nuisance(log_uniform(1e-5, 1.0))),   # a range
        ("learning_rate", nuisance(uniform(1e-4, 1.0))),       # linear instead of log
        ("batch_size", fixed(256)),                            # a fixed value
        ("batch_size", fixed("128")),                          # same text, other type
        ("momentum", nuisance(uniform(0.8, 0.99), when={"optimizer": "adam"})),  # a condition
        ("momentum", nuisance(uniform(0.8, 0.99))),            # condition removed
        ("optimizer", scientific(choice("sgd", "adam", "rmsprop"))),  # a value added
        ("weight_decay", nuisance(log_uniform(1e-6, 1e-2))),   # a hyperparameter added
    ],
    ids=["range", "scale", "fixed", "fixed-type", "condition", "no-condition",
         "choice", "added"],
)
def test_fingerprint_changes_with_the_design(name, spec):
    changed = {**_base(), name: spec}
    assert Space(changed).fingerprint() != Space(_base()).fingerprint()


@pytest.mark.parametrize(
    "before, after",
    [
        (scientific(choice("sgd", "adam")), nuisance(choice("sgd", "adam"))),
        (nuisance(choice(64, 128)), fixed(64)),
        (nuisance(integer(2, 4)), scientific(integer(2, 4))),
    ],
    ids=["scientific-to-nuisance", "nuisance-to-fixed", "nuisance-to-scientific"],
)
def test_fingerprint_changes_with_a_role(before, after):
    lr = nuisance(log_uniform(1e-4, 1.0))
    assert (Space({"x": before, "lr": lr}).fingerprint()
            != Space({"x": after, "lr": lr}).fingerprint())


def test_fingerprint_changes_when_a_hyperparameter_is_removed():
    smaller = _base()
    del smaller["batch_size"]
    assert Space(smaller).fingerprint() != Space(_base()).fingerprint()


# --- behaviour: from_unit ------------------------------------------------------------------


GRID = [(i + 0.5) / 6000 for i in range(6000)]
ALMOST_ONE = math.nextafter(1.0, 0.0)


@pytest.mark.parametrize("dist", [uniform(-2.0, 3.0), log_uniform(1e-4, 1.0),
                                  uniform(0.8, 0.99)], ids=repr)
def test_float_from_unit_ends_and_bounds(dist):
    assert dist.from_unit(0.0) == pytest.approx(dist.low, rel=1e-12)
    assert dist.from_unit(ALMOST_ONE) == pytest.approx(dist.high, rel=1e-9)
    assert dist.from_unit(1.0) == pytest.approx(dist.high, rel=1e-12)
    values = [dist.from_unit(u) for u in [0.0, *GRID, ALMOST_ONE, 1.0]]
    assert all(dist.low <= v <= dist.high for v in values)
    assert values == sorted(values)


def test_uniform_from_unit_is_linear():
    dist = uniform(-2.0, 3.0)
    assert dist.from_unit(0.5) == pytest.approx(0.5)
    assert dist.from_unit(0.2) == pytest.approx(-1.0)


@pytest.mark.parametrize("low, high", [(1e-4, 1.0), (1e-6, 1e-2), (2.0, 8.0)])
def test_log_uniform_from_unit_midpoint_is_the_geometric_mean(low, high):
    assert log_uniform(low, high).from_unit(0.5) == pytest.approx(math.sqrt(low * high),
                                                                  rel=1e-9)


def test_log_uniform_spends_equal_share_per_decade():
    dist = log_uniform(1e-4, 1.0)
    decades = Counter(math.floor(math.log10(dist.from_unit(u))) for u in GRID)
    assert sorted(decades) == [-4, -3, -2, -1]
    assert max(decades.values()) - min(decades.values()) <= 1


@pytest.mark.parametrize("low, high", [(2, 6), (0, 0), (-3, 3), (1, 7)])
def test_integer_from_unit_covers_every_value_evenly(low, high):
    dist = integer(low, high)
    counts = Counter(dist.from_unit(u) for u in GRID)
    assert sorted(counts) == list(range(low, high + 1))
    assert max(counts.values()) - min(counts.values()) <= 1
    assert dist.from_unit(0.0) == low
    assert dist.from_unit(ALMOST_ONE) == high
    assert dist.from_unit(1.0) == high
    assert all(isinstance(v, int) for v in counts)


def test_log_integer_from_unit_covers_every_value_and_favours_small_ones():
    dist = integer(1, 64, log=True)
    values = [dist.from_unit(u) for u in [0.0, *GRID, ALMOST_ONE, 1.0]]
    assert set(values) == set(range(1, 65))
    assert values == sorted(values)
    assert values[0] == 1 and values[-1] == 64
    counts = Counter(values)
    assert counts[1] > counts[2] > counts[8] > counts[64]


@pytest.mark.parametrize("values", [("sgd", "adam", "rmsprop"), (1, True, None, 2.5), ("x",)])
def test_choice_from_unit_covers_every_choice_evenly(values):
    dist = choice(*values)
    got = [dist.from_unit(u) for u in GRID]
    counts = Counter((type(v), v) for v in got)
    assert set(counts) == {(type(v), v) for v in values}
    assert max(counts.values()) - min(counts.values()) <= 1
    assert dist.from_unit(0.0) is values[0]
    assert dist.from_unit(ALMOST_ONE) is values[-1]
    assert dist.from_unit(1.0) is values[-1]
