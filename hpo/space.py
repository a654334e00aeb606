"""Hyperparameter roles and distributions, validated when the study is defined.

The playbook sorts every hyperparameter into one of three roles:

* ``scientific``: the effect the study measures (optimizer, depth, activation...);
* ``nuisance``: re-optimized for every scientific value so the comparison is fair;
* ``fixed``: held constant and recorded, because it is a caveat on every conclusion.

Everything here is plain data: nothing touches storage or imports Optuna's samplers, so a
mistake in a study file fails in milliseconds, before a worker opens a database.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import optuna.distributions as od

from hpo.errors import InputError

ROLES = ("scientific", "nuisance", "fixed")


class SpaceError(InputError):
    """A study definition that breaks a rule; the message is one line a user can act on.

    Raised when a [`Study`][hpo.Study] is constructed, before anything touches storage. The
    message names the hyperparameter, echoes the value and says what is allowed, e.g.
    ``learning_rate: a log-scale range needs low > 0, got low=0; use a small positive low
    such as 1e-6, or uniform() for a linear range``. The ``hpo`` command prints it after
    ``hpo: error:`` and exits with status 2.
    """


class SpaceWarning(UserWarning):
    """A study definition that is legal but probably not what was meant.

    Issued with ``warnings.warn`` (not raised) for example when a scientific
    hyperparameter has a single value, so there is nothing to compare.
    """


# --- distributions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Float:
    """A real-valued range, inclusive at both ends (as in Optuna); ``log`` samples its exponent."""

    low: float
    high: float
    log: bool = False

    def check(self, name: str) -> None:
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
                raise SpaceError(f"{name}: {bound} must be a number, got {value!r}")
        if self.low > self.high:
            raise SpaceError(
                f"{name}: low <= high must hold, got low={self.low}, high={self.high}; swap them"
            )
        if self.log and self.low <= 0:
            raise SpaceError(
                f"{name}: a log-scale range needs low > 0, got low={self.low}; "
                "use a small positive low such as 1e-6, or uniform() for a linear range"
            )

    def from_unit(self, u: float) -> float:
        if self.log:
            lo, hi = math.log(self.low), math.log(self.high)
            return min(self.high, max(self.low, math.exp(lo + u * (hi - lo))))
        return min(self.high, max(self.low, self.low + u * (self.high - self.low)))

    def to_optuna(self) -> od.BaseDistribution:
        return od.FloatDistribution(float(self.low), float(self.high), log=self.log)

    def __repr__(self) -> str:
        return f"{'log_uniform' if self.log else 'uniform'}({self.low!r}, {self.high!r})"


@dataclass(frozen=True)
class Int:
    """An integer range, inclusive at both ends."""

    low: int
    high: int
    log: bool = False

    def check(self, name: str) -> None:
        for bound in ("low", "high"):
            value = getattr(self, bound)
            if isinstance(value, bool) or not isinstance(value, int):
                raise SpaceError(
                    f"{name}: integer bounds must be integers, got {bound}={value!r}; "
                    "use uniform() for a real-valued range"
                )
        if self.low > self.high:
            raise SpaceError(
                f"{name}: low <= high must hold, got low={self.low}, high={self.high}; swap them"
            )
        if self.log and self.low <= 0:
            raise SpaceError(f"{name}: a log-scale range needs low >= 1, got low={self.low}")

    def values(self) -> tuple[int, ...]:
        return tuple(range(self.low, self.high + 1))

    def from_unit(self, u: float) -> int:
        if self.log:
            # Spread over [low - 0.5, high + 0.5] in log space so the end values get their share.
            lo, hi = math.log(self.low - 0.5), math.log(self.high + 0.5)
            value = round(math.exp(lo + u * (hi - lo)))
        else:
            value = self.low + math.floor(u * (self.high - self.low + 1))
        return int(min(self.high, max(self.low, value)))

    def to_optuna(self) -> od.BaseDistribution:
        return od.IntDistribution(self.low, self.high, log=self.log)

    def __repr__(self) -> str:
        return f"integer({self.low!r}, {self.high!r}{', log=True' if self.log else ''})"


@dataclass(frozen=True)
class Choice:
    """A finite set of unordered values."""

    choices: tuple[Any, ...]

    def check(self, name: str) -> None:
        if not self.choices:
            raise SpaceError(f"{name}: choice() needs at least one value, got none")
        for value in self.choices:
            if value is not None and not isinstance(value, (bool, int, float, str)):
                raise SpaceError(
                    f"{name}: choice values must be str, int, float, bool or None, "
                    f"got {value!r} of type {type(value).__name__}; "
                    "name the option with a string and build the object in the objective"
                )
        seen: list[Any] = []
        for value in self.choices:
            twin = next((s for s in seen if s == value), None)
            if twin is not None or (value is None and None in seen):
                if type(twin) is type(value):
                    raise SpaceError(
                        f"{name}: choice values must be distinct, got {value!r} twice in "
                        f"{list(self.choices)!r}; remove the duplicate"
                    )
                # Optuna stores a choice by its index among equal values, so 1 and True
                # (or 0 and False, 1 and 1.0) would silently merge into one group.
                raise SpaceError(
                    f"{name}: choice values {twin!r} and {value!r} are equal in Python and would "
                    f"be stored as one; use distinct values such as strings ({str(twin)!r}, "
                    f"{str(value)!r})"
                )
            seen.append(value)

    def values(self) -> tuple[Any, ...]:
        return self.choices

    def from_unit(self, u: float) -> Any:
        return self.choices[min(len(self.choices) - 1, math.floor(u * len(self.choices)))]

    def to_optuna(self) -> od.BaseDistribution:
        return od.CategoricalDistribution(self.choices)

    def __repr__(self) -> str:
        return f"choice({', '.join(repr(c) for c in self.choices)})"


Distribution = Float | Int | Choice


def uniform(low: float, high: float) -> Float:
    """A real value drawn evenly from ``[low, high]``, both ends included.

    Args:
        low: The smallest value.
        high: The largest value; ``low <= high`` must hold.

    Returns:
        A distribution, to wrap in [`nuisance`][hpo.nuisance]. A scientific hyperparameter
        cannot take a continuous range: list the values to compare with
        [`choice`][hpo.choice].

    The bounds are checked when the study is defined: a bound that is not a number, or
    ``low > high``, raises [`SpaceError`][hpo.SpaceError] then.
    """
    return Float(low, high)


def log_uniform(low: float, high: float) -> Float:
    """A positive real value whose logarithm is drawn evenly: learning rates, weight decay.

    Args:
        low: The smallest value; must be > 0.
        high: The largest value; ``low <= high`` must hold.

    Returns:
        A distribution, to wrap in [`nuisance`][hpo.nuisance].

    The bounds are checked when the study is defined: ``low <= 0`` raises
    [`SpaceError`][hpo.SpaceError] then, suggesting a small positive ``low`` such as 1e-6 or
    [`uniform`][hpo.uniform] for a linear range.
    """
    return Float(low, high, log=True)


def integer(low: int, high: int, *, log: bool = False) -> Int:
    """An integer from ``low`` to ``high``, both ends included.

    Args:
        low: The smallest value.
        high: The largest value; ``low <= high`` must hold.
        log: Draw the value's logarithm evenly (``low`` must then be >= 1).

    Returns:
        A distribution, for [`nuisance`][hpo.nuisance] or [`scientific`][hpo.scientific]
        (as a scientific hyperparameter every integer in the range is a value to compare,
        at most 1000 of them).

    The bounds are checked when the study is defined: bounds that are not integers, or
    ``low > high``, raise [`SpaceError`][hpo.SpaceError] then.
    """
    return Int(low, high, log=log)


def choice(*values: Any) -> Choice:
    """One of a finite set of unordered values: ``choice("sgd_momentum", "adam")``.

    Args:
        *values: The values, each a ``str``, ``int``, ``float``, ``bool`` or ``None``, all
            distinct (also in Python's sense: ``1`` and ``True`` are equal, and Optuna would
            store them as one). Name an option with a string and build the object it stands
            for in the objective.

    Returns:
        A distribution, for [`scientific`][hpo.scientific] (the values compared) or
        [`nuisance`][hpo.nuisance].

    The values are checked when the study is defined: no values, a value of another type, or
    two equal values raise [`SpaceError`][hpo.SpaceError] then.
    """
    return Choice(tuple(values))


# --- roles ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hyperparameter:
    """A distribution (or, for ``fixed``, a value) with its role in the experiment.

    ``when`` makes a nuisance hyperparameter exist only for some scientific values: SGD's
    ``momentum`` is not Adam's ``beta1`` even where both are "momentum-like".
    """

    role: str
    distribution: Distribution | None = None
    value: Any = None
    when: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)


def scientific(distribution: Distribution) -> Hyperparameter:
    """The hyperparameter whose effect the study measures; its values are compared in balance.

    Every value (every combination of values, with several scientific hyperparameters) gets
    trials in exact balance: after any number of trials, the counts per value differ by at
    most one, however many workers run at once.

    Args:
        distribution: A finite set of values to compare: [`choice`][hpo.choice] or
            [`integer`][hpo.integer] (at most 1000 values). A continuous range is refused
            when the study is defined, with [`SpaceError`][hpo.SpaceError]: there is no
            balance over a continuum. A single value is legal but issues a
            [`SpaceWarning`][hpo.SpaceWarning]: there is nothing to compare.

    Returns:
        The role, to put in a study's ``space``.
    """
    return Hyperparameter("scientific", distribution=distribution)


def nuisance(
    distribution: Distribution, *, when: Mapping[str, Any] | None = None
) -> Hyperparameter:
    """A hyperparameter optimized away separately for every scientific value.

    Its value is re-optimized for each scientific value, so the comparison is fair: the
    playbook's learning rate, momentum, weight decay...

    Args:
        distribution: [`uniform`][hpo.uniform], [`log_uniform`][hpo.log_uniform],
            [`integer`][hpo.integer] or [`choice`][hpo.choice].
        when: Limits the hyperparameter to some scientific values:
            ``when={"optimizer": "sgd_momentum"}`` or, with a list,
            ``when={"optimizer": ["sgd_momentum", "nesterov"]}``. Elsewhere it is absent
            from the trial's config, and reading it there is an error that says when it
            exists. Conditions may name only scientific hyperparameters and their values;
            anything else raises [`SpaceError`][hpo.SpaceError] when the study is defined.

    Returns:
        The role, to put in a study's ``space``.
    """
    conditions = {
        key: tuple(v) if isinstance(v, (list, tuple, set, frozenset)) else (v,)
        for key, v in (when or {}).items()
    }
    return Hyperparameter("nuisance", distribution=distribution, when=conditions)


def fixed(value: Any) -> Hyperparameter:
    """A value held constant for the whole study and recorded with every result.

    Every conclusion holds only for these values, so they are passed to the objective in its
    config and stored on the study, where optuna-dashboard and ``hpo report`` show them.

    Args:
        value: The value itself, not a distribution: ``fixed(uniform(0, 1))`` raises
            [`SpaceError`][hpo.SpaceError] when the study is defined.

    Returns:
        The role, to put in a study's ``space``.
    """
    return Hyperparameter("fixed", value=value)


# --- the space ----------------------------------------------------------------------------


def _not_json(value: Any) -> Any:
    """The first part of ``value`` that JSON cannot hold (a function, a class, an object, a
    non-string dict key), or None if all of it can."""
    if value is None or isinstance(value, (str, bool, int, float)):
        return None
    if isinstance(value, (list, tuple)):
        return next((bad for v in value if (bad := _not_json(v)) is not None), None)
    if isinstance(value, dict):
        for key, v in value.items():
            if not isinstance(key, str):
                return key
            bad = _not_json(v)
            if bad is not None:
                return bad
        return None
    return value


def _is_distribution(obj: Any) -> bool:
    return isinstance(obj, (Float, Int, Choice, od.BaseDistribution))


class Space:
    """An ordered, validated set of named hyperparameters."""

    def __init__(self, space: Mapping[str, Any] | Iterable[tuple[str, Any]]):
        pairs = list(space.items()) if isinstance(space, Mapping) else list(space)
        self.hyperparameters: dict[str, Hyperparameter] = {}
        for pair in pairs:
            if not (isinstance(pair, tuple) and len(pair) == 2):
                raise SpaceError(
                    f"space entries must be (name, role) pairs or a dict, got {pair!r}"
                )
            name, spec = pair
            if not isinstance(name, str) or not name.isidentifier():
                raise SpaceError("hyperparameter names must be identifiers such as "
                                 f"'learning_rate', got {name!r}")
            if name in self.hyperparameters:
                raise SpaceError(
                    f"{name}: defined twice in the space; each name must be unique, "
                    "rename or remove one"
                )
            self.hyperparameters[name] = spec
        self._validate()

    # Each rule names the hyperparameter, echoes the value and says what is allowed.
    def _validate(self) -> None:
        if not self.hyperparameters:
            raise SpaceError(
                "space is empty; give at least one scientific or nuisance hyperparameter, "
                'e.g. {"learning_rate": nuisance(log_uniform(1e-4, 1.0))}'
            )
        for name, hp in self.hyperparameters.items():
            if not isinstance(hp, Hyperparameter):
                hint = "scientific(), nuisance() or fixed()"
                if _is_distribution(hp):
                    raise SpaceError(
                        f"{name}: {hp!r} has no role; wrap it in {hint}"
                    )
                raise SpaceError(
                    f"{name}: {hp!r} has no role; wrap it in {hint} "
                    f"(a constant goes in fixed({hp!r}))"
                )
            if hp.role not in ROLES:
                raise SpaceError(
                    f"{name}: unknown role {hp.role!r}; allowed roles are {', '.join(ROLES)}"
                )
            if hp.role == "fixed":
                if _is_distribution(hp.value):
                    raise SpaceError(
                        f"{name}: fixed() takes a value, got the distribution {hp.value!r}; "
                        "use nuisance() to search it or fixed(<one value>) to hold it constant"
                    )
                bad = _not_json(hp.value)
                if bad is not None:
                    shown = repr(bad)
                    shown = shown if len(shown) <= 60 else shown[:57] + "..."
                    raise SpaceError(
                        f"{name}: fixed() values are recorded with every result, so they must "
                        f"be JSON values (str, int, float, bool, None, lists and dicts of "
                        f"them), got {shown} of type {type(bad).__name__}; name the option "
                        f"with a string, e.g. fixed('relu'), and build the object in the "
                        f"objective"
                    )
                continue
            if not isinstance(hp.distribution, (Float, Int, Choice)):
                raise SpaceError(
                    f"{name}: {hp.role}() needs uniform(), log_uniform(), integer() or choice(), "
                    f"got {hp.distribution!r}"
                )
            hp.distribution.check(name)
            if hp.role == "scientific":
                if isinstance(hp.distribution, Float):
                    raise SpaceError(
                        f"{name}: a scientific hyperparameter needs a finite set of values to "
                        f"compare in balance, got {hp.distribution!r}; "
                        "list the values to compare with choice(...)"
                    )
                if len(hp.distribution.values()) > 1000:
                    raise SpaceError(
                        f"{name}: {len(hp.distribution.values())} scientific values is too many "
                        "to compare (at most 1000); pick the values to compare with choice(...)"
                    )
                if len(hp.distribution.values()) == 1:
                    warnings.warn(
                        f"{name}: scientific hyperparameter has one value "
                        f"{hp.distribution.values()[0]!r}, so there is nothing to compare; "
                        "add values or make it fixed()",
                        SpaceWarning,
                        stacklevel=4,
                    )
        if not self.scientific and not self.nuisance:
            raise SpaceError(
                f"space has only fixed hyperparameters ({', '.join(self.fixed)}); "
                "a study needs at least one scientific or nuisance hyperparameter"
            )
        for name, hp in self.hyperparameters.items():
            for cond_name, cond_values in hp.when.items():
                if cond_name not in self.hyperparameters:
                    raise SpaceError(
                        f"{name}: condition names unknown hyperparameter {cond_name!r}; "
                        f"scientific hyperparameters are: {', '.join(self.scientific) or 'none'}"
                    )
                if cond_name not in self.scientific:
                    raise SpaceError(
                        f"{name}: condition names {cond_name!r}, which is "
                        f"{self.hyperparameters[cond_name].role}; conditions may only name "
                        f"scientific hyperparameters ({', '.join(self.scientific) or 'none'})"
                    )
                allowed = self.scientific[cond_name].values()
                for value in cond_values:
                    if value not in allowed:
                        raise SpaceError(
                            f"{name}: condition {cond_name}={value!r} names an unknown value; "
                            f"{cond_name} takes {', '.join(repr(a) for a in allowed)}"
                        )

    # --- views ------------------------------------------------------------------------------

    def _with_role(self, role: str) -> dict[str, Hyperparameter]:
        return {n: hp for n, hp in self.hyperparameters.items() if hp.role == role}

    @staticmethod
    def _distributions(hps: Mapping[str, Hyperparameter]) -> dict[str, Distribution]:
        # _validate() has checked that every scientific and nuisance one has a distribution.
        return {n: hp.distribution for n, hp in hps.items() if hp.distribution is not None}

    @property
    def scientific(self) -> dict[str, Any]:
        """Scientific names to their distributions."""
        return {n: hp.distribution for n, hp in self._with_role("scientific").items()}

    @property
    def nuisance(self) -> dict[str, Distribution]:
        return self._distributions(self._with_role("nuisance"))

    @property
    def fixed(self) -> dict[str, Any]:
        return {n: hp.value for n, hp in self._with_role("fixed").items()}

    def scientific_values(self) -> list[dict[str, Any]]:
        """Every combination of scientific values, in definition order: the groups compared.

        A study with no scientific hyperparameter has one group, the empty combination.
        """
        names = list(self.scientific)
        grids = [self.scientific[n].values() for n in names]
        return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grids)]

    def active_nuisance(self, scientific_value: Mapping[str, Any]) -> dict[str, Distribution]:
        """The nuisance hyperparameters that exist for one scientific value."""
        return self._distributions({
            n: hp
            for n, hp in self._with_role("nuisance").items()
            if all(scientific_value.get(c) in vs for c, vs in hp.when.items())
        })

    def distribution(self, name: str) -> Distribution:
        """A scientific or nuisance hyperparameter's distribution (a fixed one has none)."""
        distribution = self.hyperparameters[name].distribution
        assert distribution is not None, f"{name} is fixed: it has no distribution"
        return distribution

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description: roles, distributions, conditions and fixed values."""
        out: dict[str, Any] = {}
        for name, hp in self.hyperparameters.items():
            entry: dict[str, Any] = {"role": hp.role}
            if hp.role == "fixed":
                entry["value"] = hp.value
            else:
                entry["distribution"] = repr(hp.distribution)
            if hp.when:
                entry["when"] = {k: list(v) for k, v in hp.when.items()}
            out[name] = entry
        return out

    def fingerprint(self) -> str:
        """A short hash of the search space: a changed space must not reuse an old name."""
        text = json.dumps(self.describe(), sort_keys=True, default=repr)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def suggest(trial: Any, name: str, distribution: Distribution) -> Any:
    """Ask an Optuna trial for one hyperparameter's value (the sampler decides which)."""
    if isinstance(distribution, Float):
        return trial.suggest_float(name, distribution.low, distribution.high, log=distribution.log)
    if isinstance(distribution, Int):
        return trial.suggest_int(name, distribution.low, distribution.high, log=distribution.log)
    return trial.suggest_categorical(name, list(distribution.choices))
