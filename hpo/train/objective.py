"""The objective that binds a model and data to the trainer: ``objective(model, data)``.

It lives apart from :mod:`hpo.train.settings` so that the settings (which the trainer reads)
and the objective (which calls the trainer) do not import each other.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hpo.train.config import HyperparameterError
from hpo.train.settings import TrainSettings

if TYPE_CHECKING:
    from hpo.context import Context
    from hpo.train.data import Data


@dataclass(frozen=True)
class TrainObjective:
    """``objective(config, ctx) -> float`` for a Study: trains ``model(config)`` on ``data``.

    ``model`` may also take the data, ``model(config, data)``, to read its sizes
    (``data.features``, ``data.outputs``). ``data`` is a bundled dataset's name
    (``"digits"``), a :class:`~hpo.train.data.Data`, or a function ``data(device) -> Data``.
    ``hpo batch-scan`` reads the model and data from here.
    """

    model: Callable[..., Any]
    data: str | Data | Callable[[str], Data]
    settings: TrainSettings = field(default_factory=TrainSettings)
    # hpo.train removes its resume checkpoint itself and keeps the best ones on purpose
    # (the playbook's retrospective checkpoint selection): the worker leaves them alone.
    keeps_checkpoints = True

    def __call__(self, config: Mapping[str, Any], ctx: Context) -> float:
        from hpo.train.trainer import fit

        return fit(self.model, self.data, config, ctx, self.settings)


def objective(model: Callable[..., Any], data: str | Data | Callable[[str], Data],
              settings: TrainSettings | None = None) -> TrainObjective:
    """The objective for ``Study(objective=...)``: ``objective(mlp_for_config, "digits")``.

    ``model`` is ``model(config)`` or ``model(config, data)``, e.g.
    ``lambda config, data: mlp(data.features, data.outputs, width=config["width"])``.
    """
    if not callable(model):
        raise HyperparameterError(
            "objective(model, data): model must be a function model(config) or "
            f"model(config, data) -> torch.nn.Module, got {model!r}"
        )
    return TrainObjective(model, data, settings or TrainSettings())
