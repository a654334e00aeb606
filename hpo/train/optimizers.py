"""Optimizers by the playbook's names, with their hyperparameters read from the trial's config.

==============  ==============================================  ============================
optimizer       hyperparameters (required first)                defaults
==============  ==============================================  ============================
sgd_momentum    learning_rate, momentum, weight_decay            weight_decay=0
nesterov        learning_rate, momentum, weight_decay            weight_decay=0
adam            learning_rate, beta1, beta2, epsilon,            beta1=0.9, beta2=0.999,
                weight_decay                                     epsilon=1e-8, weight_decay=0
adamw           learning_rate, weight_decay, beta1, beta2,       as adam
                epsilon
nadam           learning_rate, beta1, beta2, epsilon,            as adam
                weight_decay
==============  ==============================================  ============================

``adam`` and ``nadam`` add ``weight_decay`` to the gradient (L2, as torch does); ``adamw``
decouples it, so it requires it: without weight decay AdamW is Adam. Defaults are the usual
ones, and the playbook's order for tuning Adam (FAQ "Choosing the optimizer": fewer than 10
trials, only the learning rate; then beta1; then epsilon; then beta2) relies on them. Every
value in effect, defaults included, is recorded with the trial.

Reading and checking the config needs no torch; only :meth:`OptimizerSpec.build` imports it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hpo.train import config as cfg

if TYPE_CHECKING:
    import torch

NAMES = ("learning_rate", "momentum", "beta1", "beta2", "epsilon", "weight_decay")

# name: (lowest allowed, highest allowed, whether each end is excluded)
RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "learning_rate": (0.0, None, True, False),
    "momentum": (0.0, 1.0, False, True),
    "beta1": (0.0, 1.0, False, True),
    "beta2": (0.0, 1.0, False, True),
    "epsilon": (0.0, None, True, False),
    "weight_decay": (0.0, None, False, False),
}

_ADAM_DEFAULTS = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8, "weight_decay": 0.0}


@dataclass(frozen=True)
class _Kind:
    required: tuple[str, ...]
    defaults: Mapping[str, float]

    @property
    def takes(self) -> tuple[str, ...]:
        return self.required + tuple(self.defaults)


OPTIMIZERS: dict[str, _Kind] = {
    "sgd_momentum": _Kind(("learning_rate", "momentum"), {"weight_decay": 0.0}),
    "nesterov": _Kind(("learning_rate", "momentum"), {"weight_decay": 0.0}),
    "adam": _Kind(("learning_rate",), _ADAM_DEFAULTS),
    "adamw": _Kind(("learning_rate", "weight_decay"),
                   {k: v for k, v in _ADAM_DEFAULTS.items() if k != "weight_decay"}),
    "nadam": _Kind(("learning_rate",), _ADAM_DEFAULTS),
}


@dataclass(frozen=True)
class OptimizerSpec:
    """A checked optimizer choice: its name and every hyperparameter value in effect."""

    name: str
    hyperparameters: Mapping[str, float]

    @property
    def learning_rate(self) -> float:
        return self.hyperparameters["learning_rate"]

    def describe(self) -> dict[str, Any]:
        return {"optimizer": self.name, **self.hyperparameters}

    def build(self, params: Iterable[torch.Tensor]) -> torch.optim.Optimizer:
        import torch

        h = self.hyperparameters
        if self.name in ("sgd_momentum", "nesterov"):
            return torch.optim.SGD(params, lr=h["learning_rate"], momentum=h["momentum"],
                                   weight_decay=h["weight_decay"],
                                   nesterov=self.name == "nesterov")
        cls = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW, "nadam": torch.optim.NAdam}
        return cls[self.name](params, lr=h["learning_rate"], betas=(h["beta1"], h["beta2"]),
                              eps=h["epsilon"], weight_decay=h["weight_decay"])


def from_config(config: Mapping[str, Any]) -> OptimizerSpec:
    """The optimizer a trial's config asks for, every name checked against it."""
    name = cfg.text(config, "optimizer", tuple(OPTIMIZERS))
    kind = OPTIMIZERS[name]
    for other in NAMES:
        if other not in kind.takes and cfg.has(config, other):
            users = [o for o, k in OPTIMIZERS.items() if other in k.takes]
            raise cfg.HyperparameterError(
                f"{other}={config[other]!r} does not apply to optimizer {name!r}, which takes "
                f"{', '.join(kind.takes)}; make it conditional, e.g. nuisance(..., "
                f"when={{\"optimizer\": {users!r}}}), or remove it"
            )
    values = {}
    for hp in kind.takes:
        low, high, low_open, high_open = RANGES[hp]
        values[hp] = cfg.number(config, hp, default=kind.defaults.get(hp), low=low, high=high,
                                low_open=low_open, high_open=high_open,
                                owner=f"optimizer {name!r}")
    return OptimizerSpec(name, values)
