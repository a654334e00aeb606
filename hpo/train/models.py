"""A multilayer perceptron builder, enough for the example studies and the tests.

Your own model is any ``torch.nn.Module``; the trainer takes a function ``model(config)``
that builds it, so that it is built after the trial's seed is set (same seed, same init).
A function ``model(config, data)`` also receives the :class:`~hpo.train.Data`, for its sizes
(``data.features``, ``data.outputs``) instead of numbers written twice.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from hpo.train.config import HyperparameterError

if TYPE_CHECKING:
    import torch

    from hpo.train.data import Data


def build(model: Callable[..., Any], config: Mapping[str, Any], data: Data) -> Any:
    """``model(config, data)`` if the function takes the data, else ``model(config)``."""
    return model(config, data) if takes_data(model) else model(config)


def takes_data(model: Callable[..., Any]) -> bool:
    """Whether ``model`` has a second positional parameter for the data: one without a
    default, or one named ``data`` (``def model(config, width=64)`` does not take it)."""
    try:
        parameters = list(inspect.signature(model).parameters.values())
    except (TypeError, ValueError):  # a builtin or C callable: the old contract
        return False
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 2:
        return False
    second = positional[1]
    return second.default is inspect.Parameter.empty or second.name == "data"


def mlp(inputs: int, outputs: int, *, width: int, depth: int = 1,
        dropout: float = 0.0) -> torch.nn.Sequential:
    """``depth`` hidden layers of ``width`` ReLU units, each followed by dropout if > 0."""
    import torch.nn as nn

    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
        raise HyperparameterError(f"mlp depth must be an integer >= 0, got {depth!r}")
    if not 0.0 <= dropout < 1.0:
        raise HyperparameterError(f"mlp dropout must satisfy 0 <= dropout < 1, got {dropout!r}")
    layers: list[nn.Module] = []
    size = inputs
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.ReLU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        size = width
    layers.append(nn.Linear(size, outputs))
    return nn.Sequential(*layers)
