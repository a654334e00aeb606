"""Hyperparameter names are read strictly: a wrong one is one clear error before training."""

from __future__ import annotations

import pytest
from train_helpers import config, make_ctx, tiny_model

from hpo import Config
from hpo.train import HyperparameterError, fit, plan


@pytest.mark.parametrize("values, message", [
    # a name that belongs to another optimizer: says which it takes and how to fix the space
    (dict(optimizer="adam", momentum=0.9),
     r"^momentum=0.9 does not apply to optimizer 'adam', which takes learning_rate, beta1, "
     r"beta2, epsilon, weight_decay; make it conditional, e\.g\. nuisance\(\.\.\., "
     r"when=\{\"optimizer\": \['sgd_momentum', 'nesterov'\]\}\), or remove it$"),
    (dict(optimizer="sgd_momentum", momentum=0.9, beta1=0.9),
     "beta1=0.9 does not apply to optimizer 'sgd_momentum'"),
    # a required one missing
    (dict(optimizer="sgd_momentum"),
     "optimizer 'sgd_momentum' needs momentum, which this trial does not set"),
    (dict(optimizer="adamw"), "optimizer 'adamw' needs weight_decay"),
    (dict(learning_rate=None), "needs learning_rate"),
    (dict(eval_every=None), "the trainer needs eval_every"),
    # misspelled, or another library's name
    (dict(learning_rte=0.1),
     "unknown hyperparameter 'learning_rte': the trainer's name for it is learning_rate"),
    (dict(lr=0.1), "unknown hyperparameter 'lr': the trainer's name for it is learning_rate"),
    (dict(beta_1=0.9), "the trainer's name for it is beta1"),
    # out of range, or not one of the names
    (dict(beta1=1.0), r"beta1 must satisfy 0.0 <= beta1 < 1.0, got 1.0"),
    (dict(learning_rate=0.0), r"learning_rate must satisfy 0.0 < learning_rate, got 0.0"),
    (dict(learning_rate="fast"), "learning_rate must be a finite number, got 'fast'"),
    (dict(optimizer="rmsprop"),
     "optimizer must be one of 'sgd_momentum', 'nesterov', 'adam', 'adamw', 'nadam', "
     "got 'rmsprop'"),
    (dict(lr_schedule="step"), "lr_schedule must be one of"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(warmup_steps=2.5), "warmup_steps must be an integer number of steps, got 2.5"),
    (dict(grad_clip_norm=-1.0), "grad_clip_norm must satisfy 0.0 < grad_clip_norm"),
])
def test_bad_hyperparameters_are_one_line_errors(values, message):
    with pytest.raises(HyperparameterError, match=message) as error:
        plan(config(**values))
    assert "\n" not in str(error.value)


def test_model_hyperparameters_are_left_alone():
    run = plan(config(width=32, depth=2, dropout=0.5, activation="relu"))
    assert run.optimizer.name == "adam"


def test_a_conditional_name_absent_from_the_trial_is_fine():
    """hpo's Config raises KeyError for a conditional name inactive in this trial."""
    values = Config(config(), inactive={"momentum": "only when optimizer='sgd_momentum'"})
    assert plan(values).optimizer.describe() == {
        "optimizer": "adam", "learning_rate": 1e-2, "beta1": 0.9, "beta2": 0.999,
        "epsilon": 1e-8, "weight_decay": 0.0}


def test_fit_fails_before_training_and_writes_nothing(tmp_path):
    ctx, trial = make_ctx(tmp_path)
    with pytest.raises(HyperparameterError, match="momentum=0.9 does not apply"):
        fit(tiny_model, "digits", config(momentum=0.9), ctx)
    assert not any(tmp_path.iterdir())
    assert trial.user_attrs == {}


def test_batch_larger_than_the_training_set_is_refused(tmp_path):
    ctx, _ = make_ctx(tmp_path)
    with pytest.raises(HyperparameterError, match=r"batch_size=5000 is larger than the 1347 "
                                                  r"training examples of 'digits'"):
        fit(tiny_model, "digits", config(batch_size=5000), ctx)


def test_named_metric_must_agree_with_the_study_direction(tmp_path):
    from hpo.train import TrainSettings

    ctx, _ = make_ctx(tmp_path, direction="maximize")
    with pytest.raises(HyperparameterError, match="metric 'error_rate' is to minimize, but the "
                                                  "study's direction is 'maximize'"):
        fit(tiny_model, "digits", config(), ctx, TrainSettings())


@pytest.mark.parametrize("kwargs, message", [
    (dict(select="last"), "select must be 'best'"),
    (dict(keep_best=-1), "keep_best must be an integer >= 0"),
    (dict(metric="f1"), "metric must be one of error_rate, accuracy, mse"),
    (dict(checkpoint_every=0), "checkpoint_every must be an integer >= 1 or None"),
])
def test_bad_settings_are_one_line_errors(kwargs, message):
    from hpo.train import TrainSettings

    with pytest.raises(HyperparameterError, match=message):
        TrainSettings(**kwargs)
