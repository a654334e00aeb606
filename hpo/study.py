"""The Study definition: the experiment's design, validated before anything touches storage.

A study states the experiment's design: the question (goal), the metric and its direction,
the roles of every hyperparameter, the budget and the phase. It is validated completely when
it is constructed, so a worker never opens storage for a study that cannot run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from hpo import attrs
from hpo.space import Space, SpaceError

if TYPE_CHECKING:
    import optuna

    from hpo.context import Config, Context

PHASES = ("explore", "exploit")
DIRECTIONS = ("minimize", "maximize")


class Study:
    """One experiment: a question, a metric, a space of roles, a budget and a phase.

    A study file defines one ``Study`` at module level; ``hpo run``, ``hpo workers`` and the
    analysis commands load it from there. The whole definition is checked when it is
    constructed, before anything touches storage.

    Example:
        ```python
        study = Study(
            name="digits-optimizer-v1",
            goal="Does Adam beat SGD with momentum on this MLP at 1,500 steps?",
            metric="val_error", direction="minimize",
            space={
                "optimizer": scientific(choice("sgd_momentum", "adam")),
                "learning_rate": nuisance(log_uniform(1e-4, 1.0)),
                "momentum": nuisance(uniform(0.8, 0.99), when={"optimizer": "sgd_momentum"}),
                "batch_size": fixed(64),
            },
            objective=train, trials_per_value=12, phase="explore", seed=0,
        )
        ```

    Args:
        name: Identifies the study in storage, together with a fingerprint of its search
            space and its direction. A stored study of this name with another space or
            direction is refused when a worker opens it
            ([`StudyMismatchError`][hpo.StudyMismatchError]): bump the name
            (``digits-optimizer-v2``) for a new design.
        goal: The question the study answers, in words; stored on the study and shown by
            optuna-dashboard and ``hpo report``.
        metric: The name of the value the objective returns, e.g. ``"val_error"``.
        direction: ``"minimize"`` or ``"maximize"``.
        space: Every hyperparameter's name and role: a dict (or a sequence of
            ``(name, role)`` pairs) of [`scientific`][hpo.scientific],
            [`nuisance`][hpo.nuisance] and [`fixed`][hpo.fixed]. Names must be Python
            identifiers.
        objective: ``objective(config, ctx) -> float``, called once per trial with the
            trial's [`Config`][hpo.Config] and [`Context`][hpo.Context]. It returns the
            metric; NaN or infinity marks the trial as diverged (failed, counted as
            infeasible).
        trials_per_value: The budget: each scientific value (each combination of values)
            gets this many trials, so the study's total is ``trials_per_value`` times the
            number of scientific values, unless ``--trials N`` sets the total.
        phase: ``"explore"``: nuisance hyperparameters from a paired quasi-random design
            (scrambled Halton), non-adaptive and reproducible, for insight. ``"exploit"``:
            Bayesian optimization (TPE) inside each scientific value once it has 10 finished
            trials (quasi-random points until then), for the best model after exploration.
        seed: Seeds the quasi-random sequence and the trials' seeds; the k-th trial of every
            scientific value gets the same nuisance point and the same ``ctx.seed``. Another
            seed gives another design, to measure study-to-study variance.
        pruner: An Optuna pruner (e.g. ``optuna.pruners.MedianPruner()``) that
            [`Context.report`][hpo.Context.report] consults; None: no pruning.

    Raises:
        SpaceError: If any argument breaks a rule (an empty name or goal, an unknown
            direction or phase, a non-positive budget, an objective that is not callable,
            any mistake in the space); the message is one line that names the field and the
            value and says what is allowed.

    Attributes:
        name: As given.
        goal: As given.
        metric: As given.
        direction: As given.
        space: The validated space.
        objective: As given.
        trials_per_value: As given.
        phase: As given.
        seed: As given.
        pruner: As given.
    """

    def __init__(
        self,
        *,
        name: str,
        goal: str,
        metric: str,
        direction: str = "minimize",
        space: Mapping[str, Any] | Iterable[tuple[str, Any]],
        objective: Callable[[Config, Context], float],
        trials_per_value: int = 16,
        phase: str = "explore",
        seed: int = 0,
        pruner: optuna.pruners.BasePruner | None = None,
    ):
        _require(isinstance(name, str) and name.strip() != "", "name", name,
                 "a non-empty string such as 'digits-optimizer-v1'")
        _require(isinstance(goal, str) and goal.strip() != "", "goal", goal,
                 "the question the study answers, in words")
        _require(isinstance(metric, str) and metric.strip() != "", "metric", metric,
                 "the name of the value the objective returns, e.g. 'val_error'")
        _require(direction in DIRECTIONS, "direction", direction, " or ".join(DIRECTIONS))
        _require(phase in PHASES, "phase", phase,
                 "'explore' (quasi-random, for insight) or "
                 "'exploit' (Bayesian, for the best model)")
        _require(isinstance(trials_per_value, int) and not isinstance(trials_per_value, bool)
                 and trials_per_value >= 1, "trials_per_value", trials_per_value,
                 "a positive integer")
        _require(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
                 "a non-negative integer")
        _require(callable(objective), "objective", objective,
                 "a function objective(config, ctx) -> float")
        if pruner is not None:
            import optuna

            _require(isinstance(pruner, optuna.pruners.BasePruner), "pruner", pruner,
                     "an Optuna pruner such as optuna.pruners.MedianPruner() or None")
        self.name = name
        self.goal = goal
        self.metric = metric
        self.direction = direction
        self.space = space if isinstance(space, Space) else Space(space)
        self.objective = objective
        self.trials_per_value = trials_per_value
        self.phase = phase
        self.seed = seed
        self.pruner = pruner

    @property
    def budget(self) -> int:
        """The study's own total budget: trials per scientific value times the values."""
        return self.trials_per_value * len(self.space.scientific_values())

    def user_attrs(self) -> dict[str, Any]:
        """What optuna-dashboard shows on the study page: the design, recorded with results."""
        return {
            attrs.STUDY_GOAL: self.goal,
            attrs.STUDY_METRIC: self.metric,
            attrs.STUDY_PHASE: self.phase,
            attrs.STUDY_SEED: self.seed,
            attrs.STUDY_TRIALS_PER_VALUE: self.trials_per_value,
            attrs.STUDY_ROLES: {n: hp.role for n, hp in self.space.hyperparameters.items()},
            attrs.STUDY_FIXED: self.space.fixed,
            attrs.STUDY_SPACE: self.space.describe(),
            attrs.STUDY_FINGERPRINT: self.space.fingerprint(),
        }

    def __repr__(self) -> str:
        return f"Study(name={self.name!r}, phase={self.phase!r}, budget={self.budget})"


def _require(ok: bool, field: str, value: Any, allowed: str) -> None:
    if not ok:
        raise SpaceError(f"Study {field}: got {value!r}; expected {allowed}")
