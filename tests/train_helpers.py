"""Helpers for the hpo.train tests (CPU and GPU): a real Optuna trial and Context, tiny models
and configs, and a model that dies mid-step."""

from __future__ import annotations

from typing import Any

import optuna
import torch

from hpo.context import Context
from hpo.train import mlp

optuna.logging.set_verbosity(optuna.logging.WARNING)
torch.set_num_threads(1)  # the test machine is shared; a tiny model gains nothing from more


def make_ctx(folder, *, direction: str = "minimize", seed: int = 0, device: str = "cpu",
             pruner: optuna.pruners.BasePruner | None = None) -> tuple[Context, optuna.Trial]:
    """A Context on a fresh in-memory study's first trial, checkpoints under ``folder``."""
    study = optuna.create_study(direction=direction, pruner=pruner)
    trial = study.ask()
    return Context(trial, seed=seed, device=device, checkpoint_root=folder), trial


def tiny_model(config: Any) -> torch.nn.Module:
    return mlp(64, 10, width=config.get("width", 16), dropout=config.get("dropout", 0.0))


def config(**values: Any) -> dict[str, Any]:
    """A small, valid trainer config; keyword arguments override or add."""
    base = {"optimizer": "adam", "learning_rate": 1e-2, "batch_size": 32,
            "max_train_steps": 60, "eval_every": 20}
    base.update(values)
    return {k: v for k, v in base.items() if v is not None}


class Killed(BaseException):
    """Stands in for the worker being killed mid-step."""


def killed_at(step: int):
    """A model builder whose model dies in the forward pass of training step ``step``."""

    def build(config):
        model = tiny_model(config)
        calls = {"n": 0}

        def hook(module, args):
            if module.training:
                calls["n"] += 1
                if calls["n"] == step + 1:
                    raise Killed(step)

        model.register_forward_pre_hook(hook)
        return model

    return build
