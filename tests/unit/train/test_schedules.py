"""Every optimizer and schedule gives the learning rate its formula says, at every step."""

from __future__ import annotations

import math
import warnings

import pytest
from torch.optim.optimizer import register_optimizer_step_pre_hook
from train_helpers import config, make_ctx, tiny_model

from hpo.train import OPTIMIZERS, SCHEDULES, HyperparameterError, Schedule, TrainWarning, fit


def formula(name: str, lr: float, total: int, warmup: int, f: float | None, step: int) -> float:
    """The schedules as documented in hpo/train/schedules.py, written out independently."""
    if step < warmup:
        return lr * (step + 1) / warmup
    p = (step - warmup) / (total - warmup)
    if name == "constant":
        return lr
    if name == "linear":
        return lr * (1 - (1 - (f or 0.0)) * p)
    if name == "cosine":
        f = f or 0.0
        return lr * (f + (1 - f) * 0.5 * (1 + math.cos(math.pi * p)))
    if name == "exponential":
        return lr * (0.01 if f is None else f) ** p
    if name == "inverse_sqrt":
        return lr / math.sqrt((step + 1) / max(warmup, 1))
    raise AssertionError(name)


def test_anchor_values_computed_by_hand():
    assert Schedule("constant", 0.1, 100)(99) == 0.1
    assert Schedule("linear", 0.1, 100)(50) == pytest.approx(0.05)
    assert Schedule("linear", 0.1, 100, decay_factor=0.2)(50) == pytest.approx(0.06)
    assert Schedule("cosine", 0.1, 100)(50) == pytest.approx(0.05)
    assert Schedule("cosine", 0.1, 100)(0) == pytest.approx(0.1)
    assert Schedule("exponential", 0.1, 100)(50) == pytest.approx(0.01)  # 0.1 * 0.01 ** 0.5
    assert Schedule("inverse_sqrt", 0.1, 100)(3) == pytest.approx(0.05)  # 0.1 / sqrt(4)
    warm = Schedule("cosine", 0.1, 100, warmup_steps=10)
    assert [warm(s) for s in (0, 4, 9)] == pytest.approx([0.01, 0.05, 0.1])
    assert warm(10) == pytest.approx(0.1)  # decay starts after the warmup
    assert warm(55) == pytest.approx(0.05)  # halfway through the 90 post-warmup steps


@pytest.mark.parametrize("schedule", SCHEDULES)
@pytest.mark.parametrize("optimizer", sorted(OPTIMIZERS))
def test_the_optimizer_steps_with_the_schedule_s_rate_and_the_config_s_hyperparameters(
        tmp_path, optimizer, schedule):
    """What torch's optimizer really holds at each of its steps, seen by a step hook."""
    hps = {"learning_rate": 0.05, "weight_decay": 1e-3}
    if optimizer in ("sgd_momentum", "nesterov"):
        hps["momentum"] = 0.85
    else:
        hps.update(beta1=0.8, beta2=0.95, epsilon=1e-7)
    decay = 0.1 if schedule in ("linear", "cosine", "exponential") else None
    run = config(optimizer=optimizer, lr_schedule=schedule, warmup_steps=2, decay_factor=decay,
                 max_train_steps=20, eval_every=20, **hps)
    seen = []
    hook = register_optimizer_step_pre_hook(
        lambda opt, args, kwargs: seen.append((type(opt).__name__, dict(opt.param_groups[0]))))
    try:
        ctx, _ = make_ctx(tmp_path)
        fit(tiny_model, "digits", run, ctx)
    finally:
        hook.remove()
    assert len(seen) == 20
    expected = [formula(schedule, 0.05, 20, 2, decay, s) for s in range(20)]
    assert [group["lr"] for _, group in seen] == pytest.approx(expected, rel=1e-12)
    name, group = seen[0]
    assert name == {"sgd_momentum": "SGD", "nesterov": "SGD", "adam": "Adam", "adamw": "AdamW",
                    "nadam": "NAdam"}[optimizer]
    assert group["weight_decay"] == 1e-3
    if name == "SGD":
        assert (group["momentum"], group["nesterov"]) == (0.85, optimizer == "nesterov")
    else:
        assert (tuple(group["betas"]), group["eps"]) == ((0.8, 0.95), 1e-7)


def test_warmup_over_10_percent_of_the_step_budget_warns():
    with pytest.warns(TrainWarning, match=r"warmup_steps=11 is 11% of max_train_steps=100.*10%"):
        Schedule("linear", 0.1, 100, warmup_steps=11)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Schedule("linear", 0.1, 100, warmup_steps=10)  # exactly 10%: fine


def test_warmup_warning_reaches_the_trainer(tmp_path):
    ctx, _ = make_ctx(tmp_path)
    with pytest.warns(TrainWarning, match="warmup_steps=30"):
        fit(tiny_model, "digits", config(warmup_steps=30), ctx)


@pytest.mark.parametrize("kwargs, message", [
    (dict(name="step"), "lr_schedule must be one of 'constant', 'linear'"),
    (dict(name="constant", decay_factor=0.1),
     "decay_factor=0.1 does not apply to lr_schedule 'constant'"),
    (dict(name="exponential", decay_factor=0.0), "must be > 0 for an exponential decay"),
    (dict(name="linear", warmup_steps=101),
     "warmup_steps must be between 0 and max_train_steps=100"),
])
def test_bad_schedules_are_one_line_errors(kwargs, message):
    name = kwargs.pop("name")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrainWarning)
        with pytest.raises(HyperparameterError, match=message) as error:
            Schedule(name, 0.1, 100, **kwargs)
    assert "\n" not in str(error.value)
