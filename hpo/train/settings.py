"""How a trial is trained, as opposed to what is tuned.

What shapes the result is read from the trial's config (optimizer, learning rate, schedule,
batch size, step budget, evaluation interval, clipping), so it has a role in the study's space
and is recorded with every result. :class:`TrainSettings` holds the rest: the pipeline's
plumbing (checkpoints, loss and metric, precision, determinism, threads), fixed per study file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hpo.train.config import HyperparameterError

LOSSES = ("cross_entropy", "mse")
# Each named metric with the direction in which it improves.
METRICS = {"error_rate": "minimize", "accuracy": "maximize", "mse": "minimize"}
SELECTIONS = ("best", "final")


@dataclass(frozen=True)
class TrainSettings:
    """The trainer's plumbing for one study; every field has a sensible default.

    * ``checkpoint_every``: steps between checkpoints (None: at every evaluation); a multiple
      of the config's ``eval_every``, because a checkpoint is ranked by its validation metric.
    * ``keep_best``: how many of the best checkpoints stay on disk (the playbook's "keep the N
      best"); 0 keeps none, yet the best step and metric are still recorded.
    * ``select``: ``"best"`` (the trial's value is the retrospective best checkpoint's metric)
      or ``"final"`` (the metric at ``max_train_steps``).
    * ``loss``, ``metric``: a name (``cross_entropy``/``mse``; ``error_rate``/``accuracy``/``mse``)
      or a function ``f(outputs, targets) -> mean over the batch`` as a 0-d tensor.
    * ``bf16``: autocast the forward pass to bfloat16 on CUDA; ignored on CPU, where it is
      slower than float32 (the trial records which precision ran).
    * ``deterministic``: ``torch.use_deterministic_algorithms(True)``, for bit-exact reruns on
      GPU at some speed cost. CPU runs are exact without it.
    * ``cpu_threads``: torch threads per worker (None: torch's default); with several workers
      on one machine, cores divided by workers.
    * ``eval_batch_size``: examples per forward pass during evaluation.
    * ``grad_norm_every``: steps between gradient-norm measurements, plus the step before each
      evaluation; every step when ``grad_clip_norm`` is set (clipping needs it anyway). The
      ``grad_norm`` curve is the mean of an interval's measurements, ``grad_norm_p90`` their
      90th percentile (the playbook's guide for a clipping threshold).
    """

    checkpoint_every: int | None = None
    keep_best: int = 1
    select: str = "best"
    loss: str | Callable[..., Any] = "cross_entropy"
    metric: str | Callable[..., Any] = "error_rate"
    bf16: bool = False
    deterministic: bool = False
    cpu_threads: int | None = None
    eval_batch_size: int = 4096
    grad_norm_every: int = 10

    def __post_init__(self) -> None:
        def positive(name: str, value: Any, allow_none: bool = False,
                     allow_zero: bool = False) -> None:
            if value is None and allow_none:
                return
            low = 0 if allow_zero else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise HyperparameterError(
                    f"TrainSettings {name} must be an integer >= {low}"
                    f"{' or None' if allow_none else ''}, got {value!r}"
                )

        positive("checkpoint_every", self.checkpoint_every, allow_none=True)
        positive("keep_best", self.keep_best, allow_zero=True)
        positive("cpu_threads", self.cpu_threads, allow_none=True)
        positive("eval_batch_size", self.eval_batch_size)
        positive("grad_norm_every", self.grad_norm_every)
        if self.select not in SELECTIONS:
            raise HyperparameterError(
                f"TrainSettings select must be 'best' (the retrospective best checkpoint) or "
                f"'final' (the last step's metric), got {self.select!r}"
            )
        if isinstance(self.loss, str) and self.loss not in LOSSES:
            raise HyperparameterError(
                f"TrainSettings loss must be one of {', '.join(LOSSES)} or a function "
                f"loss(outputs, targets), got {self.loss!r}"
            )
        if isinstance(self.metric, str) and self.metric not in METRICS:
            raise HyperparameterError(
                f"TrainSettings metric must be one of {', '.join(METRICS)} or a function "
                f"metric(outputs, targets), got {self.metric!r}"
            )

    def check_direction(self, direction: str) -> None:
        """Refuse a named metric that improves the other way than the study optimizes."""
        if isinstance(self.metric, str) and METRICS[self.metric] != direction:
            raise HyperparameterError(
                f"TrainSettings metric {self.metric!r} is to {METRICS[self.metric]}, but the "
                f"study's direction is {direction!r}; make them agree"
            )

    def check_eval_every(self, eval_every: int) -> None:
        if self.checkpoint_every is not None and self.checkpoint_every % eval_every:
            raise HyperparameterError(
                f"TrainSettings checkpoint_every={self.checkpoint_every} must be a multiple of "
                f"eval_every={eval_every}: a checkpoint is ranked by its evaluation"
            )

    def describe(self) -> dict[str, Any]:
        """JSON-ready, for the trial's record."""
        def name(v: Any) -> Any:
            return v if isinstance(v, str) else getattr(v, "__name__", repr(v))

        return {"checkpoint_every": self.checkpoint_every, "keep_best": self.keep_best,
                "select": self.select, "loss": name(self.loss), "metric": name(self.metric),
                "bf16": self.bf16, "deterministic": self.deterministic,
                "grad_norm_every": self.grad_norm_every}
