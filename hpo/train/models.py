"""A multilayer perceptron builder, enough for the example studies and the tests.

Your own model is any ``torch.nn.Module``; the trainer takes a function ``model(config)``
that builds it, so that it is built after the trial's seed is set (same seed, same init).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hpo.train.config import HyperparameterError

if TYPE_CHECKING:
    import torch


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
