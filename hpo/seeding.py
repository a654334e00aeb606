"""One seed for every random number generator an objective is likely to use."""

from __future__ import annotations

import importlib.util
import random
import sys


def seed_everything(seed: int) -> int:
    """Seed Python's ``random``, NumPy's global generator and torch (CPU and every CUDA
    device) from one seed: ``hpo.seed_everything(ctx.seed)`` at the top of an objective.

    torch is imported only if it is installed, NumPy only if it is. A trial's processes
    (``ctx.world_size > 1``) all get the same seed, so they build the same initial model;
    data-parallel samplers shuffle by their own seed and epoch.

    Args:
        seed: The seed, usually ``ctx.seed``.

    Returns:
        The seed, for chaining: ``rng = np.random.default_rng(hpo.seed_everything(ctx.seed))``.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed_everything(seed): seed must be an int, got {seed!r}")
    random.seed(seed)
    if "numpy" in sys.modules or importlib.util.find_spec("numpy") is not None:
        import numpy as np

        np.random.seed(seed % 2**32)  # its legacy global generator takes 32 bits
    if "torch" in sys.modules or importlib.util.find_spec("torch") is not None:
        import torch

        torch.manual_seed(seed % 2**63)  # seeds every CUDA device too, lazily
    return seed
