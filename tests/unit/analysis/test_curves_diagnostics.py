"""Training-curve diagnostics on curves whose shape is known."""

from __future__ import annotations

import numpy as np
import pytest
from analysis_studies import add, definition, empty_study

from hpo import curves
from hpo.analysis import collect, curve_diagnostics, diagnose_curve

STEPS = list(range(100, 10_001, 100))  # 100 evaluations of a 10k-step run


def _jitter(n, scale, seed=0):
    return np.random.default_rng(seed).normal(0, scale, n)


def overfits():
    """Validation error falls to its best at 40% of training, then climbs steadily."""
    t = np.linspace(0, 1, len(STEPS))
    val = 0.1 + 0.8 * np.exp(-t / 0.08) + 0.6 * np.clip(t - 0.4, 0, None) ** 1.5
    train = 0.05 + 2.0 * np.exp(-t / 0.1)  # training loss keeps falling: it memorizes
    return {"step": STEPS, "val_metric": list(val + _jitter(len(t), 0.002)),
            "train_loss": list(train + _jitter(len(t), 0.002, 1))}


def still_improving():
    """Both losses fall steadily to the very last step."""
    t = np.linspace(0, 1, len(STEPS))
    val = 1.0 - 0.7 * t
    return {"step": STEPS, "val_metric": list(val + _jitter(len(t), 0.002)),
            "train_loss": list(val - 0.1 + _jitter(len(t), 0.002, 1))}


def flat():
    """Learned in the first 10% of training, flat for the remaining 90%."""
    t = np.linspace(0, 1, len(STEPS))
    val = 0.2 + 0.8 * np.exp(-t / 0.03)
    return {"step": STEPS, "val_metric": list(val + _jitter(len(t), 0.002)),
            "train_loss": list(val - 0.1 + _jitter(len(t), 0.002, 1))}


def codes(curve, **kw):
    return [f.code for f in diagnose_curve(curve, max_train_steps=10_000, **kw)]


def test_a_curve_that_overfits_is_diagnosed_as_overfitting():
    found = codes(overfits())
    assert "overfitting" in found
    assert "still_improving" not in found and "saturated" not in found
    assert "train_loss_increasing" not in found  # training loss fell all along


def test_a_curve_still_improving_at_the_end_says_train_longer():
    found = diagnose_curve(still_improving(), max_train_steps=10_000)
    assert [f.code for f in found] == ["still_improving", "best_checkpoint_late"]
    assert "train longer" in found[0].message


def test_a_flat_curve_is_saturated_early_and_says_train_shorter():
    found = diagnose_curve(flat(), max_train_steps=10_000)
    codes_ = [f.code for f in found]
    assert "saturated" in codes_
    assert not {"overfitting", "still_improving", "best_checkpoint_late"} & set(codes_)
    assert "train shorter" in next(f.message for f in found if f.code == "saturated")


def test_a_curve_that_never_moves_is_not_learning():
    assert codes({"step": STEPS, "val_metric": [0.9] * len(STEPS)}) == ["not_learning"]


def test_the_direction_of_the_metric_is_respected():
    # An accuracy that rises to the end is still improving, not "getting worse".
    acc = still_improving()
    acc = {"step": acc["step"], "val_metric": [1 - v for v in acc["val_metric"]]}
    assert "still_improving" in codes(acc, direction="maximize")
    # The same numbers read as an error rate only ever got worse.
    assert codes(acc, direction="minimize") == ["not_learning"]


def test_training_loss_going_up_is_called_a_likely_bug():
    t = np.linspace(0, 1, len(STEPS))
    curve = {"step": STEPS, "val_metric": list(0.5 - 0.1 * t),
             "train_loss": list(1.0 + 0.5 * t + _jitter(len(t), 0.01))}
    found = diagnose_curve(curve, max_train_steps=10_000)
    loss = [f for f in found if f.code == "train_loss_increasing"]
    assert loss and "bug" in loss[0].message


def test_high_late_variance_is_flagged_and_a_smooth_curve_is_not():
    t = np.linspace(0, 1, len(STEPS))
    smooth = 0.2 + 0.8 * np.exp(-t / 0.2)
    noisy = smooth + np.where(t > 0.6, _jitter(len(t), 0.08, 3), 0)
    assert "noisy" in codes({"step": STEPS, "val_metric": list(noisy)})
    assert "noisy" not in codes({"step": STEPS, "val_metric": list(smooth)})


@pytest.mark.parametrize("best_step, code", [(500, "best_checkpoint_early"),
                                             (9_000, "best_checkpoint_late"), (5_000, None)])
def test_where_the_best_checkpoint_falls(best_step, code):
    # A gently wiggling curve: neither flat nor improving, only the checkpoint speaks.
    t = np.linspace(0, 1, len(STEPS))
    curve = {"step": STEPS,
             "val_metric": list(0.5 + 0.3 * np.exp(-t / 0.3) + 0.01 * np.sin(20 * t))}
    found = [c for c in codes(curve, best_step=best_step) if c.startswith("best_checkpoint")]
    assert found == ([code] if code else [])


def test_diverged_points_stored_as_none_are_skipped():
    curve = curves.compact(flat())
    curve["val_metric"][50] = None
    assert "saturated" in codes(curve)


def test_the_best_trials_of_each_value_are_diagnosed_from_stored_curves_or_reported_values():
    d = definition()
    study = empty_study(d)
    sgd = {"optimizer": "sgd", "learning_rate": 0.01, "momentum": 0.9}
    adam = {"optimizer": "adam", "learning_rate": 0.001, "beta1": 0.9}
    over, flat_ = curves.compact(overfits()), curves.compact(flat())
    add(study, d, sgd, 0.10, user_attrs={"slot": 0, "curves": over})
    add(study, d, adam, 0.20, user_attrs={"slot": 1},  # no curves: its ctx.report() values
        intermediate=dict(zip(flat_["step"], flat_["val_metric"], strict=True)))
    add(study, d, {**adam, "learning_rate": 0.1}, 0.5, user_attrs={"slot": 3})  # nothing at all
    found = {(c.group, c.trial): c for c in curve_diagnostics(collect(d, study))}
    assert found["optimizer=sgd", 0].source == "curves"
    assert "overfitting" in found["optimizer=sgd", 0].codes
    assert found["optimizer=adam", 1].source == "reported values"
    assert "saturated" in found["optimizer=adam", 1].codes
    assert found["optimizer=adam", 2].source == "none" and found["optimizer=adam", 2].rank == 2
