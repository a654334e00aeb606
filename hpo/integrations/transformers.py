"""Hugging Face Transformers: a ``Trainer`` run as an hpo trial.

```python
from transformers import Trainer
from hpo.integrations import transformers as hpo_transformers

def train(config, ctx):
    args = hpo_transformers.training_args(ctx, learning_rate=config["learning_rate"],
                                          num_train_epochs=config["epochs"])
    trainer = Trainer(model=make_model(config), args=args, train_dataset=train_set,
                      eval_dataset=val_set, compute_metrics=error_rate,
                      callbacks=[hpo_transformers.HpoTrainerCallback(ctx)])
    return hpo_transformers.train(ctx, trainer)
```

:func:`training_args` builds ``TrainingArguments`` for the trial: ``seed=ctx.seed``, the
trial's device (with ``ctx.world_size > 1``, Accelerate's data-parallel over the processes
hpo started, with the process group hpo initialized), an evaluation, a log line and a
checkpoint at the end of every epoch (``"steps"`` with ``eval_steps=N`` works too), checkpoints
in ``ctx.checkpoint_dir``, no reporting to outside services, no progress bars. :func:`train`
resumes from the last checkpoint an earlier attempt completed (``resume_from_checkpoint``:
model, optimizer, scheduler, RNG states, the position in the data), trains, and returns the
study's metric.

The callback, at every evaluation: reads the study's metric from ``metrics`` (the study's
metric name as ``compute_metrics`` returns it, which the Trainer prefixes with ``eval_``:
metric ``"eval_error"`` for ``{"error": ...}``), reports it through ``ctx.report`` (a pruned
trial stops the Trainer's way, ``control.should_training_stop``, on every process, and
:func:`train` then raises ``optuna.TrialPruned``), and records a curve point (``step``,
``val_metric``, ``val_loss`` from ``eval_loss``, ``train_loss`` from the last logged loss).
After every checkpoint it notes, atomically, which one is complete: a worker killed while
the Trainer writes one resumes from the one before.

Needs ``pip install 'hpo[transformers]'`` (transformers and accelerate).
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hpo.errors import InputError

try:
    import transformers
    from transformers import TrainerCallback, TrainingArguments
    from transformers.trainer_callback import PrinterCallback
except ImportError:
    raise ImportError("hpo.integrations.transformers needs Hugging Face Transformers: pip "
                      "install 'hpo[transformers]'") from None

if TYPE_CHECKING:
    from transformers import Trainer, TrainerControl, TrainerState

    from hpo.context import Context

OUTPUT = "transformers"  # the Trainer's output_dir, in ctx.checkpoint_dir
LATEST = "transformers-last.json"  # which checkpoint is complete, in ctx.checkpoint_dir
SELECTIONS = ("best", "final")

__all__ = ["HpoTrainerCallback", "train", "training_args"]


class HpoTrainerCallback(TrainerCallback):
    """Reports, prunes, records curves and notes checkpoints of a Trainer for its trial.

    Args:
        ctx: The trial's context.
        monitor: The key of ``metrics`` to report; default: the study's metric, as is or
            with the Trainer's ``eval_`` prefix.
        select: ``"best"``: the trial's value is the best evaluation (the playbook's
            retrospective best checkpoint); ``"final"``: the last one.
    """

    def __init__(self, ctx: Context, *, monitor: str | None = None, select: str = "best"):
        if select not in SELECTIONS:
            raise InputError(f"HpoTrainerCallback select must be 'best' or 'final', got "
                             f"{select!r}")
        self.ctx = ctx
        self.monitor = monitor
        self.select = select
        self.curves: dict[str, list[float]] = {"step": [], "val_metric": [], "train_loss": [],
                                               "val_loss": []}
        self.pruned: str | None = None

    @property
    def latest(self) -> Path:
        return self.ctx.checkpoint_dir / LATEST

    def _key(self, metrics: dict[str, Any]) -> str:
        metric = self.ctx.metric
        names = ([self.monitor] if self.monitor else
                 [metric] if metric.startswith("eval_") else [metric, f"eval_{metric}"])
        for name in names:
            if name in metrics:
                return name
        raise InputError(
            f"the Trainer's evaluation has no {' or '.join(map(repr, names))} (the study's "
            f"metric): return it from compute_metrics (the Trainer adds the eval_ prefix); "
            f"it has: {', '.join(sorted(metrics))}")

    def on_evaluate(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                    metrics: dict[str, Any] | None = None, **kwargs: Any) -> None:
        import optuna

        metrics = metrics or {}
        value = float(metrics[self._key(metrics)])
        step = int(state.global_step)
        losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
        self.curves["step"].append(step)
        self.curves["val_metric"].append(value)
        self.curves["val_loss"].append(float(metrics.get("eval_loss", math.nan)))
        self.curves["train_loss"].append(float(losses[-1]) if losses else math.nan)
        pruned = None
        if not math.isfinite(value):
            pruned = "diverged"
        else:
            try:
                self.ctx.report(step, value)
            except optuna.TrialPruned as e:
                pruned = str(e)
        pruned = _from_rank_zero(self.ctx, pruned)  # every process stops together, or none
        if pruned is not None:
            control.should_training_stop = True
            self.pruned = pruned if pruned != "diverged" else None

    def on_save(self, args: TrainingArguments, state: TrainerState, control: TrainerControl,
                **kwargs: Any) -> None:
        # Called once the checkpoint is written whole; the note is renamed into place, so it
        # always names a complete checkpoint.
        if self.ctx.rank != 0:
            return
        folder = Path(str(args.output_dir)) / f"checkpoint-{state.global_step}"
        note = {"path": str(folder), "step": int(state.global_step), "curves": self.curves}
        partial = self.latest.with_name(f".{LATEST}.partial")
        partial.write_text(json.dumps(note))
        os.replace(partial, self.latest)

    def resume(self) -> tuple[str, int] | None:
        """The complete checkpoint an earlier attempt left, and its step; None if there is
        none (the curves recorded up to it come back with it)."""
        if not self.latest.is_file():
            return None
        note = json.loads(self.latest.read_text())
        if not Path(note["path"]).is_dir():
            return None
        self.curves = {k: list(v) for k, v in note["curves"].items()}
        return note["path"], int(note["step"])

    def value(self) -> float:
        """The trial's value: the best (or last) evaluation; NaN if it diverged."""
        values = self.curves["val_metric"]
        if not values:
            raise InputError("the Trainer never evaluated, so there is no value to return: "
                             "give it an eval_dataset, and eval_strategy='epoch' or 'steps' "
                             "(training_args(ctx, ...) sets 'epoch')")
        if not math.isfinite(values[-1]):
            return math.nan
        if self.select == "final":
            return values[-1]
        sign = 1.0 if self.ctx.direction == "minimize" else -1.0
        return min(values, key=lambda v: sign * v)

    def record(self) -> None:
        """The trial's curves and summary attributes (rank 0's; a no-op on the others)."""
        curves = {k: v for k, v in self.curves.items()
                  if k in ("step", "val_metric") or any(math.isfinite(x) for x in v)}
        values = self.curves["val_metric"]
        if values:
            self.ctx.record_curves(curves)
            sign = 1.0 if self.ctx.direction == "minimize" else -1.0
            finite = [(sign * v, i) for i, v in enumerate(values) if math.isfinite(v)]
            if finite:
                best = min(finite)[1]
                self.ctx.set_attr("best_step", self.curves["step"][best])
                self.ctx.set_attr("best_metric", values[best])
            self.ctx.set_attr("final_metric", values[-1] if math.isfinite(values[-1]) else None)
        self.ctx.set_attr("transformers_version", transformers.__version__)


def training_args(ctx: Context, **kwargs: Any) -> TrainingArguments:
    """``TrainingArguments`` for this trial; ``kwargs`` win (``learning_rate=...``).

    Defaults: ``output_dir`` in the trial's checkpoint folder, ``seed=ctx.seed``, CPU or
    the trial's GPU (``use_cpu``), evaluation, logging and a checkpoint every epoch (one kept,
    the last: what a retry resumes from), ``report_to="none"``, no progress bars.
    """
    every = kwargs.get("eval_strategy", "epoch")
    options: dict[str, Any] = {
        "output_dir": str(ctx.checkpoint_dir / OUTPUT),
        "seed": ctx.seed % 2**32,  # NumPy's global seed takes 32 bits
        "use_cpu": not ctx.device.startswith("cuda"),
        "eval_strategy": every, "save_strategy": every, "logging_strategy": every,
        "save_total_limit": 1, "report_to": "none", "disable_tqdm": True,
        "log_level": "warning",
    }
    if "eval_steps" in kwargs:
        options.update(save_steps=kwargs["eval_steps"], logging_steps=kwargs["eval_steps"])
    options.update(kwargs)
    return TrainingArguments(**options)


def train(ctx: Context, trainer: Trainer) -> float:
    """Train as this trial (resuming an earlier attempt), return the study's metric.

    Args:
        ctx: The trial's context.
        trainer: A Trainer with an :class:`HpoTrainerCallback` in its callbacks.

    Returns:
        The best evaluation of the study's metric (or the last, ``select="final"``).

    Raises:
        optuna.TrialPruned: When the study's pruner stopped the trial.
    """
    import optuna

    callbacks = [c for c in trainer.callback_handler.callbacks
                 if isinstance(c, HpoTrainerCallback)]
    if len(callbacks) != 1:
        raise InputError(f"the Trainer has {len(callbacks)} HpoTrainerCallback(s), not one: "
                         "pass callbacks=[HpoTrainerCallback(ctx)] to Trainer(...)")
    callback = callbacks[0]
    # With progress bars off the Trainer prints every log line instead, and every save
    # draws a bar of its own: once per epoch and trial, across a study, that drowns what
    # matters. The trial's curves hold the same numbers.
    trainer.remove_callback(PrinterCallback)
    transformers.utils.logging.disable_progress_bar()
    resume = callback.resume()
    trainer.train(resume_from_checkpoint=resume[0] if resume else None)
    if resume is not None:
        ctx.set_attr("resumed_from_step", resume[1])
    callback.record()
    if ctx.rank == 0:  # the trial is done with its checkpoints: done or pruned
        callback.latest.unlink(missing_ok=True)
        shutil.rmtree(ctx.checkpoint_dir / OUTPUT, ignore_errors=True)
    if callback.pruned is not None:
        raise optuna.TrialPruned(callback.pruned)
    return callback.value()


def _from_rank_zero(ctx: Context, value: Any) -> Any:
    """Rank 0's ``value`` on every process of the trial (``value`` itself in a one-process
    trial)."""
    if ctx.world_size == 1:
        return value
    import torch.distributed as dist

    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
