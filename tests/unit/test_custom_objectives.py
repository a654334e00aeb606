"""What a hand-written objective leans on: seed_everything, the Checkpoint record, the
context's devices and ranks, and hpo.train's model(config, data)."""

from __future__ import annotations

import random

import numpy as np
import optuna
import pytest
import torch
import train_helpers
from train_helpers import config

import hpo
from hpo.context import Context
from hpo.train import Data, fit, load_dataset, mlp
from hpo.train.models import takes_data


def test_seed_everything_repeats_python_numpy_and_torch():
    def draw():
        return random.random(), np.random.rand(), torch.rand(1).item()

    assert hpo.seed_everything(2**40 + 3) == 2**40 + 3
    first = draw()
    hpo.seed_everything(2**40 + 3)
    assert draw() == first
    hpo.seed_everything(4)
    assert draw() != first
    with pytest.raises(TypeError, match="seed must be an int"):
        hpo.seed_everything("7")


def test_load_checkpoint_returns_a_typed_record(tmp_path):
    ctx, _ = train_helpers.make_ctx(tmp_path)
    assert ctx.load_checkpoint() is None
    ctx.save_checkpoint(12, {"w": torch.ones(2)})
    saved = ctx.load_checkpoint()
    assert isinstance(saved, hpo.Checkpoint)
    assert saved.step == 12 and torch.equal(saved.state["w"], torch.ones(2))
    assert "Checkpoint" in hpo.__all__ and "seed_everything" in hpo.__all__


def test_devices_default_to_the_device_and_follow_hpo_devices(tmp_path, monkeypatch):
    trial = optuna.create_study().ask()
    monkeypatch.delenv("HPO_DEVICES", raising=False)
    ctx = Context(trial, seed=0, device="cpu", checkpoint_root=tmp_path)
    assert (ctx.devices, ctx.rank, ctx.world_size) == (["cpu"], 0, 1)
    monkeypatch.setenv("HPO_DEVICES", "cuda:0, cuda:1")
    assert Context(trial, seed=0, device="cuda:0", checkpoint_root=tmp_path).devices == \
        ["cuda:0", "cuda:1"]


def test_metric_comes_from_the_worker_or_the_stored_study(tmp_path):
    study = optuna.create_study()
    study.set_user_attr("metric", "val_error")
    trial = study.ask()
    assert Context(trial, seed=0, checkpoint_root=tmp_path).metric == "val_error"
    assert Context(trial, seed=0, checkpoint_root=tmp_path, metric="acc").metric == "acc"


def test_only_rank_zero_writes(tmp_path):
    trial = optuna.create_study().ask()
    other = Context(trial, seed=0, device="cpu", checkpoint_root=tmp_path, rank=1,
                    world_size=2)
    path = other.save_checkpoint(3, {"x": 1})
    assert not path.exists() and other.load_checkpoint() is None
    other.report(3, 0.5)
    other.set_attr("note", 1)
    other.record_curves({"step": [3], "val_metric": [0.5]})
    assert trial.user_attrs == {}
    main = Context(trial, seed=0, device="cpu", checkpoint_root=tmp_path, world_size=2)
    main.save_checkpoint(3, {"x": 1})
    assert other.load_checkpoint().state == {"x": 1}  # every rank reads what rank 0 wrote
    other.remove_checkpoint(name="last")
    assert main.load_checkpoint() is not None
    with pytest.raises(ValueError, match="step must be an integer"):
        other.report(-1, 0.5)  # the arguments are still checked


@pytest.mark.parametrize("model, expected", [
    (lambda config: None, False),
    (lambda config, data: None, True),
    (lambda config, width=64: None, False),
    (lambda config, data=None: None, True),
    (lambda *args: None, True),
    (mlp, True),  # mlp(inputs, outputs, ...): two positional parameters without defaults
])
def test_which_model_functions_take_the_data(model, expected):
    assert takes_data(model) is expected


def test_a_model_function_sees_the_datas_sizes(tmp_path):
    seen = {}

    def model(config, data):
        seen.update(features=data.features, outputs=data.outputs, shape=data.input_shape)
        return mlp(data.features, data.outputs, width=16)

    ctx, _ = train_helpers.make_ctx(tmp_path)
    fit(model, "digits", config(max_train_steps=20, eval_every=20), ctx)
    assert seen == {"features": 64, "outputs": 10, "shape": (64,)}


def test_outputs_of_regression_targets():
    x = torch.zeros(4, 3)
    assert Data(x, torch.zeros(4), x, torch.zeros(4)).outputs == 1
    assert Data(x, torch.zeros(4, 2), x, torch.zeros(4, 2)).outputs == 2
    assert load_dataset("wine").outputs == 3
