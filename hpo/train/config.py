"""Reading the trainer's hyperparameters from a trial's config, strictly.

The trainer reads the playbook's names (``learning_rate``, ``momentum``, ``beta1``...) from the
same config the study's space fills, so every value that shapes a run is a hyperparameter with
a role, recorded with the result. The rules follow init2winit's lesson: a name that does not
apply to the chosen optimizer or schedule, a missing required one, or a near-miss spelling of
a trainer name is an error, never a silently ignored value.

Nothing here imports torch: a study file that only names settings stays light to load.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from typing import Any

from hpo.space import SpaceError


class HyperparameterError(SpaceError):
    """A trainer hyperparameter that is missing, misspelled, out of range or does not apply.

    A SpaceError, because the fix is in the study's space; the CLI exits with status 2 on it.
    """


class TrainWarning(UserWarning):
    """A legal training setup that the playbook advises against (e.g. a long warmup)."""


# Names the trainer reads outside the optimizer and the schedule.
LOOP_NAMES = ("batch_size", "max_train_steps", "eval_every", "grad_clip_norm")


def has(config: Mapping[str, Any], name: str) -> bool:
    """Whether the trial sets ``name``: hpo's Config raises on an absent conditional name."""
    try:
        config[name]
    except KeyError:
        return False
    return True


# Other libraries' names for the trainer's: a study using one would silently train without it.
ALIASES = {"lr": "learning_rate", "eps": "epsilon", "wd": "weight_decay",
           "warmup": "warmup_steps", "schedule": "lr_schedule", "max_steps": "max_train_steps",
           "grad_clip": "grad_clip_norm", "clip_norm": "grad_clip_norm",
           "nesterov": "optimizer (use optimizer='nesterov')"}


def check_spelling(config: Mapping[str, Any], known: tuple[str, ...]) -> None:
    """Refuse a config name that looks like a misspelled trainer name ('learning_rte', 'lr').

    The config also holds the model's own names (width, depth, dropout...), which the trainer
    cannot judge; only a near miss of one of its own names, or another library's name for
    one, is surely a mistake.
    """
    for name in config:
        if name in known:
            continue
        close = [ALIASES[name]] if name in ALIASES else difflib.get_close_matches(
            name, known, n=1, cutoff=0.85)
        if close:
            raise HyperparameterError(
                f"unknown hyperparameter {name!r}: the trainer's name for it is {close[0]}; "
                f"rename it in the study's space (the trainer reads {', '.join(known)})"
            )


def number(config: Mapping[str, Any], name: str, *, default: float | None = None,
           low: float | None = None, high: float | None = None, low_open: bool = False,
           high_open: bool = False, owner: str = "") -> float:
    """A real-valued hyperparameter, range-checked; a missing one without a default is an error."""
    if not has(config, name):
        if default is None:
            raise HyperparameterError(
                f"{owner or 'the trainer'} needs {name}, which this trial does not set; add it "
                f"to the study's space, e.g. \"{name}\": nuisance(...) or fixed(<value>)"
            )
        return default
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise HyperparameterError(f"{name} must be a finite number, got {value!r}")
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high:
        lo = "" if low is None else f"{low} {'<' if low_open else '<='} "
        hi = "" if high is None else f" {'<' if high_open else '<='} {high}"
        raise HyperparameterError(
            f"{name} must satisfy {lo}{name}{hi}, got {value!r}; narrow its range in the space"
        )
    return float(value)


def positive_int(config: Mapping[str, Any], name: str, *, default: int | None = None) -> int:
    """A positive integer hyperparameter (steps, sizes)."""
    if not has(config, name):
        if default is None:
            raise HyperparameterError(
                f"the trainer needs {name}, which this trial does not set; add it to the "
                f"study's space, e.g. \"{name}\": fixed(<a positive integer>)"
            )
        return default
    value = config[name]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HyperparameterError(f"{name} must be a positive integer, got {value!r}")
    return value


def text(config: Mapping[str, Any], name: str, allowed: tuple[str, ...], *,
         default: str | None = None) -> str:
    """One of a fixed set of names (an optimizer, a schedule)."""
    if not has(config, name):
        if default is None:
            raise HyperparameterError(
                f"the trainer needs {name}, which this trial does not set; add it to the "
                f"study's space, e.g. \"{name}\": fixed({allowed[0]!r}) (one of "
                f"{', '.join(allowed)})"
            )
        return default
    value = config[name]
    if value not in allowed:
        raise HyperparameterError(
            f"{name} must be one of {', '.join(repr(a) for a in allowed)}, got {value!r}"
        )
    return value
