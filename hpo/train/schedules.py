"""Learning-rate schedules, each with optional linear warmup: pure functions of the step.

The playbook's advice (FAQ on schedules): start with a constant learning rate, default to
linear or cosine decay, and keep warmup at no more than 10% of ``max_train_steps``.

``step`` counts the updates already applied, so ``schedule(0)`` is the rate of the first update
and ``schedule(max_train_steps - 1)`` that of the last. With ``T = max_train_steps``,
``W = warmup_steps``, ``lr = learning_rate``, ``f = decay_factor`` (the final rate as a fraction
of ``lr``) and ``p = (step - W) / (T - W)``, the fraction of the post-warmup steps done:

=============  ==================================================
warmup         ``lr * (step + 1) / W`` while ``step < W``
constant       ``lr``
linear         ``lr * (1 - (1 - f) * p)``                (f = 0 by default)
cosine         ``lr * (f + (1 - f) * (1 + cos(pi * p)) / 2)`` (f = 0 by default)
exponential    ``lr * f ** p``                            (f = 0.01 by default)
inverse_sqrt   ``lr * sqrt(max(W, 1) / (step + 1))``
=============  ==================================================

Being a pure function of the step, a schedule has no state to checkpoint: a resumed run gets
exactly the rates the uninterrupted run would have had.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hpo.train import config as cfg
from hpo.train.config import HyperparameterError, TrainWarning

SCHEDULES = ("constant", "linear", "cosine", "exponential", "inverse_sqrt")
# The config names a schedule reads; decay_factor only for the schedules that decay to a value.
NAMES = ("lr_schedule", "warmup_steps", "decay_factor")
DECAYING = ("linear", "cosine", "exponential")
DEFAULT_DECAY_FACTOR = {"linear": 0.0, "cosine": 0.0, "exponential": 0.01}
MAX_WARMUP_FRACTION = 0.1  # the playbook's ceiling


@dataclass(frozen=True)
class Schedule:
    """The learning rate for every step of one run; call it with a step."""

    name: str
    learning_rate: float
    max_train_steps: int
    warmup_steps: int = 0
    decay_factor: float | None = None  # None: the schedule's default (see the module docstring)

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise HyperparameterError(
                f"lr_schedule must be one of {', '.join(repr(s) for s in SCHEDULES)}, "
                f"got {self.name!r}"
            )
        if not 0 <= self.warmup_steps <= self.max_train_steps:
            raise HyperparameterError(
                f"warmup_steps must be between 0 and max_train_steps={self.max_train_steps}, "
                f"got {self.warmup_steps}"
            )
        if self.decay_factor is not None and self.name not in DECAYING:
            raise HyperparameterError(
                f"decay_factor={self.decay_factor!r} does not apply to lr_schedule "
                f"{self.name!r}; only {', '.join(DECAYING)} decay to a final fraction: "
                f"remove it or make it conditional on lr_schedule"
            )
        if self.name == "exponential" and self.decay_factor is not None and self.decay_factor <= 0:
            raise HyperparameterError(
                f"decay_factor must be > 0 for an exponential decay (it never reaches 0), "
                f"got {self.decay_factor!r}"
            )
        if self.warmup_steps > MAX_WARMUP_FRACTION * self.max_train_steps:
            total, ceiling = self.max_train_steps, MAX_WARMUP_FRACTION
            warnings.warn(
                f"warmup_steps={self.warmup_steps} is {self.warmup_steps / total:.0%} of "
                f"max_train_steps={total}; the playbook advises at most {ceiling:.0%} "
                f"({int(ceiling * total)} steps): shorten the warmup or its range in the space",
                TrainWarning,
                stacklevel=3,
            )

    @property
    def final_fraction(self) -> float:
        if self.decay_factor is not None:
            return self.decay_factor
        return DEFAULT_DECAY_FACTOR.get(self.name, 1.0)

    def __call__(self, step: int) -> float:
        lr, w = self.learning_rate, self.warmup_steps
        if step < w:
            return lr * (step + 1) / w
        if self.name == "constant":
            return lr
        if self.name == "inverse_sqrt":
            return lr * math.sqrt(max(w, 1) / (step + 1))
        p = min(1.0, (step - w) / max(1, self.max_train_steps - w))
        f = self.final_fraction
        if self.name == "linear":
            return lr * (1 - (1 - f) * p)
        if self.name == "cosine":
            return lr * (f + (1 - f) * (1 + math.cos(math.pi * p)) / 2)
        return lr * f**p  # exponential

    def describe(self) -> dict[str, Any]:
        """The values in effect, defaults included, for the trial's record."""
        out: dict[str, Any] = {"lr_schedule": self.name, "warmup_steps": self.warmup_steps}
        if self.name in DECAYING:
            out["decay_factor"] = self.final_fraction
        return out


def from_config(config: Mapping[str, Any], learning_rate: float, max_train_steps: int) -> Schedule:
    """The schedule a trial's config asks for; ``lr_schedule`` defaults to ``constant``."""
    name = cfg.text(config, "lr_schedule", SCHEDULES, default="constant")
    warmup = config["warmup_steps"] if cfg.has(config, "warmup_steps") else 0
    if isinstance(warmup, bool) or not isinstance(warmup, int):
        raise HyperparameterError(
            f"warmup_steps must be an integer number of steps, got {warmup!r}; "
            "use integer(low, high) in the space"
        )
    decay = None
    if cfg.has(config, "decay_factor"):
        decay = cfg.number(config, "decay_factor", low=0.0, high=1.0)
    return Schedule(name, learning_rate, max_train_steps, warmup, decay)
