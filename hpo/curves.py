"""Training curves stored with a trial, in a form the analysis reads back.

A curve is a set of series sampled at the same evaluation steps: ``step`` plus any of
``train_loss``, ``val_loss``, ``val_metric``, ``grad_norm`` (and others a trainer adds).
They are stored as one trial user attribute, ``curves``, a JSON object of equal-length lists
rounded to 5 significant digits and thinned to at most ``MAX_POINTS`` points, so
optuna-dashboard shows it on the trial page and stays fast on studies of thousands of trials.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpo import attrs

if TYPE_CHECKING:
    import optuna

ATTR = attrs.CURVES
MAX_POINTS = 200


def compact(curves: Mapping[str, Sequence[float]]) -> dict[str, list]:
    """Thin and round a set of series sampled at ``curves['step']``."""
    steps = list(curves["step"])
    n = len(steps)
    for name, series in curves.items():
        if len(series) != n:
            raise ValueError(f"curve {name!r} has {len(series)} points but 'step' has {n}")
    keep = range(n) if n <= MAX_POINTS else sorted(
        {round(i * (n - 1) / (MAX_POINTS - 1)) for i in range(MAX_POINTS)}
    )
    return {
        name: [int(series[i]) if name == "step" else _round(series[i]) for i in keep]
        for name, series in curves.items()
    }


def record(trial: optuna.Trial, curves: Mapping[str, Sequence[float]]) -> None:
    trial.set_user_attr(ATTR, compact(curves))


def read(trial: optuna.trial.FrozenTrial) -> dict[str, list] | None:
    """The trial's curves, or None if it recorded none."""
    value = trial.user_attrs.get(ATTR)
    return dict(value) if isinstance(value, Mapping) and "step" in value else None


def _round(x: Any) -> float | None:
    x = float(x)
    if not math.isfinite(x):
        return None  # JSON has no NaN; None marks a diverged point
    return float(f"{x:.5g}")
