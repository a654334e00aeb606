"""Training-curve diagnostics for the best trials of each scientific value.

The playbook ("Examining the training curves") looks at the best trials' curves for:

* problematic overfitting: the validation metric gets worse after its best point;
* high step-to-step variance late in training;
* still improving at the end: train longer;
* saturated long before the final step: train shorter;
* training loss increasing: "usually indicates a bug";

and ("Determining the number of steps") at where the retrospective best checkpoint falls:
in the first 10% of ``max_train_steps`` the budget can be cut, in the last 25% train longer.

Curves come from the trial's ``curves`` user attribute (:mod:`hpo.curves`); a trial without
one still has the values it reported with ``ctx.report(step, value)``, which are the study's
metric at evaluation steps, and those are used instead. ``val_metric`` (or the reported
values) is taken to be the study's metric, in the study's direction; ``val_loss`` is lower-better.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from hpo import curves as stored_curves

if TYPE_CHECKING:
    from optuna.trial import FrozenTrial

    from hpo.analysis.results import Results

# Thresholds are fractions of the curve's total improvement ("scale"), so they mean the same
# on a loss from 2.3 to 0.1 and on an error rate from 0.9 to 0.02.
OVERFIT_RISE = 0.05  # worse than the best by 5% of the improvement, and beyond the noise
NOISE = 0.10  # late step-to-step noise above 10% of the improvement
STILL_IMPROVING = 0.02  # the last quarter improved by more than 2% of the improvement
SATURATED = 0.05  # within 5% of the final level...
SATURATED_BY = 0.5  # ...by half of training
TRAIN_LOSS_RISE = 0.25  # the training loss climbed back a quarter of what it had dropped
EARLY, LATE = 0.10, 0.75  # where the best checkpoint falls, as a fraction of max_train_steps
MIN_POINTS = 5
TOP = 3  # best trials per scientific value whose curves are diagnosed


@dataclass(frozen=True)
class Finding:
    code: str  # overfitting, noisy, still_improving, saturated, not_learning,
    #            train_loss_increasing, best_checkpoint_early, best_checkpoint_late
    message: str


@dataclass(frozen=True)
class CurveDiagnosis:
    group: str
    trial: int
    rank: int  # 1 for the group's best trial
    source: str  # "curves" or "reported values" or "none"
    findings: list[Finding] = field(default_factory=list)

    @property
    def codes(self) -> list[str]:
        return [f.code for f in self.findings]


def diagnose_curve(
    curves: Mapping[str, Sequence[float | None]],
    *,
    direction: str = "minimize",
    max_train_steps: int | None = None,
    best_step: int | None = None,
) -> list[Finding]:
    """Diagnose one trial's curves; see the module docstring for what is looked at."""
    findings: list[Finding] = []
    steps = list(curves["step"])
    name, series = _validation_series(curves, direction)
    if series is not None:
        s, b = _clean(steps, series)
        if len(b) >= MIN_POINTS:
            findings += _validation_findings(name, s, b)
            if best_step is None:
                best_step = int(s[int(np.argmin(b))])
    if curves.get("train_loss") is not None:
        s, b = _clean(steps, curves["train_loss"])
        if len(b) >= MIN_POINTS:
            findings += _train_loss_findings(s, b)
    last = max((int(x) for x in steps if x is not None), default=0)
    total = max_train_steps or last
    if best_step is not None and total > 0:
        where = _checkpoint_findings(int(best_step), int(total))
        if any(f.code == "not_learning" for f in findings):
            where = []  # nothing was learned: where the "best" point fell means nothing
        elif any(f.code == "saturated" for f in findings):
            # On a flat curve the best checkpoint's place is chance: "late" would contradict
            # "train shorter" with nothing behind it.
            where = [f for f in where if f.code != "best_checkpoint_late"]
        findings += where
    return findings


def curve_diagnostics(results: Results, *, top: int = TOP) -> list[CurveDiagnosis]:
    """Diagnoses for the ``top`` best complete trials of every scientific value."""
    out = []
    for group in results.groups:
        for rank, trial in enumerate(results.ranked(group.trials)[:top], start=1):
            curves, source = trial_curves(trial, results.metric)
            findings = []
            if curves is not None:
                findings = diagnose_curve(
                    curves, direction=results.direction,
                    max_train_steps=_int(trial.user_attrs.get("max_train_steps",
                                                              results.fixed.get("max_train_steps"))),
                    best_step=_int(trial.user_attrs.get("best_step")),
                )
            out.append(CurveDiagnosis(group.label, trial.number, rank, source, findings))
    return out


def trial_curves(trial: FrozenTrial, metric: str = "val_metric") -> tuple[dict | None, str]:
    """The trial's stored curves, else its reported values as ``val_metric``; and which."""
    stored = stored_curves.read(trial)
    if stored is not None:
        return stored, "curves"
    if trial.intermediate_values:
        steps = sorted(trial.intermediate_values)
        return {"step": steps, "val_metric": [trial.intermediate_values[s] for s in steps]}, \
            "reported values"
    return None, "none"


# --- the rules ----------------------------------------------------------------------------


def _validation_series(curves: Mapping[str, Any], direction: str) -> tuple[str, list | None]:
    """The validation series as lower-is-better: val_metric first (the study's metric)."""
    if curves.get("val_metric") is not None:
        sign = 1.0 if direction == "minimize" else -1.0
        return "validation metric", [None if v is None else sign * v for v in curves["val_metric"]]
    if curves.get("val_loss") is not None:
        return "validation loss", list(curves["val_loss"])
    return "", None


def _validation_findings(name: str, steps: np.ndarray, b: np.ndarray) -> list[Finding]:
    n = len(b)
    tiny = 1e-9 * max(1.0, abs(float(b[0])))
    if np.ptp(b) <= tiny:
        return [Finding("not_learning", f"flat: the {name} never moved from {_show(b[0])}; "
                        "check the learning rate (too low?) and that the model is trained")]
    # Levels are read from a moving average, so one lucky evaluation is not "the best";
    # noise is the step-to-step jitter of the raw second half, trend removed by differencing.
    w = max(3, n // 10) if n >= 9 else 1
    sm = np.convolve(b, np.ones(w) / w, mode="valid")
    sm_steps = steps[w // 2: w // 2 + len(sm)]
    i_best = int(np.argmin(sm))
    scale = float(sm[0] - sm[i_best])
    if scale <= tiny:
        return [Finding("not_learning", f"the {name} never improved on its first evaluations "
                        f"({_show(sm[0])}); the learning rate may be far too high or too low")]
    noise = float(np.std(np.diff(b[n // 2:]))) / np.sqrt(2)
    late = b[int(n * LATE):] if n - int(n * LATE) >= 3 else b[-3:]
    late_noise = float(np.std(np.diff(late))) / np.sqrt(2)
    findings = []
    rise = float(sm[-1] - sm[i_best])
    overfit = i_best < len(sm) - 1 and rise > max(OVERFIT_RISE * scale, 2 * noise)
    if overfit:
        findings.append(Finding(
            "overfitting",
            f"overfitting: the {name} was best near step {int(sm_steps[i_best])} and ended "
            f"{_show(rise)} worse ({rise / scale:.0%} of its improvement); regularize "
            "(weight decay, dropout, augmentation) or rely on the best checkpoint"))
    if late_noise > NOISE * scale:
        findings.append(Finding(
            "noisy",
            f"high step-to-step variance late in training: the {name} jumps by about "
            f"{_show(late_noise)} between evaluations ({late_noise / scale:.0%} of its "
            "improvement); comparisons are noisy: consider learning-rate decay, a larger batch, "
            "or evaluating on more data"))
    late_steps = steps[-len(late):]
    slope = float(np.polyfit(late_steps, late, 1)[0]) if np.ptp(late_steps) > 0 else 0.0
    gained = -slope * float(np.ptp(late_steps))  # the trend's improvement over the last quarter
    improving = (not overfit and i_best >= len(sm) - max(2, len(sm) // 10)
                 and gained > max(STILL_IMPROVING * scale, 2 * noise))
    if improving:
        findings.append(Finding(
            "still_improving",
            f"still improving at the end: the {name} improved by {_show(gained)} over the last "
            f"{1 - LATE:.0%} of training; train longer (more max_train_steps)"))
    if not overfit and not improving:
        within = np.nonzero(sm <= sm[-1] + max(SATURATED * scale, 2 * noise))[0]
        first = int(within[0])  # sm[-1] itself qualifies, so there is one
        last_step = float(steps[-1])
        if last_step > 0 and sm_steps[first] <= SATURATED_BY * last_step:
            findings.append(Finding(
                "saturated",
                f"saturated early: the {name} was within {SATURATED:.0%} of its final level by "
                f"step {int(sm_steps[first])} ({sm_steps[first] / last_step:.0%} of training) "
                "and flat after; train shorter, the extra steps bought nothing"))
    return findings


def _train_loss_findings(steps: np.ndarray, loss: np.ndarray) -> list[Finding]:
    n = len(loss)
    k = max(1, n // 5)
    smooth = np.convolve(loss, np.ones(k) / k, mode="valid")
    start, end, low = float(smooth[0]), float(smooth[-1]), float(smooth.min())
    drop = start - low
    # A smoothed point averages k evaluations: a rise must beat their noise to count.
    margin = 3 * float(np.std(np.diff(loss))) / np.sqrt(2) * np.sqrt(2 / k) if n > 2 else 0.0
    if end > start + max(margin, 1e-12):
        return [Finding("train_loss_increasing",
                        f"training loss increased: from {_show(start)} at the start to "
                        f"{_show(end)} at the end; this usually indicates a bug in the pipeline "
                        "(or a learning rate far too high)")]
    if drop > 0 and end - low > max(TRAIN_LOSS_RISE * drop, margin):
        at = int(steps[int(np.argmin(smooth)) + k // 2])
        return [Finding("train_loss_increasing",
                        f"training loss increasing: it bottomed out near step {at} and climbed "
                        f"back {(end - low) / drop:.0%} of its drop; this usually indicates a bug "
                        "(or instability: try warmup or gradient clipping)")]
    return []


def _checkpoint_findings(best_step: int, total: int) -> list[Finding]:
    where = best_step / total
    if where <= EARLY:
        return [Finding("best_checkpoint_early",
                        f"the best checkpoint is at step {best_step}, in the first {EARLY:.0%} of "
                        f"max_train_steps={total}: the step budget can be cut")]
    if where >= LATE:
        return [Finding("best_checkpoint_late",
                        f"the best checkpoint is at step {best_step}, in the last {1 - LATE:.0%} "
                        f"of max_train_steps={total}: training longer may help")]
    return []


def _clean(steps: Sequence[Any], series: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """Drop the points a diverged run left as None (JSON has no NaN), keep the rest in order."""
    pairs = [(float(s), float(v)) for s, v in zip(steps, series, strict=False)
             if v is not None and np.isfinite(float(v))]
    if not pairs:
        return np.array([]), np.array([])
    s, v = zip(*sorted(pairs), strict=True)
    return np.array(s), np.array(v)


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _show(x: float) -> str:
    return f"{abs(x):.3g}"
