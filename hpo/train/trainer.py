"""The training loop, the playbook's way (its "Additional guidance for the training pipeline").

* Evaluation every ``eval_every`` steps, never by time; the validation metric goes to
  ``ctx.report`` so a pruner can stop a trial.
* Curves (train loss, validation loss and metric, gradient norm, learning rate) at every
  evaluation, stored with the trial through :mod:`hpo.curves`.
* Checkpoints every ``checkpoint_every`` steps through the trial's checkpoint API: the N best
  by validation metric, and a "last" one to resume from. The trial's value is the
  retrospective best checkpoint's metric (or the final one, if the study says so).
* Exact resume: model, optimizer and dropout RNG state are checkpointed; the data order and the
  learning rate are functions of the step. A run interrupted at any step and resumed ends
  with the same metric as an uninterrupted one (on CPU; on GPU with ``deterministic=True``).
* Seeds from ``ctx.seed``, one independent stream each for model init, data order and
  dropout, so a change in one (a wider model) does not reshuffle the others.
* Data-parallel over a trial's processes (``ctx.world_size > 1``, started by
  :mod:`hpo.train.distributed`): each rank trains on its slice of every global batch of
  ``batch_size`` (so the optimizer sees the same batches as one process would), gradients are
  averaged by ``DistributedDataParallel``, the validation set is split and its sums added
  up, rank 0 writes the checkpoints (with every rank's RNG state) and the record.
* Per-step work stays on the device (loss sum, gradient norms, clip count): the only host
  syncs are at evaluations. The gradient norm is measured every ``grad_norm_every`` steps and
  before each evaluation (every step when clipping), because on a small model its few extra
  kernels would cost as much as 5-10% of a step.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import optuna
import torch
import torch.distributed as dist
import torch.nn.functional as F

from hpo.train import config as cfg
from hpo.train import models, optimizers, schedules
from hpo.train.checkpoints import BestCheckpoints
from hpo.train.config import HyperparameterError, TrainWarning
from hpo.train.data import Data, resolve
from hpo.train.settings import TrainSettings

if TYPE_CHECKING:
    from hpo.context import Context
    from hpo.train.optimizers import OptimizerSpec
    from hpo.train.schedules import Schedule

LAST = "last"
STATE_FORMAT = 1
CURVES = ("step", "train_loss", "val_loss", "val_metric", "grad_norm", "learning_rate")
KNOWN_NAMES = ("optimizer", *optimizers.NAMES, *schedules.NAMES, *cfg.LOOP_NAMES)

_LOSSES: dict[str, Callable[..., torch.Tensor]] = {
    "cross_entropy": F.cross_entropy,
    "mse": F.mse_loss,
}
_METRICS: dict[str, Callable[..., torch.Tensor]] = {
    # In float64, so 7 errors in 450 is recorded as 0.015556, not float32's 0.0155555559.
    "error_rate": lambda out, y: (out.argmax(-1) != y).double().mean(),
    "accuracy": lambda out, y: (out.argmax(-1) == y).double().mean(),
    "mse": F.mse_loss,
}


@dataclass(frozen=True)
class Plan:
    """Every trainer hyperparameter of one trial, read from its config and checked."""

    optimizer: OptimizerSpec
    schedule: Schedule
    batch_size: int
    max_train_steps: int
    eval_every: int
    grad_clip_norm: float | None

    def describe(self) -> dict[str, Any]:
        """Every value in effect, defaults included: what the trial really ran with."""
        return {**self.optimizer.describe(), **self.schedule.describe(),
                "batch_size": self.batch_size, "max_train_steps": self.max_train_steps,
                "eval_every": self.eval_every, "grad_clip_norm": self.grad_clip_norm}


def plan(config: Mapping[str, Any]) -> Plan:
    """Read and check the trainer's hyperparameters; raises HyperparameterError (one line)."""
    cfg.check_spelling(config, KNOWN_NAMES)
    optimizer = optimizers.from_config(config)
    max_train_steps = cfg.positive_int(config, "max_train_steps")
    schedule = schedules.from_config(config, optimizer.learning_rate, max_train_steps)
    clip = None
    if cfg.has(config, "grad_clip_norm") and config["grad_clip_norm"] is not None:
        clip = cfg.number(config, "grad_clip_norm", low=0.0, low_open=True)
    return Plan(optimizer, schedule, cfg.positive_int(config, "batch_size"), max_train_steps,
                cfg.positive_int(config, "eval_every"), clip)


def fit(model: Callable[..., torch.nn.Module],
        data: str | Data | Callable[[str], Data], config: Mapping[str, Any], ctx: Context,
        settings: TrainSettings | None = None) -> float:
    """Train ``model(config)`` (or ``model(config, data)``) on ``data`` as the config says;
    returns the trial's value.

    The value is the retrospective best checkpoint's validation metric, or the final one with
    ``TrainSettings(select="final")``; NaN if training diverged (the worker records the
    trial as infeasible). Resumes from the trial's "last" checkpoint if an earlier attempt
    left one.
    """
    settings = settings or TrainSettings()
    run_plan = plan(config)
    settings.check_direction(ctx.direction)
    settings.check_eval_every(run_plan.eval_every)
    if settings.cpu_threads is not None:
        torch.set_num_threads(settings.cpu_threads)
    if settings.deterministic:
        _deterministic()
    device = torch.device(ctx.device)
    _check_processes(ctx, run_plan)
    dataset = resolve(data, device)
    if run_plan.batch_size > dataset.train_examples:
        raise HyperparameterError(
            f"batch_size={run_plan.batch_size} is larger than the {dataset.train_examples} "
            f"training examples of {dataset.name!r}; use a batch size of at most that"
        )
    torch.manual_seed(seed_for(ctx.seed, "init"))
    net = models.build(model, config, dataset).to(device)
    # Each rank its own dropout stream; one process keeps the stream it always had.
    torch.manual_seed(seed_for(ctx.seed, "dropout", *([ctx.rank] if ctx.world_size > 1 else [])))
    return _Run(net, run_plan, settings, dataset, device, ctx, _fingerprint(config)).run()


def _check_processes(ctx: Context, run_plan: Plan) -> None:
    if ctx.world_size == 1:
        if len(ctx.devices) > 1:
            warnings.warn(f"hpo.train trains on {ctx.device} only, with {len(ctx.devices)} "
                          "devices in ctx.devices: run one process per GPU (--gpus-per-trial "
                          "K without --procs-per-trial 1)", TrainWarning, stacklevel=3)
        return
    if not (dist.is_available() and dist.is_initialized()
            and dist.get_world_size() == ctx.world_size):
        raise HyperparameterError(
            f"ctx.world_size is {ctx.world_size} but torch.distributed has no process group "
            "of that size; let hpo start the processes (--procs-per-trial)")
    if run_plan.batch_size % ctx.world_size:
        raise HyperparameterError(
            f"batch_size={run_plan.batch_size} does not split over {ctx.world_size} processes; "
            f"use a multiple of {ctx.world_size}")


def seed_for(seed: int, stream: str, *more: int) -> int:
    """An independent seed for one use of the trial's seed (init, dropout, data order...)."""
    words = [seed, *(ord(c) for c in stream), *more]
    return int(np.random.SeedSequence(words).generate_state(2, np.uint32).view(np.uint64)[0] >> 1)


class _Run:
    """One attempt at a trial: state, the loop, evaluation, checkpoints and the record."""

    def __init__(self, net: torch.nn.Module, run_plan: Plan, settings: TrainSettings, data: Data,
                 device: torch.device, ctx: Context, fingerprint: str):
        self.net, self.plan, self.settings, self.data = net, run_plan, settings, data
        self.device, self.ctx, self.fingerprint = device, ctx, fingerprint
        self.rank, self.world = ctx.rank, ctx.world_size
        # What the training steps call: the model itself, or its data-parallel wrapper, whose
        # backward averages the gradients over the ranks. Evaluation calls the model itself.
        self.forward = net if self.world == 1 else torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
        self.optimizer = run_plan.optimizer.build(net.parameters())
        self.params = [p for p in net.parameters() if p.requires_grad]
        self.loss = _LOSSES.get(settings.loss, settings.loss)  # type: ignore[arg-type]
        self.metric = _METRICS.get(settings.metric, settings.metric)  # type: ignore[arg-type]
        self.autocast = settings.bf16 and device.type == "cuda"
        self.checkpoint_every = settings.checkpoint_every or run_plan.eval_every
        self.best = BestCheckpoints(ctx, settings.keep_best, minimize=ctx.direction == "minimize")
        self.curves: dict[str, list[float]] = {name: [] for name in CURVES}
        # The gradient norm of each update (NaN where not measured) and the count of clipped
        # ones live on the device: reading them each step would sync the GPU on every update.
        self.norms = torch.full((run_plan.max_train_steps,), math.nan, device=device)
        self.clipped = torch.zeros((), dtype=torch.int64, device=device)
        self.train_time = 0.0  # seconds in training steps only, over every attempt
        self.step = 0

    # --- the loop ---------------------------------------------------------------------------

    def run(self) -> float:
        self._resume()
        outcome = "interrupted"
        try:
            value = self._train()
            outcome = "done"
            return value
        except optuna.TrialPruned:
            outcome = "pruned"
            raise
        finally:
            # A stopped or crashed attempt keeps its "last" checkpoint for the retry; a
            # finished one (done, diverged or pruned) records itself and needs it no more.
            if outcome != "interrupted":
                self._record()
                self.ctx.remove_checkpoint(name=LAST)

    def _train(self) -> float:
        net, optimizer, params = self.forward, self.optimizer, self.params
        batch, total, every = self.plan.batch_size, self.plan.max_train_steps, self.plan.eval_every
        local = batch // self.world  # this rank's slice of each global batch
        offset = self.rank * local
        schedule, clip, loss_fn = self.plan.schedule, self.plan.grad_clip_norm, self.loss
        norm_every = self.settings.grad_norm_every
        per_epoch = self.data.train_examples // batch  # drop the ragged last batch
        # Each step's loss, detached: a Python list costs no kernel per step; one stack at the
        # evaluation averages them.
        losses: list[torch.Tensor] = []
        epoch, lr_set = -1, math.nan
        xs = ys = self.data.x_train
        net.train()
        tic = time.perf_counter()
        while self.step < total:
            step = self.step
            if step // per_epoch != epoch:
                epoch = step // per_epoch
                xs, ys = self._shuffled(epoch)
            lr = schedule(step)
            if lr != lr_set:
                for group in optimizer.param_groups:
                    group["lr"] = lr
                lr_set = lr
            start = (step % per_epoch) * batch + offset
            if self.autocast:
                with torch.autocast(self.device.type, torch.bfloat16):
                    loss = loss_fn(net(xs[start:start + local]), ys[start:start + local])
            else:  # no autocast context at all: entering a disabled one still costs per step
                loss = loss_fn(net(xs[start:start + local]), ys[start:start + local])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.step = step + 1
            evaluate = self.step % every == 0 or self.step == total
            if clip is not None or evaluate or self.step % norm_every == 0:
                grads = [p.grad for p in params if p.grad is not None]
                norm = _global_norm(grads)
                if clip is not None:
                    _clip(grads, norm, clip)
                    self.clipped += norm > clip
                self.norms[step] = norm
            optimizer.step()
            losses.append(loss.detach())
            if evaluate:
                if self.device.type == "cuda":
                    torch.cuda.synchronize(self.device)
                self.train_time += time.perf_counter() - tic
                train_loss = self._mean_over_ranks(torch.stack(losses).float().mean())
                since, losses = len(losses), []
                if not self._evaluate(train_loss, lr, since):
                    return math.nan
                tic = time.perf_counter()
        best = self.best.best
        assert best is not None  # the final step is always a checkpoint step
        return best[1] if self.settings.select == "best" else self.curves["val_metric"][-1]

    def _shuffled(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The training set in epoch ``epoch``'s order: a function of the seed and epoch only,
        so a resumed run sees the very batches the uninterrupted one would have."""
        generator = torch.Generator().manual_seed(seed_for(self.ctx.seed, "data", epoch))
        order = torch.randperm(self.data.train_examples, generator=generator)
        if self.device.type == "cuda":
            # From pinned memory the copy is asynchronous; from ordinary memory, .to() would
            # wait for every queued step to finish, once an epoch.
            order = order.pin_memory().to(self.device, non_blocking=True)
        else:
            order = order.to(self.device)
        return self.data.x_train[order], self.data.y_train[order]

    # --- evaluation and checkpoints ---------------------------------------------------------

    def _evaluate(self, train_loss: float, lr: float, since: int) -> bool:
        """Evaluate, record, report, checkpoint; False if the run diverged."""
        val_loss, val_metric = self._validation()
        grad_norm = self.norms[self.step - since:self.step].nanmean().item()
        point = (self.step, train_loss, val_loss, val_metric, grad_norm, lr)
        for name, value in zip(CURVES, point, strict=True):
            self.curves[name].append(value)
        if not all(math.isfinite(v) for v in (train_loss, val_loss, val_metric)):
            self.ctx.set_attr("diverged_step", self.step)
            return False
        # Report first: a pruned trial ends here and needs no checkpoint.
        self.ctx.report(self.step, val_metric)
        if self.step % self.checkpoint_every == 0 or self.step == self.plan.max_train_steps:
            self.best.consider(self.step, val_metric,
                               lambda: {"model": self.net.state_dict(), "metric": val_metric})
            self.ctx.save_checkpoint(self.step, self._state(), name=LAST)
        return True

    def _mean_over_ranks(self, value: torch.Tensor) -> float:
        if self.world > 1:
            value = value.clone()
            dist.all_reduce(value)  # a sum: gloo has no average
            value /= self.world
        return value.item()

    @torch.no_grad()
    def _validation(self) -> tuple[float, float]:
        # Each rank evaluates its share; the sums over the shares are the whole set's.
        count, size = len(self.data.x_val), self.settings.eval_batch_size
        x, y = self.data.x_val[self.rank::self.world], self.data.y_val[self.rank::self.world]
        loss_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        metric_sum = torch.zeros((), dtype=torch.float64, device=self.device)
        self.net.eval()
        for start in range(0, len(x), size):
            xb, yb = x[start:start + size], y[start:start + size]
            with torch.autocast(self.device.type, torch.bfloat16, enabled=self.autocast):
                out = self.net(xb).float()
            loss_sum += self.loss(out, yb) * len(xb)
            metric_sum += self.metric(out, yb) * len(xb)
        self.net.train()
        if self.world > 1:
            sums = torch.stack([loss_sum, metric_sum])
            dist.all_reduce(sums)
            loss_sum, metric_sum = sums[0], sums[1]
        return (loss_sum / count).item(), (metric_sum / count).item()

    def _state(self) -> dict[str, Any]:
        cuda = self.device.type == "cuda"
        ranks_rng = None
        if self.world > 1:  # every rank's dropout stream, so a resume is exact on each
            ranks_rng = [None] * self.world
            mine = (torch.get_rng_state(), torch.cuda.get_rng_state(self.device) if cuda else None)
            dist.all_gather_object(ranks_rng, mine)
        return {
            "format": STATE_FORMAT,
            "config": self.fingerprint,
            "model": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if cuda else None,
            "ranks_rng": ranks_rng,
            "curves": self.curves,
            "best": self.best.state_dict(),
            "norms": self.norms[:self.step].cpu(),
            "clipped": int(self.clipped),
            "train_time": self.train_time,
        }

    def _resume(self) -> None:
        saved = self.ctx.load_checkpoint(name=LAST, map_location="cpu")
        state = saved.state if saved is not None else None
        if state is not None and (state.get("format") != STATE_FORMAT
                                  or state.get("config") != self.fingerprint):
            # Same slot, other hyperparameters or trainer version: an older study's leftover.
            warnings.warn(f"ignoring checkpoint {self.ctx.checkpoint_dir}/{LAST}.pt: it was "
                          "written by a run with a different config", TrainWarning, stacklevel=2)
            state = None
        if saved is None or state is None:
            self.best.remove_stale()
            return
        assert saved is not None  # the state came from it
        self.net.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        rng, cuda_rng = state["rng"], state["cuda_rng"]
        ranks_rng = state.get("ranks_rng")
        if self.world > 1 and ranks_rng is not None and len(ranks_rng) == self.world:
            rng, cuda_rng = ranks_rng[self.rank]
        torch.set_rng_state(rng)
        if cuda_rng is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(cuda_rng, self.device)
        self.curves = {name: list(values) for name, values in state["curves"].items()}
        self.best.load_state_dict(state["best"])
        self.best.remove_stale()
        self.step = saved.step
        self.norms[:self.step] = state["norms"].to(self.device)
        self.clipped.fill_(state["clipped"])
        self.train_time = state["train_time"]
        self.ctx.set_attr("resumed_from_step", self.step)

    # --- the trial's record -----------------------------------------------------------------

    def _record(self) -> None:
        """What the analysis reads back: curves, best checkpoint, throughput, clipping."""
        ctx = self.ctx
        if self.curves["step"]:
            ctx.record_curves(self.curves)
        attrs: dict[str, Any] = {
            "trainer": {**self.plan.describe(), **self.settings.describe()},
            "device": str(self.device),
            "precision": "bf16 autocast" if self.autocast else "float32",
            "examples_per_s": round(self.step * self.plan.batch_size / self.train_time)
            if self.train_time > 0 else None,
        }
        if self.step:
            norms = self.norms[:self.step]
            attrs["grad_norm_p90"] = float(f"{torch.nanquantile(norms.float().cpu(), 0.9):.5g}")
        if self.plan.grad_clip_norm is not None and self.step:
            attrs["clipped_fraction"] = round(int(self.clipped) / self.step, 5)
        best = self.best.best
        if best is not None:
            attrs["best_step"], attrs["best_metric"] = best[0], best[1]
            attrs["best_step_fraction"] = round(best[0] / self.plan.max_train_steps, 4)
            if self.settings.keep_best:
                attrs["best_checkpoint"] = str(self.best.path(best[0]))
        if self.curves["val_metric"]:
            attrs["final_metric"] = self.curves["val_metric"][-1]
        for name, value in attrs.items():
            ctx.set_attr(name, value)


def _global_norm(grads: list[torch.Tensor]) -> torch.Tensor:
    """The L2 norm of all gradients together, as a 0-d tensor on their device.

    What ``torch.nn.utils.get_total_norm`` computes, without its per-call Python grouping by
    device and dtype, which costs as much as the norm itself on a small model (this runs on
    every step; the model is on one device).
    """
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _clip(grads: list[torch.Tensor], norm: torch.Tensor, max_norm: float) -> None:
    """Scale gradients down to ``max_norm`` if above it, as ``clip_grad_norm_`` does (same
    epsilon), reusing the norm already computed; no host sync."""
    torch._foreach_mul_(grads, torch.clamp(max_norm / (norm + 1e-6), max=1.0))


def _fingerprint(config: Mapping[str, Any]) -> str:
    """A hash of the trial's config: a checkpoint is resumed only by the same config."""
    text = json.dumps({k: config[k] for k in config}, sort_keys=True, default=repr)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _deterministic() -> None:
    # cuBLAS needs a fixed workspace to be deterministic; set before its first use.
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
