"""The training loop: exact resume, best-checkpoint selection, curves, clipping, seeds."""

from __future__ import annotations

import math

import optuna
import pytest
import torch
from train_helpers import Killed, config, killed_at, make_ctx, tiny_model

from hpo import curves
from hpo.train import TrainSettings, TrainWarning, fit, mlp

# Everything that can break an exact resume at once: dropout (RNG state), several epochs
# (data order), Adam (optimizer state), a cosine schedule with warmup, clipping (its count),
# weight decay.
RESUME = config(optimizer="adam", learning_rate=3e-3, weight_decay=1e-4, lr_schedule="cosine",
                warmup_steps=20, grad_clip_norm=1.0, batch_size=32, max_train_steps=240,
                eval_every=40, dropout=0.3, width=32)
RECORDED = ("best_step", "best_metric", "final_metric", "clipped_fraction", "grad_norm_p90",
            "curves", "trainer")


def test_resume_is_exact(tmp_path):
    ctx, whole = make_ctx(tmp_path / "whole", seed=7)
    expected = fit(tiny_model, "digits", RESUME, ctx)

    ctx, trial = make_ctx(tmp_path / "cut", seed=7)
    with pytest.raises(Killed):
        fit(killed_at(130), "digits", RESUME, ctx)  # the last checkpoint was at step 120
    names = ctx.checkpoint_names()
    assert len(names) == 2 and names[0].startswith("best-step") and names[1] == "last"
    assert ctx.load_checkpoint(name="last").step == 120
    resumed = fit(tiny_model, "digits", RESUME, ctx)

    assert resumed == expected  # exactly, not approximately
    assert trial.user_attrs["resumed_from_step"] == 120
    for name in RECORDED:
        assert trial.user_attrs[name] == whole.user_attrs[name], name
    best = trial.user_attrs["best_step"]
    path = tmp_path / "whole" / _slot(whole) / f"best-step{best:09d}.pt"
    a = torch.load(path, weights_only=False)
    b = ctx.load_checkpoint(name=f"best-step{best:09d}")
    assert all(torch.equal(a["state"]["model"][k], v) for k, v in b.state["model"].items())
    assert "last" not in ctx.checkpoint_names()  # a finished trial needs no resume point


@pytest.mark.filterwarnings("ignore:The reported value is ignored")  # the fresh start re-reports
def test_a_checkpoint_from_another_config_is_not_resumed(tmp_path):
    ctx, _ = make_ctx(tmp_path / "whole", seed=7)
    expected = fit(tiny_model, "digits", RESUME, ctx)
    ctx, trial = make_ctx(tmp_path / "cut", seed=7)
    with pytest.raises(Killed):
        fit(killed_at(130), "digits", {**RESUME, "width": 16}, ctx)
    with pytest.warns(TrainWarning, match="different config"):
        assert fit(tiny_model, "digits", RESUME, ctx) == expected
    assert "resumed_from_step" not in trial.user_attrs


def test_same_seed_same_run_other_seed_other_run(tmp_path):
    runs = []
    for folder, seed in (("a", 1), ("b", 1), ("c", 2)):
        ctx, trial = make_ctx(tmp_path / folder, seed=seed)
        fit(tiny_model, "digits", config(dropout=0.2), ctx)
        runs.append(trial.user_attrs["curves"])
    assert runs[0] == runs[1]
    assert runs[0]["train_loss"] != runs[2]["train_loss"]


def scripted(values):
    """A validation metric that returns ``values`` in order, one per evaluation."""
    remaining = list(values)

    def metric(outputs, targets):
        return torch.tensor(remaining.pop(0), dtype=torch.float64)

    return metric


@pytest.mark.parametrize("direction, select, value, kept", [
    ("minimize", "best", 0.2, [40, 60]),
    ("minimize", "final", 0.25, [40, 60]),
    ("maximize", "best", 0.5, [10, 30]),
])
def test_best_checkpoints_are_kept_and_the_best_is_the_trial_s_value(
        tmp_path, direction, select, value, kept):
    ctx, trial = make_ctx(tmp_path, direction=direction)
    settings = TrainSettings(metric=scripted([0.5, 0.3, 0.4, 0.2, 0.35, 0.25]), keep_best=2,
                             select=select)
    assert fit(tiny_model, "digits", config(eval_every=10), ctx, settings) == value
    assert ctx.checkpoint_names() == [f"best-step{s:09d}" for s in kept]
    best_step = kept[0] if direction == "maximize" else 40
    assert (trial.user_attrs["best_step"], trial.user_attrs["best_metric"]) == (
        best_step, {40: 0.2, 10: 0.5}[best_step])
    assert trial.user_attrs["best_step_fraction"] == pytest.approx(best_step / 60, abs=1e-4)
    assert trial.user_attrs["final_metric"] == 0.25
    saved = ctx.load_checkpoint(name=f"best-step{best_step:09d}")
    assert (saved.step, saved.state["metric"]) == (best_step, trial.user_attrs["best_metric"])


def test_checkpoint_every_ranks_only_checkpointed_evaluations(tmp_path):
    ctx, trial = make_ctx(tmp_path)
    settings = TrainSettings(metric=scripted([0.5, 0.1, 0.4, 0.3, 0.35, 0.25]),
                             checkpoint_every=30)
    # Evaluations at 10..60, checkpoints at 30 and 60: step 20's 0.1 has no checkpoint to return.
    assert fit(tiny_model, "digits", config(eval_every=10), ctx, settings) == 0.25
    assert trial.user_attrs["best_step"] == 60


def test_curves_are_stored_and_read_back(tmp_path):
    ctx, trial = make_ctx(tmp_path)
    fit(tiny_model, "digits", config(max_train_steps=100, eval_every=20, lr_schedule="linear"), ctx)
    stored = curves.read(trial.study.trials[0])
    assert stored is not None
    assert set(stored) == {"step", "train_loss", "val_loss", "val_metric", "grad_norm",
                           "learning_rate"}
    assert stored["step"] == [20, 40, 60, 80, 100]
    assert all(len(series) == 5 and all(math.isfinite(v) for v in series)
               for series in stored.values())
    # Each point is the rate of the interval's last update, step - 1 in the schedule's count.
    expected = [0.01 * (1 - s / 100) for s in (19, 39, 59, 79, 99)]
    assert stored["learning_rate"] == pytest.approx(expected, rel=1e-4)
    assert stored["train_loss"][-1] < stored["train_loss"][0]  # it learned
    assert stored["val_metric"][-1] == pytest.approx(trial.user_attrs["final_metric"], rel=1e-4)
    assert trial.user_attrs["examples_per_s"] > 0
    assert trial.user_attrs["trainer"]["lr_schedule"] == "linear"
    assert trial.user_attrs["precision"] == "float32"


def test_clipping_fraction_is_recorded_and_clipping_really_clips(tmp_path):
    def run(clip):
        ctx, trial = make_ctx(tmp_path / str(clip))
        model = {}

        def build(config):
            model["net"] = tiny_model(config)
            model["start"] = [p.detach().clone() for p in model["net"].parameters()]
            return model["net"]

        values = config(optimizer="sgd_momentum", momentum=0.0, learning_rate=0.1,
                        grad_clip_norm=clip, max_train_steps=40)
        fit(build, "digits", values, ctx)
        with torch.no_grad():
            moved = torch.sqrt(sum(((p - s) ** 2).sum() for p, s in
                                   zip(model["net"].parameters(), model["start"], strict=True)))
        return trial.user_attrs, float(moved)

    attrs, moved = run(1e-6)
    assert attrs["clipped_fraction"] == 1.0
    assert moved <= 40 * 0.1 * 1e-6 * 1.001  # each plain SGD update is at most lr * clip long
    unclipped = run(1e6)[0]
    assert unclipped["clipped_fraction"] == 0.0
    middle = run(unclipped["grad_norm_p90"])[0]["clipped_fraction"]  # the playbook's threshold
    assert 0.0 < middle < 0.5


def test_a_diverged_run_returns_nan_and_says_where(tmp_path):
    ctx, trial = make_ctx(tmp_path)
    value = fit(tiny_model, "digits", config(optimizer="sgd_momentum", momentum=0.99,
                                             learning_rate=1e4), ctx)
    assert math.isnan(value)
    assert trial.user_attrs["diverged_step"] == 20
    assert trial.user_attrs["curves"]["train_loss"][-1] is None  # JSON has no NaN


def test_a_pruned_trial_keeps_its_curves_and_no_resume_point(tmp_path):
    ctx, trial = make_ctx(tmp_path, pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    with pytest.raises(optuna.TrialPruned):
        fit(tiny_model, "digits", config(), ctx)
    assert trial.user_attrs["curves"]["step"] == [20]
    assert "last" not in ctx.checkpoint_names()


def test_custom_data_and_a_custom_model(tmp_path):
    from hpo.train import Data

    x = torch.randn(200, 5)
    y = (x[:, 0] > 0).long()
    data = Data(x[:150], y[:150], x[150:], y[150:], name="half-space")
    ctx, _ = make_ctx(tmp_path)
    value = fit(lambda c: mlp(5, 2, width=8), data, config(max_train_steps=100), ctx)
    assert value < 0.2


def _slot(trial):
    """The trial's checkpoint folder, relative to the checkpoint root."""
    from hpo.context import Context

    return Context(trial, seed=0, checkpoint_root=".").checkpoint_dir
