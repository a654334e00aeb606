"""PyTorch Lightning: a ``LightningModule`` trained as an hpo trial.

```python
import hpo
from hpo.integrations import lightning as hpo_lightning

def train(config, ctx):
    hpo.seed_everything(ctx.seed)
    trainer = hpo_lightning.trainer(ctx, max_epochs=config["epochs"])
    return hpo_lightning.fit(ctx, trainer, MyModule(config), datamodule=MyData(config))
```

:func:`trainer` builds a ``Trainer`` with an :class:`HpoCallback`, the trial's devices (with
``ctx.world_size > 1``, DDP over the processes hpo started), and neither a logger nor
checkpoints of Lightning's own. :func:`fit` resumes from the trial's checkpoint if an earlier
attempt left one (Lightning's ``ckpt_path``: model, optimizer, loop state, and the callback's
RNG state), trains, and returns the study's metric. The ``LightningModule`` logs that metric
under the study's metric name: ``self.log("val_error", ...)`` in ``validation_step``.

The callback, at every validation: reports the metric through ``ctx.report`` (a pruned trial
stops the Lightning way, ``trainer.should_stop``, and :func:`fit` then raises
``optuna.TrialPruned``); records a curve point: ``step``, ``val_metric``, ``train_loss`` (the
mean of the training steps' losses since the last validation, from what ``training_step``
returns) and ``val_loss`` if the module logs one under that name. After every
``every_n_epochs`` epochs it saves the checkpoint a retried trial resumes from.

Works with the ``lightning`` package (``lightning.pytorch``) if it is installed, else with
``pytorch_lightning`` (``pip install 'hpo[lightning]'``). The Trainer, the callback and your
module must come from the same one: ``hpo.integrations.lightning.pl`` is the one in use.
"""

from __future__ import annotations

import importlib
import logging
import math
import os
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from hpo.errors import InputError

try:  # The unified package first; its pytorch module is the same code as pytorch_lightning.
    import lightning.pytorch as pl
except ImportError:
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise ImportError("hpo.integrations.lightning needs PyTorch Lightning: pip install "
                          "'hpo[lightning]' (pytorch-lightning), or lightning") from None

if TYPE_CHECKING:
    from hpo.context import Context

CHECKPOINT = "lightning-last.ckpt"  # in ctx.checkpoint_dir
SELECTIONS = ("best", "final")

__all__ = ["CHECKPOINT", "HpoCallback", "fit", "pl", "trainer"]


class HpoCallback(pl.Callback):
    """Reports, prunes, records curves and checkpoints a Lightning run for its trial.

    Resumable: its state (curves so far, RNG states) travels in Lightning's checkpoint.

    Args:
        ctx: The trial's context.
        monitor: The logged metric to report; default: the study's metric (``ctx.metric``).
        select: ``"best"``: the trial's value is the best validation value (the playbook's
            retrospective best checkpoint); ``"final"``: the last one.
        every_n_epochs: Epochs between the checkpoints a retried trial resumes from.
    """

    def __init__(self, ctx: Context, *, monitor: str | None = None, select: str = "best",
                 every_n_epochs: int = 1):
        if select not in SELECTIONS:
            raise InputError(f"HpoCallback select must be 'best' or 'final', got {select!r}")
        if isinstance(every_n_epochs, bool) or not isinstance(every_n_epochs, int) \
                or every_n_epochs < 1:
            raise InputError(f"HpoCallback every_n_epochs must be an integer >= 1, got "
                             f"{every_n_epochs!r}")
        self.ctx = ctx
        self.monitor = monitor or ctx.metric
        self.select = select
        self.every_n_epochs = every_n_epochs
        self.curves: dict[str, list[float]] = {"step": [], "val_metric": [], "train_loss": [],
                                               "val_loss": []}
        self.pruned: str | None = None
        self.resumed_from: int | None = None
        self._losses: list[torch.Tensor] = []  # since the last validation, on the device

    @property
    def path(self) -> Path:
        """The checkpoint a retried trial resumes from."""
        return self.ctx.checkpoint_dir / CHECKPOINT

    # --- every training step: its loss, for the curve ----------------------------------------

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           outputs: Any, batch: Any, batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor):
            self._losses.append(loss.detach().float())  # no host sync per step

    def _train_loss(self, trainer: pl.Trainer) -> float:
        """The mean training loss since the last validation, over every rank."""
        if not self._losses:
            mean = torch.tensor(math.nan)
        else:
            mean = torch.stack(self._losses).mean()
        self._losses = []
        return float(trainer.strategy.reduce(mean.to(trainer.strategy.root_device),
                                             reduce_op="mean"))

    # --- every validation: report, record, maybe stop ------------------------------------

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        train_loss = self._train_loss(trainer)  # a collective: before anything may raise
        metrics = trainer.callback_metrics
        if self.monitor not in metrics:
            raise InputError(
                f"the LightningModule logged no {self.monitor!r} (the study's metric): log it "
                f"in validation_step, self.log({self.monitor!r}, value); it logged: "
                f"{', '.join(sorted(metrics)) or 'nothing'}")
        value = float(metrics[self.monitor])
        step = int(trainer.global_step)
        self.curves["step"].append(step)
        self.curves["val_metric"].append(value)
        self.curves["train_loss"].append(train_loss)
        self.curves["val_loss"].append(float(metrics["val_loss"]) if "val_loss" in metrics
                                       else math.nan)
        pruned = None
        if not math.isfinite(value):
            pruned = "diverged"  # no use training on; the NaN value says infeasible
        else:
            import optuna

            try:
                self.ctx.report(step, value)
            except optuna.TrialPruned as e:
                pruned = str(e)
        # Rank 0 reported and decided; every rank stops together, or the others would wait
        # in their next collective for a rank that has left.
        pruned = trainer.strategy.broadcast(pruned, src=0)
        if pruned is not None:
            trainer.should_stop = True
            self.pruned = pruned if pruned != "diverged" else None

    # --- every n epochs: the checkpoint a retry resumes from -----------------------------

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs or trainer.should_stop:
            return
        final, partial = self.path, self.path.with_name(f".{CHECKPOINT}.partial")
        if trainer.is_global_zero:
            final.parent.mkdir(parents=True, exist_ok=True)
        # Every rank calls it (it is a collective), rank 0 writes; renamed into place, so a
        # worker killed mid-write leaves the previous checkpoint whole.
        trainer.save_checkpoint(partial)
        if trainer.is_global_zero:
            os.replace(partial, final)

    # --- resumable ------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        rng: Any = _rng_state()
        if self.ctx.world_size > 1:
            # Every rank's generators (their dropout differs), gathered for rank 0 to save:
            # Lightning builds the checkpoint on every rank, so this collective is matched.
            import torch.distributed as dist

            ranks: list[Any] = [None] * self.ctx.world_size
            dist.all_gather_object(ranks, rng)
            rng = {"ranks": ranks}
        return {"curves": self.curves, "rng": rng}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.curves = {k: list(v) for k, v in state_dict["curves"].items()}
        rng = state_dict["rng"]
        if "ranks" in rng:
            ranks = rng["ranks"]
            rng = ranks[self.ctx.rank] if len(ranks) == self.ctx.world_size else ranks[0]
        # Lightning restores model, optimizer and loops, not the random number generators;
        # the next epoch's shuffle and dropout draw from them. Restored here (after the
        # module's and datamodule's setup, before the fit loop makes the dataloader's
        # iterator, which draws its seeds: nothing draws in between, and a resumed run skips
        # the sanity check), they continue where the saved run stood.
        _set_rng_state(rng)

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                           checkpoint: dict[str, Any]) -> None:
        self.resumed_from = int(checkpoint["global_step"])

    # --- after fit ------------------------------------------------------------------------

    def value(self) -> float:
        """The trial's value: the best (or last) validation metric; NaN if it diverged."""
        values = self.curves["val_metric"]
        if not values:
            raise InputError(f"Lightning ran no validation, so there is no {self.monitor!r} to "
                             "return: give the Trainer validation data (val_dataloaders, or a "
                             "datamodule's val_dataloader)")
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
        if curves["step"]:
            self.ctx.record_curves(curves)
            values = self.curves["val_metric"]
            sign = 1.0 if self.ctx.direction == "minimize" else -1.0
            finite = [(sign * v, i) for i, v in enumerate(values) if math.isfinite(v)]
            if finite:
                best = min(finite)[1]
                self.ctx.set_attr("best_step", self.curves["step"][best])
                self.ctx.set_attr("best_metric", values[best])
            self.ctx.set_attr("final_metric", values[-1] if math.isfinite(values[-1]) else None)
        self.ctx.set_attr("lightning", {"package": pl.__name__, "version": pl.__version__})


def trainer(ctx: Context, *, monitor: str | None = None, select: str = "best",
            every_n_epochs: int = 1, **kwargs: Any) -> pl.Trainer:
    """A ``Trainer`` for this trial: its callback, devices and strategy; ``kwargs`` win.

    Defaults: the trial's accelerator and devices (``ctx.device``; with ``ctx.world_size >
    1``, ``strategy="ddp"`` over the processes hpo started, one device each), no logger, no
    checkpointing or progress bar or model summary of Lightning's own. Callbacks given in
    ``kwargs`` are kept, after the :class:`HpoCallback`.

    Args:
        ctx: The trial's context.
        monitor: See :class:`HpoCallback`.
        select: See :class:`HpoCallback`.
        every_n_epochs: See :class:`HpoCallback`.
        **kwargs: Anything ``Trainer`` takes: ``max_epochs``, ``gradient_clip_val``...
    """
    callback = HpoCallback(ctx, monitor=monitor, select=select, every_n_epochs=every_n_epochs)
    # Lightning logs a few lines at INFO for every Trainer ("GPU available: False..."): once
    # per trial, across a study, that drowns what matters. Warnings still show.
    for name in (pl.__name__, "lightning.fabric", "lightning_fabric"):
        if logging.getLogger(name).getEffectiveLevel() <= logging.INFO:
            logging.getLogger(name).setLevel(logging.WARNING)
    cuda = ctx.device.startswith("cuda")
    options: dict[str, Any] = {
        "accelerator": "gpu" if cuda else "cpu", "logger": False,
        "enable_checkpointing": False, "enable_progress_bar": False,
        "enable_model_summary": False, "default_root_dir": str(ctx.checkpoint_dir),
    }
    if ctx.world_size > 1:
        environments = importlib.import_module(f"{pl.__name__}.plugins.environments")
        strategies = importlib.import_module(f"{pl.__name__}.strategies")
        # hpo started the processes with torchrun's variables and joined their group:
        # Lightning must neither launch processes nor guess the cluster (a Slurm job's
        # variables would otherwise win).
        options.update(devices=ctx.world_size, num_nodes=1, strategy=strategies.DDPStrategy(
            cluster_environment=environments.TorchElasticEnvironment()))
    else:
        options["devices"] = [torch.device(ctx.device).index or 0] if cuda else 1
        # One process, hpo's: no cluster to detect (and no "srun is available" warning).
        environments = importlib.import_module(f"{pl.__name__}.plugins.environments")
        options["plugins"] = [environments.LightningEnvironment()]
    options.update(kwargs)
    options["callbacks"] = [callback, *kwargs.get("callbacks", [])]
    return pl.Trainer(**options)


def fit(ctx: Context, trainer: pl.Trainer, model: pl.LightningModule, **fit_kwargs: Any) -> float:
    """Train ``model`` as this trial (resuming an earlier attempt), return the study's metric.

    Args:
        ctx: The trial's context.
        trainer: A Trainer with an :class:`HpoCallback`, e.g. from :func:`trainer`.
        model: The LightningModule.
        **fit_kwargs: What ``Trainer.fit`` takes besides the model and ``ckpt_path``:
            ``datamodule=``, or ``train_dataloaders=`` and ``val_dataloaders=``.

    Returns:
        The best validation value of the study's metric (or the last, ``select="final"``).

    Raises:
        optuna.TrialPruned: When the study's pruner stopped the trial.
    """
    import optuna

    callbacks = [c for c in trainer.callbacks if isinstance(c, HpoCallback)]
    if len(callbacks) != 1:
        raise InputError(f"the Trainer has {len(callbacks)} HpoCallback(s), not one: build it "
                         "with hpo.integrations.lightning.trainer(ctx, ...), or pass "
                         "callbacks=[HpoCallback(ctx)]")
    if not isinstance(model, pl.LightningModule):
        raise InputError(f"fit(ctx, trainer, model): the model must be a {pl.__name__}."
                         f"LightningModule (the package hpo uses here), got "
                         f"{type(model).__module__}.{type(model).__name__}")
    callback = callbacks[0]
    if "ckpt_path" in fit_kwargs:
        raise InputError("fit(ctx, trainer, model): hpo chooses ckpt_path (the trial's own "
                         "checkpoint, if an earlier attempt left one); do not pass it")
    resume = callback.path if callback.path.is_file() else None
    trainer.fit(model, ckpt_path=str(resume) if resume else None, **fit_kwargs)
    if callback.resumed_from is not None:
        ctx.set_attr("resumed_from_step", callback.resumed_from)
    callback.record()
    if trainer.is_global_zero:
        callback.path.unlink(missing_ok=True)  # the trial is done with it: done or pruned
    if callback.pruned is not None:
        raise optuna.TrialPruned(callback.pruned)
    return callback.value()


def _rng_state() -> dict[str, Any]:
    # Plain ints, lists and tensors only: Lightning loads a checkpoint with torch.load's
    # weights_only=True, which refuses NumPy arrays.
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {"python": random.getstate(),
            "numpy": [kind, [int(k) for k in keys], int(pos), int(has_gauss), float(gauss)],
            "torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None}


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if state["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
