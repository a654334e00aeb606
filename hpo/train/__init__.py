"""hpo.train: a reference PyTorch trainer that follows the Deep Learning Tuning Playbook.

A study's objective in one line::

    from hpo.train import mlp, objective

    def model(config):
        return mlp(64, 10, width=config["width"])

    study = Study(..., objective=objective(model, "digits"))

The trainer reads the playbook's hyperparameter names from the trial's config (``optimizer``,
``learning_rate``, ``momentum``, ``beta1``, ``beta2``, ``epsilon``, ``weight_decay``,
``lr_schedule``, ``warmup_steps``, ``decay_factor``, ``batch_size``, ``max_train_steps``,
``eval_every``, ``grad_clip_norm``) and its plumbing from :class:`TrainSettings`.

Importing this package does not import torch (a study file stays quick to load in the
``hpo run`` process); torch loads with the first trial. The public API is ``__all__``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hpo.train.config import HyperparameterError, TrainWarning
from hpo.train.data import DATASETS, Data, load_dataset
from hpo.train.models import mlp
from hpo.train.objective import TrainObjective, objective
from hpo.train.optimizers import OPTIMIZERS, OptimizerSpec
from hpo.train.schedules import SCHEDULES, Schedule
from hpo.train.settings import TrainSettings

if TYPE_CHECKING:
    from hpo.train.trainer import Plan, fit, plan

__all__ = [
    "DATASETS",
    "OPTIMIZERS",
    "SCHEDULES",
    "Data",
    "HyperparameterError",
    "OptimizerSpec",
    "Plan",
    "Schedule",
    "TrainObjective",
    "TrainSettings",
    "TrainWarning",
    "fit",
    "load_dataset",
    "mlp",
    "objective",
    "plan",
]

_LAZY = {"fit", "plan", "Plan"}  # these live with the loop, which imports torch


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from hpo.train import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'hpo.train' has no attribute {name!r}")
