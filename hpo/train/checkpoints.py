"""The N best checkpoints by validation metric: retrospective best-checkpoint selection.

The playbook ("Saving checkpoints and retrospectively selecting the best checkpoint"): train
for the full step budget, keep the N best checkpoints, and pick the best after training,
rather than stopping early on a guess. The files go through the trial's checkpoint API
(``ctx.save_checkpoint``), so a retried trial finds them where its first attempt left them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpo.context import Context

PREFIX = "best-step"


def name_of(step: int) -> str:
    return f"{PREFIX}{step:09d}"  # zero-padded: names sort by step


class BestCheckpoints:
    """Ranks checkpoints as they come; keeps the ``keep`` best on disk and removes the rest.

    With ``keep=0`` nothing is written, but the best step and metric are still tracked. Ties
    go to the earlier step. ``state_dict``/``load_state_dict`` make it resumable: the ranking
    is saved in the trainer's "last" checkpoint.
    """

    def __init__(self, ctx: Context, keep: int, *, minimize: bool):
        self._ctx = ctx
        self._keep = keep
        self._sign = 1.0 if minimize else -1.0
        self._ranked: list[tuple[float, int]] = []  # (metric, step), best first

    def consider(self, step: int, metric: float, state: Callable[[], Any]) -> None:
        """Rank the checkpoint at ``step``; ``state()`` is called only if it is kept."""
        ranked = sorted([*self._ranked, (metric, step)], key=lambda r: (self._sign * r[0], r[1]))
        kept, dropped = ranked[: max(self._keep, 1)], ranked[max(self._keep, 1):]
        if self._keep and (metric, step) in kept:
            self._ctx.save_checkpoint(step, state(), name=name_of(step))
        if self._keep:
            for _, old in dropped:
                self._ctx.remove_checkpoint(name=name_of(old))
        self._ranked = kept

    @property
    def best(self) -> tuple[int, float] | None:
        """(step, metric) of the best checkpoint so far, or None before the first."""
        return (self._ranked[0][1], self._ranked[0][0]) if self._ranked else None

    @property
    def kept_steps(self) -> list[int]:
        return [step for _, step in self._ranked] if self._keep else []

    def path(self, step: int) -> Path:
        return self._ctx.checkpoint_dir / f"{name_of(step)}.pt"

    def remove_stale(self) -> None:
        """Remove best-checkpoint files this ranking does not hold (an older run's)."""
        keep = {name_of(s) for s in self.kept_steps}
        for name in self._ctx.checkpoint_names():
            if name.startswith(PREFIX) and name not in keep:
                self._ctx.remove_checkpoint(name=name)

    def state_dict(self) -> dict[str, Any]:
        return {"ranked": [list(r) for r in self._ranked]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._ranked = [(float(m), int(s)) for m, s in state["ranked"]]
