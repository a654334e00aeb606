"""What an objective receives: ``objective(config, ctx) -> float``.

``config`` holds every hyperparameter's value for the trial, fixed ones included, and is
read-only. ``ctx`` is the trial's handle on the outside world: its number, its seed, the
device to train on, and ``report(step, value)`` for intermediate results (which is also how
a pruner stops an unpromising trial).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo import attrs, env

if TYPE_CHECKING:
    import optuna


class Config(Mapping[str, Any]):
    """A trial's hyperparameter values; reading an unknown name is an error, never a default.

    (init2winit's lesson: a typo in a hyperparameter name must fail loudly, not silently
    train with something else.)
    """

    def __init__(self, values: Mapping[str, Any], inactive: Mapping[str, str] | None = None):
        self._values = dict(values)
        # name -> why it is absent, e.g. "only when optimizer='sgd_momentum'"
        self._inactive = dict(inactive or {})

    def __getitem__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            if name in self._inactive:
                raise KeyError(
                    f"hyperparameter {name!r} is not set in this trial: it exists "
                    f"{self._inactive[name]}; check config.get({name!r}) or the condition"
                ) from None
            raise KeyError(
                f"unknown hyperparameter {name!r}; known: {', '.join(sorted(self._values))}"
            ) from None

    def get(self, name: str, default: Any = None) -> Any:
        if name in self._values:
            return self._values[name]
        if name in self._inactive:
            return default
        return self[name]  # raises: an unknown name is a typo even with a default

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Config({self._values!r})"


CHECKPOINT_ENV = "HPO_CHECKPOINT_DIR"  # hpo.env documents it
DEFAULT_CHECKPOINT_DIR = "hpo-checkpoints"


@dataclass(frozen=True)
class Checkpoint:
    step: int
    state: Any


class Context:
    """The trial's handle for the objective: number, seed, device, ``report``, checkpoints."""

    def __init__(
        self,
        trial: optuna.Trial,
        *,
        seed: int,
        device: str | None = None,
        checkpoint_root: str | Path | None = None,
        study_name: str = "",
    ):
        self._trial = trial
        self.seed = seed
        self._device = device
        self._checkpoint_root = Path(
            checkpoint_root or env.raw(CHECKPOINT_ENV) or DEFAULT_CHECKPOINT_DIR
        )
        self._study_name = study_name or trial.study.study_name

    @property
    def trial_number(self) -> int:
        return self._trial.number

    @property
    def device(self) -> str:
        """``$HPO_DEVICE`` if set, else ``cuda:0`` when a GPU is visible, else ``cpu``.

        A worker pinned to one GPU (``CUDA_VISIBLE_DEVICES``) always sees it as ``cuda:0``.
        """
        if self._device is None:
            self._device = env.raw("HPO_DEVICE") or _default_device()
        return self._device

    def report(self, step: int, value: float) -> None:
        """Record an intermediate value at a training step; stops the trial if pruned.

        Raises ``optuna.TrialPruned`` when the study's pruner decides, which the worker
        records as PRUNED: let it propagate out of the objective.
        """
        import optuna

        if not isinstance(step, int) or isinstance(step, bool) or step < 0:
            raise ValueError(f"report(step, value): step must be an integer >= 0, got {step!r}")
        value = float(value)
        if math.isnan(value):
            return  # A NaN says the run diverged; the final value decides that, not the pruner.
        self._trial.report(value, step)
        if self._trial.should_prune():
            raise optuna.TrialPruned(f"pruned at step {step} with value {value:g}")


    def set_attr(self, name: str, value: Any) -> None:
        """Record a JSON-ready value on the trial (a user attribute the dashboard shows).

        The keys hpo itself relies on (``hpo.attrs.RESERVED``: slot, seed, host, error...)
        are refused: writing one would silently break retries or the design.
        """
        from hpo import attrs
        from hpo.errors import InputError

        if name in attrs.RESERVED:
            raise InputError(
                f"ctx.set_attr({name!r}, ...): {name!r} is one of hpo's own trial attributes "
                f"(reserved: {', '.join(sorted(attrs.RESERVED))}); use another name, "
                f"e.g. 'my_{name}'")
        self._trial.set_user_attr(name, value)

    @property
    def direction(self) -> str:
        """The study's direction, 'minimize' or 'maximize': which way "best" points."""
        return self._trial.study.direction.name.lower()

    def record_curves(self, curves: Mapping[str, Any]) -> None:
        """Store training curves with the trial in :mod:`hpo.curves`' compact format."""
        from hpo import curves as stored

        stored.record(self._trial, curves)

    # --- checkpoints ------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        """This trial's checkpoint folder, shared by every attempt at the same trial.

        Keyed by study and slot, not by trial number: a retried trial is a new trial (new
        number) of the same slot with the same parameters, and must find what its first
        attempt wrote. Point every worker at one shared folder (``--checkpoint-dir`` or
        ``$HPO_CHECKPOINT_DIR``) so a retry on another machine finds it too.
        """
        slot = self._trial.user_attrs.get(attrs.SLOT, f"trial-{self._trial.number}")
        folder = f"slot-{slot}"
        if attrs.SEED_RERUN_OF in self._trial.user_attrs:
            # A seed re-run (hpo seeds) keeps its original's slot but is a run of its own: it
            # must neither resume the original's (or a sibling re-run's) checkpoints nor
            # delete them. Keyed by its seed, so a retry of the re-run still finds its own.
            folder += f"-seed-{self._trial.user_attrs.get(attrs.SEED)}"
        return self._checkpoint_root / _safe(self._study_name) / folder

    def save_checkpoint(self, step: int, state: Any, *, name: str = "last") -> Path:
        """Write ``state`` (anything ``torch.save`` takes) reached at ``step``, atomically.

        The file is written beside its final name and renamed into place, so a worker killed
        mid-write leaves the previous checkpoint intact, never a half-written one.
        """
        import torch

        folder = self.checkpoint_dir
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / f"{_safe(name)}.pt"
        partial = folder / f".{final.name}.{os.getpid()}.partial"
        torch.save({"step": int(step), "state": state}, partial)
        os.replace(partial, final)
        return final

    def load_checkpoint(self, *, name: str = "last", map_location: Any = None) -> Checkpoint | None:
        """The checkpoint saved under ``name`` by this or an earlier attempt, else None."""
        import torch

        path = self.checkpoint_dir / f"{_safe(name)}.pt"
        if not path.is_file():
            return None
        saved = torch.load(path, map_location=map_location or self.device, weights_only=False)
        return Checkpoint(step=saved["step"], state=saved["state"])

    def remove_checkpoint(self, *, name: str) -> None:
        """Delete the checkpoint saved under ``name``, if there is one."""
        (self.checkpoint_dir / f"{_safe(name)}.pt").unlink(missing_ok=True)

    def checkpoint_names(self) -> list[str]:
        """The names of this trial's saved checkpoints (by any attempt), sorted."""
        folder = self.checkpoint_dir
        return sorted(p.stem for p in folder.glob("*.pt")) if folder.is_dir() else []


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def _default_device() -> str:
    try:
        import torch
    except ImportError:
        return "cpu"
    return "cuda:0" if torch.cuda.is_available() else "cpu"
